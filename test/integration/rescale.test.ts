// Proves rescaling keeps everything: stopping with 4 workers and starting with 2, then 4 again,
// keeps all state (10,000 counters with exact counts), pending timers (near and beyond the horizon,
// cancellable after the move) and in-flight messages, with keyGroups fixed for the state directory.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { ManualClock } from '../../shared/clock.js';
import { ErrorCode } from '../../shared/errors.js';
import { keyGroupOf, ownerTable } from '../../shared/key_group.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { CMD, COUNTER, TIMER_DELTA, type Cmd } from '../fixtures/apps/rescale_app.js';
import { CMD as LOOP_CMD, LOOP, LOOPER, PROGRESS_EVERY, type LoopOut } from '../fixtures/apps/state_app.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf, jsonRecords, orFail } from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/rescale_app.ts', import.meta.url).pathname;
const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

const KEY_GROUPS = 128;
const N = 10_000;
const T0 = Date.UTC(2030, 0, 1);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

class Run {
  readonly input: MemoryIngress<RoutedMessage>;
  readonly out: MemoryEgress;
  readonly loopOut: MemoryEgress;
  private constructor(
    readonly engine: Engine,
    readonly logger: MemoryLogger,
  ) {
    this.input = ingressOf(engine, 'rs/in');
    this.out = egressOf(engine, 'rs/out');
    this.loopOut = egressOf(engine, 'st/loop-out');
  }

  /** `keyGroups` only for a new state dir: later starts take it from the state dir. */
  static async start(stateDir: string, workers: number, keyGroups?: number): Promise<Run> {
    const logger = new MemoryLogger();
    const limits = keyGroups === undefined ? { checkpointIntervalMs: 200 } : { checkpointIntervalMs: 200, keyGroups };
    const engine = await Engine.start(app, { stateDir, workers, logger, clock: new ManualClock(T0), limits });
    return new Run(engine, logger);
  }

  cmd(id: string, cmd: Cmd): RoutedMessage {
    return { to: { typename: COUNTER, id }, message: Message.of(CMD, cmd) };
  }

  add(id: string, delta: number): RoutedMessage {
    return { to: { typename: COUNTER, id }, message: Message.of(Types.long, delta) };
  }

  async counts(ids: string[]): Promise<Map<string, number>> {
    this.out.clear();
    this.input.pushAll(ids.map((id) => this.cmd(id, { op: 'get' })));
    await orFail(this.engine, this.out.waitFor(ids.length, 60_000));
    return new Map(jsonRecords<{ id: string; count: number }>(this.out).map((r) => [r.id, r.count]));
  }

  loops(): LoopOut[] {
    return jsonRecords<LoopOut>(this.loopOut);
  }

  async loopsPast(rings: string[][], past: number[]): Promise<void> {
    await orFail(
      this.engine,
      this.loopOut.waitFor(() => rings.every((ring, i) => this.progress(ring) >= past[i]!), 30_000),
    );
  }

  progress(ring: string[]): number {
    let max = -1;
    for (const r of this.loops()) if (r.kind === 'progress' && ring.includes(r.id)) max = Math.max(max, r.seq);
    return max;
  }

  async stop(): Promise<void> {
    await this.engine.stop();
    expect(this.loops().filter((r) => r.kind === 'error')).toEqual([]);
    expect(this.logger.errors()).toEqual([]);
    expect(this.engine.stats().deadLetters).toBe(0);
  }
}

const ids = Array.from({ length: N }, (_, i) => `c${i}`);

function layoutOf(stateDir: string): { keyGroups: number; workers: number } {
  return JSON.parse(readFileSync(join(stateDir, 'layout.json'), 'utf8')) as { keyGroups: number; workers: number };
}

describe('rescale', () => {
  it('4 -> 2 -> 4 workers keeps counters, timers and in-flight messages exact', async () => {
    const stateDir = tmp.make('rescale');
    const expected = new Map<string, number>();
    const bump = (id: string, d: number): void => void expected.set(id, (expected.get(id) ?? 0) + d);
    const check = async (r: Run): Promise<void> => {
      const got = await r.counts(ids);
      let wrong = 0;
      for (const id of ids) if (got.get(id) !== expected.get(id)) wrong++;
      expect(wrong).toBe(0);
    };
    // Loops whose members sit on different workers with 4 workers and with 2.
    const own4 = ownerTable(4, KEY_GROUPS);
    const own2 = ownerTable(2, KEY_GROUPS);
    const pick = (prefix: string, w4: number, w2: number): string => {
      for (let i = 0; ; i++) {
        const kg = keyGroupOf(`${prefix}${i}`, KEY_GROUPS);
        if (own4[kg] === w4 && own2[kg] === w2) return `${prefix}${i}`;
      }
    };
    const rings = [
      [pick('a', 0, 0), pick('b', 3, 1)],
      [pick('p', 1, 0), pick('q', 2, 1), pick('r', 3, 1)],
    ];

    // ---- 4 workers ----
    let r = await Run.start(stateDir, 4, KEY_GROUPS);
    expect(layoutOf(stateDir)).toMatchObject({ keyGroups: KEY_GROUPS, workers: 4 });
    r.input.pushAll(ids.map((id, i) => (bump(id, (i % 13) + 1), r.add(id, (i % 13) + 1))));
    const timed = ids.filter((_, i) => i % 100 === 0);
    const far = ids.filter((_, i) => i % 500 === 0);
    const near = ids.filter((_, i) => i % 1000 === 1); // within the 60 s horizon: held in memory
    r.input.pushAll(near.map((id) => r.cmd(id, { op: 'after', delay: 30_000, token: 'n' })));
    r.input.pushAll(timed.map((id) => r.cmd(id, { op: 'after', delay: HOUR, token: 'h' })));
    r.input.pushAll(far.map((id) => r.cmd(id, { op: 'after', delay: 30 * DAY, token: 'far' })));
    for (const ring of rings) r.input.push({ to: { typename: LOOPER, id: ring[0]! }, message: Message.of(LOOP, { seq: 0, ring }) });
    await check(r);
    await r.loopsPast(rings, [2 * PROGRESS_EVERY, 2 * PROGRESS_EVERY]);
    await r.stop();
    let seen = rings.map((ring) => r.progress(ring));

    // ---- 2 workers ----
    r = await Run.start(stateDir, 2);
    expect(layoutOf(stateDir)).toMatchObject({ keyGroups: KEY_GROUPS, workers: 2 });
    await check(r);
    r.input.pushAll(ids.map((id) => (bump(id, 2), r.add(id, 2))));
    const cancelled = new Set(ids.filter((_, i) => i % 200 === 0));
    r.input.pushAll([...cancelled].map((id) => r.cmd(id, { op: 'cancel', token: 'h' })));
    await check(r);
    await r.loopsPast(
      rings,
      seen.map((s) => s + 2 * PROGRESS_EVERY),
    );
    await r.stop();
    seen = rings.map((ring) => r.progress(ring));

    // ---- 4 workers again ----
    r = await Run.start(stateDir, 4);
    try {
      expect(layoutOf(stateDir)).toMatchObject({ keyGroups: KEY_GROUPS, workers: 4 });
      await check(r);
      await r.loopsPast(
        rings,
        seen.map((s) => s + 2 * PROGRESS_EVERY),
      );
      const waitTimers = async (which: string[]): Promise<void> => {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const got = await r.counts(which);
          if (which.every((id) => got.get(id) === expected.get(id)) || Date.now() > deadline) return;
          await new Promise((res) => setTimeout(res, 20));
        }
      };
      // The 30-second timers fire.
      r.engine.advanceClock(30_000);
      for (const id of near) bump(id, TIMER_DELTA);
      await waitTimers(near);
      // The one-hour timers fire, except the cancelled ones.
      r.engine.advanceClock(HOUR - 30_000);
      for (const id of timed) if (!cancelled.has(id)) bump(id, TIMER_DELTA);
      await waitTimers(timed);
      // The 30-day timers (beyond the horizon, in LMDB only) fire too.
      r.engine.advanceClock(30 * DAY);
      for (const id of far) bump(id, TIMER_DELTA);
      await waitTimers(far);
      await check(r);
      // A second round trip through the mailboxes: nothing else fires late.
      await check(r);
      expect(r.engine.stats().timers).toBe(0);

      // The loops went on through both rescales, each message exactly once.
      for (const ring of rings) r.input.push({ to: { typename: LOOPER, id: ring[0]! }, message: Message.of(LOOP_CMD, { op: 'halt' }) });
      await orFail(
        r.engine,
        r.loopOut.waitFor(() => rings.every((ring) => r.loops().some((x) => x.kind === 'halted' && x.id === ring[0])), 30_000),
      );
      const ends = new Map(r.loops().flatMap((x) => (x.kind === 'halted' ? [[x.id, x.seq] as const] : [])));
      r.loopOut.clear();
      for (const ring of rings)
        for (const id of ring) r.input.push({ to: { typename: LOOPER, id }, message: Message.of(LOOP_CMD, { op: 'get' }) });
      await orFail(r.engine, r.loopOut.waitFor(rings.flat().length, 20_000));
      const states = new Map(r.loops().flatMap((x) => (x.kind === 'state' ? [[x.id, x] as const] : [])));
      for (const ring of rings) {
        const end = ends.get(ring[0]!)!;
        for (const [k, id] of ring.entries()) {
          const mine = k === 0 ? end : end - ring.length + k;
          expect(states.get(id), id).toMatchObject({ first: k, next: mine + ring.length, count: (mine - k) / ring.length + 1 });
        }
      }
    } finally {
      await r.stop();
    }

    // keyGroups is fixed for the state directory.
    await expect(Engine.start(app, { stateDir, workers: 2, logger: new MemoryLogger(), limits: { keyGroups: 256 } })).rejects.toMatchObject(
      { code: ErrorCode.CONFIG_INVALID },
    );
    r = await Run.start(stateDir, 3);
    try {
      expect(layoutOf(stateDir)).toMatchObject({ keyGroups: KEY_GROUPS, workers: 3 });
      await check(r);
    } finally {
      await r.stop();
    }
  });
});
