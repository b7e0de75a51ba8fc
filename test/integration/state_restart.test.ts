// Proves state survives clean restarts for every value type and several function types, deleted
// values stay deleted, and messages in flight at stop (endless loops within and across workers) are
// saved and continue after restart with no loss and no duplicate.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { keyGroupOf, ownerTable } from '../../shared/key_group.js';
import { Message } from '../../api/message.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import {
  CMD,
  LOOP,
  LOOPER,
  OTHER,
  PROGRESS_EVERY,
  VALUES,
  type Cmd,
  type LoopOut,
  type Snapshot,
  type Wire,
} from '../fixtures/apps/state_app.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf, jsonRecords, orFail } from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/state_app.ts', import.meta.url).pathname;
const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

const WORKERS = 2;
const KEY_GROUPS = 64;

class Run {
  readonly input: MemoryIngress<RoutedMessage>;
  readonly out: MemoryEgress;
  readonly loopOut: MemoryEgress;
  private constructor(
    readonly engine: Engine,
    readonly logger: MemoryLogger,
  ) {
    this.input = ingressOf(engine, 'st/in');
    this.out = egressOf(engine, 'st/out');
    this.loopOut = egressOf(engine, 'st/loop-out');
  }

  static async start(stateDir: string, checkpointIntervalMs: number): Promise<Run> {
    const logger = new MemoryLogger();
    const engine = await Engine.start(app, { stateDir, workers: WORKERS, logger, limits: { keyGroups: KEY_GROUPS, checkpointIntervalMs } });
    return new Run(engine, logger);
  }

  send(typename: string, id: string, cmd: Cmd): void {
    this.input.push({ to: { typename, id }, message: Message.of(CMD, cmd) });
  }

  /** Read the values of these addresses (in one round, in order). */
  async snapshot(addrs: [string, string][]): Promise<Map<string, Record<string, Wire>>> {
    this.out.clear();
    for (const [fn, id] of addrs) this.send(fn, id, { op: 'get' });
    await orFail(this.engine, this.out.waitFor(addrs.length, 20_000));
    return new Map(jsonRecords<Snapshot>(this.out).map((s) => [`${s.fn}:${s.id}`, s.values]));
  }

  loopRecords(): LoopOut[] {
    return jsonRecords<LoopOut>(this.loopOut);
  }

  /** Highest sequence number reported as progress by any member of `ring`. */
  progress(ring: string[]): number {
    let max = -1;
    for (const r of this.loopRecords()) if (r.kind === 'progress' && ring.includes(r.id)) max = Math.max(max, r.seq);
    return max;
  }

  async stop(): Promise<void> {
    await this.engine.stop();
    expect(this.logger.errors()).toEqual([]);
  }
}

describe('state across a clean restart', () => {
  it('keeps values of every type and function type; deleted values stay deleted', async () => {
    const stateDir = tmp.make('state');
    // Expected values per address, kept in step with what the test writes.
    const expected = new Map<string, Record<string, Wire>>();
    const addrs: [string, string][] = [];
    const set = (r: Run, fn: string, id: string, values: Record<string, Wire>): void => {
      r.send(fn, id, { op: 'set', values });
      const key = `${fn}:${id}`;
      if (!expected.has(key)) addrs.push([fn, id]);
      expected.set(key, { ...expected.get(key), ...values });
    };
    const del = (r: Run, fn: string, id: string, names: string[]): void => {
      r.send(fn, id, { op: 'del', names });
      const v = { ...expected.get(`${fn}:${id}`) };
      for (const n of names) delete v[n];
      expected.set(`${fn}:${id}`, v);
    };
    const check = async (r: Run): Promise<void> => {
      const got = await r.snapshot(addrs);
      for (const [fn, id] of addrs) expect(got.get(`${fn}:${id}`), `${fn}:${id}`).toEqual(expected.get(`${fn}:${id}`));
    };

    let r = await Run.start(stateDir, 50);
    set(r, VALUES, 'v1', {
      l: Number.MAX_SAFE_INTEGER,
      s: 'héllo ✓ 😀',
      j: { a: [1, { b: null }], u: 'ü' },
      r: { raw: [0, 1, 255, 128] },
      b: true,
      d: Math.PI,
    });
    // Default values (encoded as zero bytes, as in StateFun) are values, not absences.
    set(r, VALUES, 'v2', { l: 0, s: '', j: [], r: { raw: [] }, b: false, d: { num: '-0' } });
    set(r, VALUES, 'v3', { l: -42, s: 'x'.repeat(5000), j: { deep: { er: [true, false] } }, d: { num: 'NaN' } });
    set(r, VALUES, 'v4', { l: 1, s: 'gone soon', b: true });
    set(r, VALUES, 'v5', { d: { num: '-Infinity' }, l: Number.MIN_SAFE_INTEGER });
    // The same id under another function type is another address with its own state.
    set(r, OTHER, 'v1', { i: -7, f: 1.5, tags: ['a', 'b'], l: 5 });
    set(r, OTHER, 'o2', { i: 2147483647, f: -0.25 });
    for (let k = 0; k < 50; k++) set(r, OTHER, `many${k}`, { l: k, tags: [`t${k}`] });
    await check(r);
    await r.engine.checkpoint(); // now in LMDB: later deletions must reach it
    del(r, VALUES, 'v1', ['s', 'r']);
    del(r, OTHER, 'v1', ['tags']);
    del(r, VALUES, 'v4', ['l', 's', 'b']); // the address holds nothing any more
    set(r, VALUES, 'v6', { s: 'never checkpointed' });
    del(r, VALUES, 'v6', ['s']); // written and deleted within one epoch
    await check(r);
    await r.stop();

    r = await Run.start(stateDir, 50);
    await check(r);
    set(r, VALUES, 'v1', { s: 'back', b: false });
    del(r, VALUES, 'v2', ['l', 's', 'j', 'r', 'b', 'd']);
    del(r, OTHER, 'o2', ['f']);
    for (let k = 0; k < 50; k += 2) del(r, OTHER, `many${k}`, ['tags']);
    await check(r);
    await r.stop();

    r = await Run.start(stateDir, 50);
    try {
      await check(r);
      expect(expected.get(`${VALUES}:v4`)).toEqual({});
      expect(expected.get(`${VALUES}:v2`)).toEqual({});
    } finally {
      await r.stop();
    }
  });

  it('messages in flight at stop continue after restart, with no loss and no duplicate', async () => {
    const stateDir = tmp.make('state');
    const owner = ownerTable(WORKERS, KEY_GROUPS);
    const w = (id: string): number => owner[keyGroupOf(id, KEY_GROUPS)]!;
    const pick = (prefix: string, worker: number): string => {
      for (let i = 0; ; i++) if (w(`${prefix}${i}`) === worker) return `${prefix}${i}`;
    };
    const loops: string[][] = [
      [pick('x', 0), pick('y', 1)], // across workers
      [pick('z', 0)], // self-sends only
      [pick('p', 1), pick('q', 0), pick('r', 1)], // three members, both directions
      [pick('m', 1), pick('n', 1)], // two members on one worker
    ];
    // A long checkpoint interval: the second stop comes before any periodic checkpoint after the first
    // restart, so messages restored from the first stop are saved again by the second.
    let r = await Run.start(stateDir, 10_000);
    for (const ring of loops) r.input.push({ to: { typename: LOOPER, id: ring[0]! }, message: Message.of(LOOP, { seq: 0, ring }) });
    let seen = loops.map(() => 2 * PROGRESS_EVERY);
    const advanced = (run: Run, past: number[]): Promise<void> =>
      orFail(
        run.engine,
        run.loopOut.waitFor(() => loops.every((ring, i) => run.progress(ring) >= past[i]!), 30_000),
      );

    for (let restart = 0; restart < 3; restart++) {
      await advanced(r, seen);
      const before = r.engine.stats().processed;
      await r.stop(); // the loops are running: each has a message in a ring, a mailbox or pending
      expect(r.loopRecords().filter((x) => x.kind === 'error')).toEqual([]);
      seen = loops.map((ring) => r.progress(ring));
      expect(before).toBeGreaterThan(0);
      r = await Run.start(stateDir, 10_000);
      // Every loop goes on past where it was.
      seen = seen.map((s) => s + 2 * PROGRESS_EVERY);
    }
    await advanced(r, seen);
    for (const ring of loops) r.send(LOOPER, ring[0]!, { op: 'halt' });
    await orFail(
      r.engine,
      r.loopOut.waitFor(() => loops.every((ring) => r.loopRecords().some((x) => x.kind === 'halted' && x.id === ring[0])), 30_000),
    );
    expect(r.loopRecords().filter((x) => x.kind === 'error')).toEqual([]);
    // Every member saw every sequence number meant for it, once: contiguous from its first.
    const last = new Map<string, number>();
    for (const x of r.loopRecords()) if (x.kind === 'halted') last.set(x.id, x.seq);
    r.loopOut.clear();
    for (const ring of loops) for (const id of ring) r.send(LOOPER, id, { op: 'get' });
    const members = loops.flat().length;
    await orFail(r.engine, r.loopOut.waitFor(members, 20_000));
    const states = new Map(r.loopRecords().flatMap((x) => (x.kind === 'state' ? [[x.id, x] as const] : [])));
    for (const ring of loops) {
      const end = last.get(ring[0]!)!; // the loop ended at its first member with this seq
      expect(end % ring.length).toBe(0);
      for (const [k, id] of ring.entries()) {
        const mine = k === 0 ? end : end - ring.length + k; // the last seq this member handled
        const st = states.get(id)!;
        expect(st, id).toMatchObject({ first: k, next: mine + ring.length, count: (mine - k) / ring.length + 1 });
      }
    }
    await r.stop();
  });
});
