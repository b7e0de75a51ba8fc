// Proves OutLink -> ring -> InLink delivers MESSAGES frames field for field although repeated type
// names travel as REPEAT back-references: across batches, across frames split for exceeding
// frameBytesMax, with null and changing callers; and that malformed compressed frames are rejected.
import { describe, expect, it } from 'vitest';
import { allocateDoorbells, Doorbells } from '../../shared/doorbell.js';
import { StatefnError } from '../../shared/errors.js';
import { FrameKind, MESSAGE_FIELDS, REPEAT, compressMessages, createCodec, expandMessages } from '../../shared/frames.js';
import { InLink, OutLink } from '../../shared/link.js';
import { allocateRing } from '../../shared/ring_buffer.js';

type Msg = [string, string, string | null, string | null, string, string | number | boolean | Uint8Array];

function link(frameBytesMax: number, batchMessagesMax: number) {
  const ring = allocateRing(1 << 20);
  const oversize: unknown[][] = [];
  const out = new OutLink(ring, createCodec(), new Doorbells(allocateDoorbells(2)), 1, frameBytesMax, batchMessagesMax, (f) =>
    oversize.push(f),
  );
  const input = new InLink(ring, createCodec(), 0, 'test');
  const receive = (): Msg[] => {
    const got: Msg[] = [];
    for (const f of input.read(1 << 20, (e) => {
      throw e;
    })) {
      expect(f[0]).toBe(FrameKind.MESSAGES);
      for (let i = 1; i < f.length; i += MESSAGE_FIELDS) got.push(f.slice(i, i + MESSAGE_FIELDS) as Msg);
    }
    return got;
  };
  return { out, receive, oversize };
}

function messages(n: number): Msg[] {
  const out: Msg[] = [];
  for (let i = 0; i < n; i++) {
    const fromFn = i % 3 !== 0;
    out.push([
      i % 7 < 5 ? 'app/counter' : 'app/other',
      `id-${i}`,
      fromFn ? (i % 5 === 0 ? 'app/b' : 'app/a') : null,
      fromFn ? `caller-${i % 11}` : null,
      i % 4 === 0 ? 'io.statefun.types/string' : 'io.statefun.types/long',
      i % 4 === 0 ? `v${i}` : i,
    ]);
  }
  return out;
}

describe('link frames with repeated type names compressed', () => {
  it('round-trips every field across batches', () => {
    const { out, receive } = link(256 * 1024, 64);
    const sent = messages(1000);
    for (const m of sent) out.message(...m);
    out.flush();
    expect(receive()).toEqual(sent);
  });

  it('round-trips frames split in halves for exceeding frameBytesMax, and reports a single oversized message whole', () => {
    const { out, receive, oversize } = link(4096, 512);
    const big = new Uint8Array(700).fill(7);
    const sent: Msg[] = messages(300).map((m, i) => (i % 10 === 0 ? [m[0], m[1], m[2], m[3], 'app/Bytes', big] : m));
    for (const m of sent) out.message(...m);
    const huge: Msg = ['app/counter', 'huge', 'app/a', 'c', 'app/Bytes', new Uint8Array(5000)];
    out.message(...huge);
    out.flush();
    expect(receive()).toEqual(sent);
    expect(oversize).toEqual([huge]);
  });

  it('uses REPEAT on the wire and rejects frames that refer back to nothing', () => {
    const f = compressMessages([FrameKind.MESSAGES, 't/a', '1', null, null, 'x/y', 1, 't/a', '2', null, null, 'x/y', 2]);
    expect(f.slice(7)).toEqual([REPEAT, '2', null, null, REPEAT, 2]);
    expect(() => expandMessages([FrameKind.MESSAGES, REPEAT, '1', null, null, 'x/y', 1], 'test')).toThrow(StatefnError);
    expect(() => expandMessages([FrameKind.MESSAGES, 't/a', '1', REPEAT, 'c', 'x/y', 1], 'test')).toThrow(StatefnError);
    expect(() => expandMessages([FrameKind.MESSAGES, 't/a', '1', null, null, 'x/y'], 'test')).toThrow(StatefnError);
  });
});
