// Proves the SPSC ring round-trips every frame size byte-exactly, pads and wraps as documented,
// refuses (without writing) when full, and survives positions wrapping past 2^31 and 2^32.
import { describe, expect, it } from 'vitest';
import { InvariantError } from '../../shared/errors.js';
import { RING_HEADER_BYTES, RingConsumer, RingProducer, allocateRing, frameFootprint } from '../../shared/ring_buffer.js';

// Header layout documented at the top of ring_buffer.ts: head is Int32 index 0, tail Int32 index 16.
const HEAD_INDEX = 0;
const TAIL_INDEX = 16;
const PAD_WORD = 0xffffffff;

/** The byte at `j` of the frame numbered `i`: every frame's content is derived from (i, j). */
function byteAt(i: number, j: number): number {
  return (i * 131 + j * 7 + (j >>> 8) + (i >>> 8)) & 0xff;
}

function makePayload(i: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let j = 0; j < len; j++) b[j] = byteAt(i, j);
  return b;
}

/** Returns the index of the first wrong byte, or -1. */
function firstBadByte(i: number, payload: Uint8Array): number {
  for (let j = 0; j < payload.length; j++) if (payload[j] !== byteAt(i, j)) return j;
  return -1;
}

function headerOf(buffer: SharedArrayBuffer): { head: number; tail: number } {
  const ctl = new Int32Array(buffer, 0, RING_HEADER_BYTES / 4);
  return { head: Atomics.load(ctl, HEAD_INDEX) >>> 0, tail: Atomics.load(ctl, TAIL_INDEX) >>> 0 };
}

/** A ring whose head and tail start at `start` (a multiple of 4, as every real position is). */
function ringStartingAt(capacity: number, start: number): SharedArrayBuffer {
  const buffer = allocateRing(capacity);
  const ctl = new Int32Array(buffer, 0, RING_HEADER_BYTES / 4);
  ctl[HEAD_INDEX] = start | 0;
  ctl[TAIL_INDEX] = start | 0;
  return buffer;
}

/** Copy every frame out of the ring (the views passed to onFrame alias shared memory). */
function drainCopies(c: RingConsumer, maxFrames = Number.MAX_SAFE_INTEGER): Uint8Array[] {
  const out: Uint8Array[] = [];
  c.drain((p) => out.push(p.slice()), maxFrames);
  return out;
}

/**
 * An independent model of where the producer's head goes: a frame that does not fit before the
 * end of the data area skips the rest of it (the PAD) and starts at offset 0.
 */
function modelPush(head: number, capacity: number, payloadBytes: number): number {
  const need = frameFootprint(payloadBytes);
  const offset = head % capacity;
  if (need > capacity - offset) head += capacity - offset;
  return (head + need) % 2 ** 32;
}

describe('frame layout', () => {
  it('pads each frame (u32 length + payload) to a multiple of 4 bytes', () => {
    expect(frameFootprint(0)).toBe(4);
    expect(frameFootprint(1)).toBe(8);
    expect(frameFootprint(3)).toBe(8);
    expect(frameFootprint(4)).toBe(8);
    expect(frameFootprint(5)).toBe(12);
    expect(frameFootprint(1000)).toBe(1004);
  });

  it('limits a payload to half the ring minus its length word', () => {
    for (const cap of [64, 4096, 1 << 20]) {
      const p = new RingProducer(allocateRing(cap));
      expect(p.capacity).toBe(cap);
      expect(p.maxPayload).toBe(cap / 2 - 4);
      expect(frameFootprint(p.maxPayload)).toBe(cap / 2);
    }
  });

  it('rejects ring sizes that are not a power of two >= 64', () => {
    for (const bad of [0, 32, 60, 100, 4097, 3 * 1024]) {
      expect(() => allocateRing(bad)).toThrow(InvariantError);
    }
    expect(() => new RingConsumer(new SharedArrayBuffer(RING_HEADER_BYTES + 100))).toThrow(InvariantError);
  });
});

describe('every payload size', () => {
  const capacity = 4096;

  it('round-trips each size 0..maxPayload alone, byte-exact, with head/tail following the model', () => {
    const buffer = allocateRing(capacity);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    let model = 0;
    for (let len = 0; len <= p.maxPayload; len++) {
      expect(p.tryPush(makePayload(len, len))).toBe(true);
      model = modelPush(model, capacity, len);
      expect(headerOf(buffer).head).toBe(model);
      const frames = drainCopies(c);
      expect(frames.length).toBe(1);
      const f = frames[0]!;
      expect(f.length).toBe(len);
      expect(firstBadByte(len, f)).toBe(-1);
      expect(headerOf(buffer)).toEqual({ head: model, tail: model });
      expect(c.isEmpty()).toBe(true);
    }
    // Positions travelled many times around the ring, so the PAD path ran for many sizes.
    expect(model).toBeGreaterThan(100 * capacity);
  });

  it('round-trips each size 0..maxPayload as a stream that fills the ring before draining', () => {
    const buffer = allocateRing(capacity);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    let next = 0; // next frame index to verify
    let fullCount = 0;
    const verify = (payload: Uint8Array): void => {
      const i = next++;
      expect(payload.length).toBe(i);
      expect(firstBadByte(i, payload)).toBe(-1);
    };
    for (let len = 0; len <= p.maxPayload; len++) {
      const payload = makePayload(len, len);
      if (!p.tryPush(payload)) {
        fullCount++;
        c.drain(verify, Number.MAX_SAFE_INTEGER);
        expect(c.isEmpty()).toBe(true);
        expect(p.tryPush(payload)).toBe(true);
      }
    }
    c.drain(verify, Number.MAX_SAFE_INTEGER);
    expect(next).toBe(p.maxPayload + 1);
    expect(fullCount).toBeGreaterThan(100);
  });

  it('fails the assertion for a frame one byte over maxPayload, writing nothing', () => {
    const buffer = allocateRing(capacity);
    const p = new RingProducer(buffer);
    const before = new Uint8Array(buffer).slice();
    expect(() => p.tryPush(new Uint8Array(p.maxPayload + 1))).toThrow(InvariantError);
    expect(() => p.tryPush(new Uint8Array(capacity))).toThrow(/exceeds the ring's limit/);
    expect(new Uint8Array(buffer)).toEqual(before);
    expect(p.tryPush(new Uint8Array(p.maxPayload))).toBe(true);
  });
});

describe('wrap-around', () => {
  it('writes a PAD word at the end and starts a frame that does not fit at offset 0', () => {
    const capacity = 64;
    const buffer = allocateRing(capacity);
    const words = new Uint32Array(buffer, RING_HEADER_BYTES, capacity / 4);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    // Three frames of 12 bytes (footprint 16 each) move head to offset 48.
    for (let i = 0; i < 3; i++) expect(p.tryPush(makePayload(i, 12))).toBe(true);
    const three = drainCopies(c);
    expect(three).toHaveLength(3);
    three.forEach((f, i) => expect(firstBadByte(i, f)).toBe(-1));
    expect(headerOf(buffer)).toEqual({ head: 48, tail: 48 });
    // A 20-byte frame needs 24 bytes; only 16 are left before the end.
    expect(p.tryPush(makePayload(7, 20))).toBe(true);
    expect(words[48 / 4]).toBe(PAD_WORD);
    expect(words[0]).toBe(20);
    expect(headerOf(buffer).head).toBe(64 + 24);
    expect(c.usedBytes()).toBe(16 + 24); // the pad counts as used until the consumer skips it
    const frames = drainCopies(c);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.length).toBe(20);
    expect(firstBadByte(7, frames[0]!)).toBe(-1);
    expect(headerOf(buffer)).toEqual({ head: 88, tail: 88 });
  });

  it('does not pad when a frame fits exactly into the bytes left before the end', () => {
    const capacity = 64;
    const buffer = allocateRing(capacity);
    const words = new Uint32Array(buffer, RING_HEADER_BYTES, capacity / 4);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    expect(p.tryPush(makePayload(0, 28))).toBe(true); // footprint 32 -> head 32
    expect(p.tryPush(makePayload(1, 28))).toBe(true); // footprint 32, exactly the 32 left
    expect(words[32 / 4]).toBe(28);
    expect(headerOf(buffer).head).toBe(64);
    const frames = drainCopies(c);
    expect(frames.map((f) => f.length)).toEqual([28, 28]);
    expect(firstBadByte(0, frames[0]!)).toBe(-1);
    expect(firstBadByte(1, frames[1]!)).toBe(-1);
  });

  it('refuses, writing nothing (not even the PAD), when pad + frame do not fit yet', () => {
    const capacity = 64;
    const buffer = allocateRing(capacity);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    expect(p.tryPush(makePayload(0, 12))).toBe(true); // [0,16)
    expect(p.tryPush(makePayload(1, 12))).toBe(true); // [16,32)
    expect(p.tryPush(makePayload(2, 12))).toBe(true); // [32,48)
    expect(drainCopies(c, 1)).toHaveLength(1); // tail 16: 16 bytes free at the front, 16 at the end
    const before = new Uint8Array(buffer).slice();
    // 20 bytes need 24: does not fit in the 16 at the end, and pad (16) + 24 > 32 free.
    expect(p.tryPush(makePayload(3, 20))).toBe(false);
    expect(new Uint8Array(buffer)).toEqual(before);
    // Once the consumer frees the rest, it goes in after a PAD.
    const rest = drainCopies(c);
    expect(rest.map((f) => f.length)).toEqual([12, 12]);
    expect(p.tryPush(makePayload(3, 20))).toBe(true);
    const last = drainCopies(c);
    expect(last).toHaveLength(1);
    expect(firstBadByte(3, last[0]!)).toBe(-1);
  });
});

describe('full and empty', () => {
  it('starts empty and drains nothing', () => {
    const buffer = allocateRing(1024);
    const c = new RingConsumer(buffer);
    expect(c.isEmpty()).toBe(true);
    expect(c.usedBytes()).toBe(0);
    let calls = 0;
    expect(c.drain(() => calls++, 100)).toBe(0);
    expect(calls).toBe(0);
    expect(headerOf(buffer)).toEqual({ head: 0, tail: 0 });
  });

  it('returns false when full, writes nothing, and succeeds again after a drain', () => {
    const capacity = 1024;
    const buffer = allocateRing(capacity);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    let pushed = 0;
    while (p.tryPush(makePayload(pushed, 60))) pushed++;
    expect(pushed).toBe(capacity / frameFootprint(60));
    expect(c.usedBytes()).toBe(capacity);
    expect(p.hasRoomFor(0)).toBe(false);
    const before = new Uint8Array(buffer).slice();
    for (const len of [0, 1, 60, p.maxPayload]) expect(p.tryPush(makePayload(999, len))).toBe(false);
    expect(new Uint8Array(buffer)).toEqual(before);

    // Release one frame: exactly one frame of the same size fits again.
    const first = drainCopies(c, 1);
    expect(firstBadByte(0, first[0]!)).toBe(-1);
    expect(p.tryPush(makePayload(pushed, 60))).toBe(true);
    expect(p.tryPush(makePayload(pushed + 1, 60))).toBe(false);

    const rest = drainCopies(c);
    expect(rest).toHaveLength(pushed);
    rest.forEach((f, k) => expect(firstBadByte(k + 1, f)).toBe(-1));
    expect(c.isEmpty()).toBe(true);
    expect(c.usedBytes()).toBe(0);
  });

  it('hasRoomFor(n) true always means tryPush of n bytes succeeds (seeded random walk)', () => {
    const capacity = 256;
    const buffer = allocateRing(capacity);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let produced = 0;
    let consumed = 0;
    for (let step = 0; step < 20_000; step++) {
      if (rnd(3) === 0) {
        c.drain(
          (f) => {
            expect(firstBadByte(consumed, f)).toBe(-1);
            consumed++;
          },
          1 + rnd(4),
        );
      } else {
        const len = rnd(p.maxPayload + 1);
        const room = p.hasRoomFor(len);
        const ok = p.tryPush(makePayload(produced, len));
        if (room) expect(ok).toBe(true);
        if (ok) produced++;
      }
    }
    c.drain(() => consumed++, Number.MAX_SAFE_INTEGER);
    expect(consumed).toBe(produced);
  });
});

describe('drain', () => {
  it('hands at most maxFrames frames per call, in order', () => {
    const buffer = allocateRing(4096);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    for (let i = 0; i < 10; i++) expect(p.tryPush(makePayload(i, i * 3))).toBe(true);
    const seen: number[] = [];
    const take = (max: number): number => c.drain((f) => seen.push(f.length / 3), max);
    expect(take(0)).toBe(0);
    expect(take(3)).toBe(3);
    expect(seen).toEqual([0, 1, 2]);
    expect(take(3)).toBe(3);
    expect(take(3)).toBe(3);
    expect(take(3)).toBe(1);
    expect(take(3)).toBe(0);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(c.isEmpty()).toBe(true);
  });

  it('does not count a PAD as a frame', () => {
    const capacity = 64;
    const buffer = allocateRing(capacity);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    for (let i = 0; i < 3; i++) p.tryPush(makePayload(i, 12)); // head at 48
    drainCopies(c);
    expect(p.tryPush(makePayload(3, 20))).toBe(true); // PAD at 48, frame at 0
    expect(p.tryPush(makePayload(4, 8))).toBe(true); // [24, 36)
    const first = drainCopies(c, 1);
    expect(first.map((f) => f.length)).toEqual([20]);
    expect(drainCopies(c, 1).map((f) => f.length)).toEqual([8]);
  });

  it('releases a frame whose handler throws, so a poison frame cannot wedge the ring', () => {
    const buffer = allocateRing(1024);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    for (let i = 0; i < 3; i++) expect(p.tryPush(makePayload(i, 10 + i))).toBe(true);
    const poison = new Error('poison');
    const seen: number[] = [];
    expect(() =>
      c.drain((f) => {
        seen.push(f.length);
        if (f.length === 11) throw poison;
      }, 100),
    ).toThrow(poison);
    expect(seen).toEqual([10, 11]);
    // Frames 0 and 1 are released; only frame 2 is left.
    expect(c.usedBytes()).toBe(frameFootprint(12));
    expect(headerOf(buffer).tail).toBe(frameFootprint(10) + frameFootprint(11));
    const rest = drainCopies(c);
    expect(rest.map((f) => f.length)).toEqual([12]);
    expect(firstBadByte(2, rest[0]!)).toBe(-1);
  });

  it('a poison frame that throws on every attempt still lets the producer fill the ring again', () => {
    const capacity = 256;
    const buffer = allocateRing(capacity);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    let pushed = 0;
    while (p.tryPush(makePayload(pushed, 28))) pushed++;
    let thrown = 0;
    while (!c.isEmpty()) {
      try {
        c.drain(() => {
          throw new Error('always');
        }, 100);
      } catch {
        thrown++;
      }
    }
    expect(thrown).toBe(pushed);
    expect(p.tryPush(makePayload(0, 28))).toBe(true);
  });

  it('asserts when it reads a corrupt length word', () => {
    const capacity = 1024;
    const buffer = allocateRing(capacity);
    const words = new Uint32Array(buffer, RING_HEADER_BYTES, capacity / 4);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    expect(p.tryPush(makePayload(0, 16))).toBe(true);
    words[0] = p.maxPayload + 1;
    expect(() => c.drain(() => undefined, 10)).toThrow(/corrupt ring/);
  });
});

describe('positions wrapping past 2^31 and 2^32', () => {
  // Starting points just below the sign bit and just below 2^32, deliberately not a multiple of
  // the capacity so a PAD lands right at the wrap of the position counter.
  const starts = [2 ** 31 - 1000, 2 ** 32 - 1000, 2 ** 32 - 4, 2 ** 32 - 4096, 2 ** 31 - 4];

  for (const start of starts) {
    it(`round-trips frames across the position wrap starting at ${start}`, () => {
      const capacity = 4096;
      const buffer = ringStartingAt(capacity, start);
      const p = new RingProducer(buffer);
      const c = new RingConsumer(buffer);
      expect(c.isEmpty()).toBe(true);
      expect(c.usedBytes()).toBe(0);
      let model = start;
      let verified = 0;
      let crossed = false;
      for (let i = 0; i < 3000; i++) {
        const len = (i * 37) % (p.maxPayload + 1);
        const payload = makePayload(i, len);
        if (!p.tryPush(payload)) {
          c.drain((f) => {
            expect(f.length).toBe((verified * 37) % (p.maxPayload + 1));
            expect(firstBadByte(verified, f)).toBe(-1);
            verified++;
          }, Number.MAX_SAFE_INTEGER);
          expect(headerOf(buffer)).toEqual({ head: model, tail: model });
          expect(p.tryPush(payload)).toBe(true);
        }
        const prev = model;
        model = modelPush(model, capacity, len);
        if (model < prev) crossed = true;
        expect(headerOf(buffer).head).toBe(model);
        expect(c.usedBytes()).toBeLessThanOrEqual(capacity);
      }
      c.drain((f) => {
        expect(firstBadByte(verified, f)).toBe(-1);
        verified++;
      }, Number.MAX_SAFE_INTEGER);
      expect(verified).toBe(3000);
      expect(headerOf(buffer)).toEqual({ head: model, tail: model });
      if (start > 2 ** 32 - 5000) expect(crossed).toBe(true);
    });
  }

  it('computes used bytes across the wrap (head past 2^32, tail below it)', () => {
    const capacity = 64;
    const buffer = ringStartingAt(capacity, 2 ** 32 - 16);
    const p = new RingProducer(buffer);
    const c = new RingConsumer(buffer);
    expect(p.tryPush(makePayload(0, 4))).toBe(true);
    expect(p.tryPush(makePayload(1, 4))).toBe(true);
    expect(headerOf(buffer)).toEqual({ head: 0, tail: 2 ** 32 - 16 });
    expect(c.usedBytes()).toBe(16);
    expect(c.isEmpty()).toBe(false);
    expect(p.tryPush(makePayload(2, 4))).toBe(true);
    expect(c.usedBytes()).toBe(24);
    const frames = drainCopies(c);
    frames.forEach((f, i) => expect(firstBadByte(i, f)).toBe(-1));
    expect(frames).toHaveLength(3);
    expect(headerOf(buffer)).toEqual({ head: 8, tail: 8 });
  });

  it('new producer/consumer objects resume from the positions in shared memory', () => {
    const capacity = 256;
    const buffer = ringStartingAt(capacity, 2 ** 32 - 40);
    new RingProducer(buffer).tryPush(makePayload(0, 30));
    new RingProducer(buffer).tryPush(makePayload(1, 30));
    const frames = drainCopies(new RingConsumer(buffer), 1).concat(drainCopies(new RingConsumer(buffer)));
    expect(frames.map((f) => f.length)).toEqual([30, 30]);
    frames.forEach((f, i) => expect(firstBadByte(i, f)).toBe(-1));
  });
});
