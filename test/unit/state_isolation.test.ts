// Proves the state cache holds nothing a handler can change in place: an object read is decoded
// afresh per invocation (one object within an invocation), a written object is serialized when
// its invocation's effects are applied (later mutations change nothing), raw bytes are copied
// both ways, a value that does not serialize fails the invocation before anything is applied,
// the checkpoint's copy-on-write keeps the captured bytes, and built-in values, TTL and orphans
// round-trip through the persisted record.
import { describe, expect, it } from 'vitest';
import { ErrorCode, type StatefnError } from '../../shared/errors.js';
import { createCodec } from '../../shared/frames.js';
import { StatsBlock } from '../../shared/stats_block.js';
import { ManualClock } from '../../shared/clock.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { ValueSpec } from '../../api/function_api.js';
import { decodeState, encodeState, type AddressState } from '../../workers/address_state.js';
import { Effects } from '../../workers/effects.js';
import type { FnRuntime } from '../../workers/function_table.js';
import { Invocation, storageClass } from '../../workers/invocation.js';
import type { Router } from '../../workers/router.js';
import type { StateCache } from '../../workers/state_cache.js';
import type { TimerService } from '../../workers/timer_service.js';

interface Acct {
  count: number;
  items: number[];
}

const codec = createCodec();
const clock = new ManualClock(1_000);

function runtime(specs: ValueSpec[]): FnRuntime {
  return {
    spec: { typename: 'ns/fn', specs, handler: () => undefined },
    specs,
    specIndex: new Map(specs.map((s, i) => [s.name, i])),
    Storage: storageClass(specs),
    hasCallTtl: specs.some((s) => s.expireAfterCall !== undefined),
  };
}

function setup(specs: ValueSpec[], record?: unknown[]) {
  const fn = runtime(specs);
  const bytes = record === undefined ? undefined : Buffer.from(codec.pack(record));
  const st = decodeState(codec, bytes, fn.specs, fn.specIndex, 'ns/fn', 'a', 1);
  const dirty: AddressState[] = [];
  const routed: string[] = [];
  const cache = { markDirty: (s: AddressState) => dirty.push(s) } as unknown as StateCache;
  const router = { route: (_t: string, id: string) => routed.push(id) } as unknown as Router;
  const timers = {} as unknown as TimerService;
  const effects = new Effects(0, new Set(), timers, cache, router, new StatsBlock(StatsBlock.allocate(1), 1));
  /** Run `handler` as one invocation and apply its effects as the dispatcher does; returns the error, if any. */
  const invoke = (handler: (storage: Record<string, unknown>, inv: Invocation) => void): StatefnError | undefined => {
    const now = clock.now();
    const inv = new Invocation({ typename: 'ns/fn', id: 'a' }, undefined, st, fn.specs, fn.Storage, clock, now);
    handler(inv.storage, inv);
    inv.closed = true;
    try {
      effects.apply(fn, inv, now);
    } catch (e) {
      return e as StatefnError;
    }
    return undefined;
  };
  /** What a fresh invocation reads for `name`. */
  const read = (name: string): unknown => {
    let v: unknown;
    invoke((s) => (v = s[name]));
    return v;
  };
  const encoded = (): unknown => {
    const b = encodeState(codec, st, fn.specs, clock.now());
    return b === undefined ? undefined : codec.unpack(b);
  };
  return { fn, st, dirty, routed, invoke, read, encoded };
}

const ACCT = Types.json<Acct>('ns/Acct');
const acctBytes = (a: Acct): Uint8Array => ACCT.serialize(a);

describe('state isolation (address state, invocation, effects)', () => {
  it('an object read is a fresh decode per invocation, one object within it; mutating it changes nothing', () => {
    const t = setup([{ name: 's', type: ACCT }], [['s', ACCT.typename, acctBytes({ count: 1, items: [1] }), 0]]);
    const cached = t.st.bytes[0];
    let first: Acct | undefined;
    t.invoke((s) => {
      first = s.s as Acct;
      first.count = 99;
      first.items.push(9);
      expect(s.s).toBe(first);
    });
    expect(t.read('s')).not.toBe(first);
    expect(t.read('s')).toEqual({ count: 1, items: [1] });
    expect(t.st.bytes[0]).toBe(cached);
    expect(t.dirty).toHaveLength(0);
  });

  it('a written object is serialized when its effects are applied: later mutations change nothing', () => {
    const t = setup([{ name: 's', type: ACCT }]);
    let kept: Acct | undefined;
    t.invoke((s) => {
      kept = { count: 1, items: [] };
      s.s = kept;
      kept.count = 2; // before the handler returned: part of the write (as StateFun's SDKs)
    });
    kept!.count = 1000;
    kept!.items.push(1);
    expect(t.read('s')).toEqual({ count: 2, items: [] });
    expect(t.st.values[0]).toBeUndefined();
    expect(t.dirty).toHaveLength(1);
  });

  it('raw bytes are copied both ways', () => {
    const RAW = Types.raw('ns/Blob');
    const t = setup([{ name: 'b', type: RAW }]);
    const mine = Uint8Array.of(1, 2, 3);
    t.invoke((s) => (s.b = mine));
    mine[0] = 7;
    const read = t.read('b') as Uint8Array;
    expect([...read]).toEqual([1, 2, 3]);
    read[1] = 7;
    expect([...(t.read('b') as Uint8Array)]).toEqual([1, 2, 3]);
  });

  it('a value that does not serialize fails the invocation before anything is applied', () => {
    const t = setup([{ name: 's', type: ACCT }], [['s', ACCT.typename, acctBytes({ count: 1, items: [] }), 0]]);
    const err = t.invoke((s, inv) => {
      const loop: Record<string, unknown> = { count: 2 };
      loop.self = loop;
      s.s = loop;
      inv.send({ typename: 'ns/fn', id: 'b' }, new Message('t', 'x'));
    });
    expect(err?.code).toBe(ErrorCode.TYPE_MISMATCH);
    expect(err?.message).toContain("ns/fn/a: state 's' could not be serialized as ns/Acct");
    expect(t.routed).toHaveLength(0);
    expect(t.dirty).toHaveLength(0);
    expect(t.read('s')).toEqual({ count: 1, items: [] });
  });

  it('a state changed while a checkpoint has it captured keeps the captured bytes for the checkpoint', () => {
    const t = setup([{ name: 's', type: ACCT }], [['s', ACCT.typename, acctBytes({ count: 1, items: [] }), 0]]);
    t.st.capture = true;
    t.invoke((s) => {
      const a = s.s as Acct;
      a.count++;
      s.s = a;
    });
    expect(t.st.capture).toBe(false);
    const snap = t.st.snap!;
    const rec = codec.unpack(encodeState(codec, { ...snap, orphans: t.st.orphans }, t.fn.specs, clock.now())!) as unknown[][];
    expect(ACCT.deserialize(rec[0]![2] as Uint8Array)).toEqual({ count: 1, items: [] });
    expect(t.read('s')).toEqual({ count: 2, items: [] });
  });

  it('built-in values are held decoded, serialized by the checkpoint; TTL and orphans survive the record', () => {
    const t = setup(
      [
        { name: 'n', type: Types.long },
        { name: 'ttl', type: ACCT, expireAfterWrite: 50 },
      ],
      [
        ['n', Types.long.typename, Types.long.serialize(5), 0],
        ['gone', 'ns/Old', Uint8Array.of(1), 0],
      ],
    );
    expect(t.st.values[0]).toBe(5);
    t.invoke((s) => {
      s.n = (s.n as number) + 1;
      s.ttl = { count: 1, items: [] };
    });
    expect(t.st.values[0]).toBe(6);
    expect(t.st.bytes[0]).toBeUndefined();
    const rec = t.encoded() as unknown[][];
    expect(rec.map((r) => r[0])).toEqual(['n', 'ttl', 'gone']);
    expect(Types.long.deserialize(rec[0]![2] as Uint8Array)).toBe(6);
    expect(rec[1]![3]).toBe(clock.now() + 50);
    clock.advance(50);
    expect(t.read('ttl')).toBeUndefined();
    expect((t.encoded() as unknown[][]).map((r) => r[0])).toEqual(['n', 'gone']);
  });

  it('a stored value that does not decode fails the invocation that reads it with STATE_INVALID', () => {
    const t = setup([{ name: 's', type: ACCT }], [['s', ACCT.typename, Uint8Array.of(0x7b), 0]]);
    let err: unknown;
    t.invoke((s) => {
      try {
        void s.s;
      } catch (e) {
        err = e;
      }
    });
    expect((err as StatefnError).code).toBe(ErrorCode.STATE_INVALID);
    expect((err as StatefnError).message).toContain("state 's' of ns/fn/a does not decode as ns/Acct");
  });
});
