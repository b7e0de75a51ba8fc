/**
 * A single-producer/single-consumer ring of variable-length frames in a SharedArrayBuffer.
 * One ring per directed pair of threads; exactly one thread pushes and exactly one pops.
 *
 * Memory layout (all offsets in bytes; the data area's size is a power of two):
 *
 *   0               64              128                               128 + capacity
 *   +---------------+---------------+----------------------------------+
 *   | head (Int32)  | tail (Int32)  | data: frames, wrapping           |
 *   | + padding     | + padding     |                                  |
 *   +---------------+---------------+----------------------------------+
 *
 *   head: total bytes ever published by the producer, mod 2^32 (only the producer writes it)
 *   tail: total bytes ever released by the consumer, mod 2^32 (only the consumer writes it)
 *   used = (head - tail) mod 2^32, always <= capacity; head and tail sit on separate cache
 *   lines so the two threads do not false-share.
 *
 * A frame is a little-endian u32 length followed by that many payload bytes, padded to a multiple
 * of 4 so every length word is aligned. A frame never straddles the end of the data area: when it
 * does not fit in the bytes left before the end, the producer writes a PAD word (0xFFFFFFFF)
 * there and starts the frame at offset 0. Because frames are at most capacity/2 bytes, a
 * producer that finds no room always gets it once the consumer catches up: it never blocks, it
 * returns false and the caller parks the frame in an outbox.
 *
 * Ordering: the producer writes the payload with plain stores, then publishes it with
 * `Atomics.store(head)`; the consumer reads head with `Atomics.load` before reading the payload.
 * Atomics are sequentially consistent, so the payload stores happen-before the consumer's reads.
 * Symmetrically the consumer releases space with `Atomics.store(tail)` only after it is done with
 * the payload, so the producer never overwrites bytes still being decoded.
 */
import { assert } from './errors.js';

export const RING_HEADER_BYTES = 128;
const HEAD = 0; // Int32 index of head
const TAIL = 16; // Int32 index of tail (byte offset 64)
const PAD = 0xffffffff;
const LENGTH_BYTES = 4;

/** Bytes a frame of `payloadBytes` occupies in the ring. */
export function frameFootprint(payloadBytes: number): number {
  return (LENGTH_BYTES + payloadBytes + 3) & ~3;
}

/** Allocate the shared memory of a ring with `capacity` data bytes (a power of two). */
export function allocateRing(capacity: number): SharedArrayBuffer {
  assert(capacity >= 64 && (capacity & (capacity - 1)) === 0, `ring capacity must be a power of two >= 64, got ${capacity}`);
  assert(capacity <= 1 << 30, 'ring capacity must be at most 1 GiB so positions stay unambiguous mod 2^32');
  return new SharedArrayBuffer(RING_HEADER_BYTES + capacity);
}

class RingView {
  protected readonly ctl: Int32Array;
  protected readonly data: Uint8Array;
  protected readonly words: Uint32Array;
  readonly capacity: number;
  protected readonly mask: number;
  /** Largest payload a single frame may carry. */
  readonly maxPayload: number;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.capacity = buffer.byteLength - RING_HEADER_BYTES;
    assert(this.capacity >= 64 && (this.capacity & (this.capacity - 1)) === 0, 'ring buffer has a bad size');
    this.ctl = new Int32Array(buffer, 0, RING_HEADER_BYTES / 4);
    this.data = new Uint8Array(buffer, RING_HEADER_BYTES, this.capacity);
    this.words = new Uint32Array(buffer, RING_HEADER_BYTES, this.capacity / 4);
    this.mask = this.capacity - 1;
    this.maxPayload = this.capacity / 2 - LENGTH_BYTES;
  }

  /** Bytes currently published and not yet released (approximate from a third thread). */
  usedBytes(): number {
    return (Atomics.load(this.ctl, HEAD) - Atomics.load(this.ctl, TAIL)) >>> 0;
  }

  isEmpty(): boolean {
    return Atomics.load(this.ctl, HEAD) === Atomics.load(this.ctl, TAIL);
  }
}

/** The producing end of a ring. Only one thread may hold it. */
export class RingProducer extends RingView {
  private head: number;

  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    this.head = Atomics.load(this.ctl, HEAD) >>> 0;
  }

  /**
   * Copy `payload` into the ring as one frame. Returns false, writing nothing, when there is no
   * room now; the caller keeps the frame and retries later (it must never spin or block).
   */
  tryPush(payload: Uint8Array): boolean {
    const len = payload.length;
    assert(len <= this.maxPayload, () => `frame of ${len} bytes exceeds the ring's limit of ${this.maxPayload}`);
    const need = frameFootprint(len);
    let head = this.head;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    const free = this.capacity - ((head - tail) >>> 0);
    let offset = head & this.mask;
    const contiguous = this.capacity - offset;
    if (need > contiguous) {
      // Not enough room before the end: pad the rest and start over at 0.
      if (contiguous + need > free) return false;
      this.words[offset >>> 2] = PAD;
      head = (head + contiguous) >>> 0;
      offset = 0;
    } else if (need > free) {
      return false;
    }
    this.words[offset >>> 2] = len;
    this.data.set(payload, offset + LENGTH_BYTES);
    this.head = (head + need) >>> 0;
    // Publish: everything written above happens-before a consumer's Atomics.load(head).
    Atomics.store(this.ctl, HEAD, this.head | 0);
    return true;
  }

  /** Room for a frame of `payloadBytes` right now (conservative: assumes a wrap may be needed). */
  hasRoomFor(payloadBytes: number): boolean {
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    const free = this.capacity - ((this.head - tail) >>> 0);
    return free >= 2 * frameFootprint(payloadBytes);
  }
}

/** The consuming end of a ring. Only one thread may hold it. */
export class RingConsumer extends RingView {
  private tail: number;

  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    this.tail = Atomics.load(this.ctl, TAIL) >>> 0;
  }

  /**
   * Hand up to `maxFrames` frames to `onFrame`, in order, then release their space. The view
   * passed to `onFrame` aliases shared memory and is valid only during the call: decode or copy
   * it before returning. Returns the number of frames consumed.
   */
  drain(onFrame: (payload: Uint8Array) => void, maxFrames: number): number {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    let tail = this.tail;
    let n = 0;
    try {
      while (tail !== head && n < maxFrames) {
        const offset = tail & this.mask;
        const len = this.words[offset >>> 2]!;
        if (len === PAD) {
          tail = (tail + (this.capacity - offset)) >>> 0;
          continue;
        }
        assert(len <= this.maxPayload, () => `corrupt ring: frame length ${len} at offset ${offset}`);
        tail = (tail + frameFootprint(len)) >>> 0;
        n++;
        onFrame(this.data.subarray(offset + LENGTH_BYTES, offset + LENGTH_BYTES + len));
      }
    } finally {
      // Release what was consumed (also when onFrame threw: that frame counts as consumed so a
      // poison frame cannot wedge the ring; the caller reports the error).
      if (tail !== this.tail) {
        this.tail = tail;
        Atomics.store(this.ctl, TAIL, tail | 0);
      }
    }
    return n;
  }
}
