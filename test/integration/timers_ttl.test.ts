// Proves delayed messages and state TTL follow the injected clock: delivery only after the delay,
// cancellation by token (also after a restart and for far-future timers), token reuse fails the
// invocation into a dead letter without side effects, 30-day timers fire, timers due while stopped
// fire at restart, and TTL expireAfterWrite/expireAfterCall hold across restarts.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { ManualClock } from '../../shared/clock.js';
import { ErrorCode } from '../../shared/errors.js';
import { keyGroupOf, ownerTable } from '../../shared/key_group.js';
import { Message } from '../../api/message.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { CMD, TIMER, TTL, TTL_MS, type Cmd, type Out } from '../fixtures/apps/timers_app.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf, orFail, readDeadLetterFile, until } from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/timers_app.ts', import.meta.url).pathname;
const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

const T0 = Date.UTC(2030, 0, 1);
const DAY = 86_400_000;
const WORKERS = 2;
const KEY_GROUPS = 64;

/** One engine run on a state dir with a manual clock. */
class Run {
  readonly input: MemoryIngress<RoutedMessage>;
  readonly output: MemoryEgress;
  private probes = 0;

  private constructor(
    readonly engine: Engine,
    readonly clock: ManualClock,
    readonly stateDir: string,
    readonly logger: MemoryLogger,
  ) {
    this.input = ingressOf(engine, 'tm/in');
    this.output = egressOf(engine, 'tm/out');
  }

  static async start(stateDir: string, at: number): Promise<Run> {
    const clock = new ManualClock(at);
    const logger = new MemoryLogger();
    // A long flush interval: state and timers reach LMDB only at explicit flush() calls and at
    // stop, so each test controls what is in memory and what is on disk.
    // Egress at once (not per checkpoint): these tests move the manual clock, not checkpoints.
    const engine = await Engine.start(app, {
      stateDir,
      workers: WORKERS,
      clock,
      logger,
      checkpointing: false,
      limits: { keyGroups: KEY_GROUPS, checkpointIntervalMs: 600_000 },
    });
    return new Run(engine, clock, stateDir, logger);
  }

  send(typename: string, id: string, cmd: Cmd): void {
    this.input.push({ to: { typename, id }, message: Message.of(CMD, cmd) });
  }

  /**
   * Wait until everything sent so far, and every timer due at the current time, has been
   * handled for these addresses: two rounds of probes through each address's own mailbox (a timer
   * fired in the worker step that read the clock tick is queued before the second probe).
   */
  async barrier(typename: string, ...ids: string[]): Promise<void> {
    for (let round = 0; round < 2; round++) {
      const first = this.probes;
      for (const id of ids) this.send(typename, id, { op: 'probe', n: this.probes++ });
      const last = this.probes;
      await orFail(
        this.engine,
        this.output.waitFor((rs) => {
          const seen = new Set(
            rs
              .map((r) => r.message.toJSON() as Out)
              .filter((o) => o.kind === 'probe')
              .map((o) => (o as { n: number }).n),
          );
          for (let n = first; n < last; n++) if (!seen.has(n)) return false;
          return true;
        }, 20_000),
      );
    }
  }

  out(): Out[] {
    return this.output.records.map((r) => r.message.toJSON() as Out);
  }

  fired(): { id: string; tag: string; at: number; caller: string | null }[] {
    return this.out().flatMap((o) => (o.kind === 'fired' ? [o] : []));
  }

  tags(): string[] {
    return this.fired()
      .map((f) => f.tag)
      .sort();
  }

  lastProbe(id: string): { note: string | null } | undefined {
    return this.out()
      .filter((o): o is Extract<Out, { kind: 'probe' }> => o.kind === 'probe' && o.id === id)
      .at(-1);
  }

  async waitTags(tags: string[]): Promise<void> {
    await orFail(
      this.engine,
      this.output.waitFor(() => tags.every((t) => this.fired().some((f) => f.tag === t)), 20_000),
    );
  }

  async get(id: string): Promise<Extract<Out, { kind: 'get' }>> {
    const before = this.out().filter((o) => o.kind === 'get' && o.id === id).length;
    this.send(TTL, id, { op: 'get' });
    await orFail(
      this.engine,
      this.output.waitFor(() => this.out().filter((o) => o.kind === 'get' && o.id === id).length > before, 20_000),
    );
    return this.out()
      .filter((o): o is Extract<Out, { kind: 'get' }> => o.kind === 'get' && o.id === id)
      .at(-1)!;
  }

  advance(ms: number): void {
    this.engine.advanceClock(ms);
  }

  async stop(): Promise<number> {
    await this.engine.stop();
    expect(this.logger.errors()).toEqual([]);
    return this.clock.now();
  }
}

/** Two ids owned by different workers. */
function idsOnDifferentWorkers(): [string, string] {
  const owner = ownerTable(WORKERS, KEY_GROUPS);
  const a = 'x0';
  for (let i = 1; ; i++) if (owner[keyGroupOf(`x${i}`, KEY_GROUPS)] !== owner[keyGroupOf(a, KEY_GROUPS)]) return [a, `x${i}`];
}

describe('timers', () => {
  it('sendAfter delivers only once its delay has passed, to itself and across workers', async () => {
    const r = await Run.start(tmp.make('timers'), T0);
    try {
      const [x, y] = idsOnDifferentWorkers();
      r.send(TIMER, x, { op: 'after', delay: 1000, tag: 'self-1000' });
      r.send(TIMER, x, { op: 'after', delay: 1000, tag: 'remote-1000', to: y });
      r.send(TIMER, x, { op: 'after', delay: 0, tag: 'self-0' });
      await r.waitTags(['self-0']);
      await r.barrier(TIMER, x, y);
      expect(r.tags()).toEqual(['self-0']);
      r.advance(999);
      await r.barrier(TIMER, x, y);
      expect(r.tags()).toEqual(['self-0']);
      r.advance(1);
      await r.waitTags(['self-1000', 'remote-1000']);
      const fired = r.fired();
      expect(fired.find((f) => f.tag === 'self-1000')).toMatchObject({ id: x, at: T0 + 1000, caller: x });
      expect(fired.find((f) => f.tag === 'remote-1000')).toMatchObject({ id: y, at: T0 + 1000, caller: x });
      await r.barrier(TIMER, x, y);
      expect(r.fired().length).toBe(3);
    } finally {
      await r.stop();
    }
  });

  it('cancels by token; cancelling an unknown or delivered token is a no-op', async () => {
    const r = await Run.start(tmp.make('timers'), T0);
    try {
      const x = 'c1';
      r.send(TIMER, x, { op: 'after', delay: 500, tag: 'cancelled', token: 'tok' });
      r.send(TIMER, x, { op: 'after', delay: 500, tag: 'kept', token: 'tok2' });
      r.send(TIMER, x, { op: 'after', delay: 500, tag: 'plain' });
      r.send(TIMER, x, { op: 'cancel', token: 'tok' });
      r.send(TIMER, x, { op: 'cancel', token: 'never-used' });
      await r.barrier(TIMER, x);
      r.advance(500);
      await r.waitTags(['kept', 'plain']);
      await r.barrier(TIMER, x);
      expect(r.tags()).toEqual(['kept', 'plain']);
      // tok2 was delivered: cancelling it now is a no-op, and the token can be used again.
      r.send(TIMER, x, { op: 'cancel', token: 'tok2' });
      r.send(TIMER, x, { op: 'after', delay: 100, tag: 'reused-after-delivery', token: 'tok2' });
      // A cancelled token is free again too.
      r.send(TIMER, x, { op: 'after', delay: 100, tag: 'reused-after-cancel', token: 'tok' });
      await r.barrier(TIMER, x);
      r.advance(100);
      await r.waitTags(['reused-after-delivery', 'reused-after-cancel']);
      expect(r.engine.stats().deadLetters).toBe(0);
      expect(r.engine.stats().failures).toBe(0);
    } finally {
      await r.stop();
    }
    expect(readDeadLetterFile(r.stateDir)).toEqual([]);
  });

  it('reusing a pending token fails the invocation into a dead letter and applies none of its effects', async () => {
    const r = await Run.start(tmp.make('timers'), T0);
    try {
      const x = 'r1';
      r.send(TIMER, x, { op: 'mixed', note: 'original' });
      r.send(TIMER, x, { op: 'after', delay: 1000, tag: 'first', token: 'r' });
      r.send(TIMER, x, { op: 'after', delay: 1000, tag: 'other', token: 'o' });
      await r.barrier(TIMER, x);
      // Writes state, cancels 'o', schedules 'second' and then 'third' with the pending token 'r'.
      r.send(TIMER, x, {
        op: 'mixed',
        note: 'changed',
        cancel: 'o',
        schedule: [
          { delay: 100, tag: 'second' },
          { delay: 100, tag: 'third', token: 'r' },
        ],
      });
      // The same token twice in one invocation fails it as well.
      r.send(TIMER, x, {
        op: 'mixed',
        schedule: [
          { delay: 100, tag: 'dup-a', token: 'dup' },
          { delay: 100, tag: 'dup-b', token: 'dup' },
        ],
      });
      await r.barrier(TIMER, x);
      await until(() => r.engine.stats().deadLetters >= 2, 20_000, 'two dead letters');
      // None of the failed invocations' effects took place: the note is unchanged ...
      expect(r.lastProbe(x)?.note).toBe('original');
      r.advance(1000);
      // ... 'o' was not cancelled, and nothing they scheduled fires.
      await r.waitTags(['first', 'other']);
      await r.barrier(TIMER, x);
      expect(r.tags()).toEqual(['first', 'other']);
      // The engine goes on; 'r' is free once its message was delivered.
      r.send(TIMER, x, { op: 'after', delay: 10, tag: 'again', token: 'r' });
      await r.barrier(TIMER, x);
      r.advance(10);
      await r.waitTags(['again']);
    } finally {
      await r.stop();
    }
    const dead = readDeadLetterFile(r.stateDir);
    expect(dead.length).toBe(2);
    for (const d of dead) {
      expect(d).toMatchObject({ code: ErrorCode.TOKEN_IN_USE, target: { typename: TIMER, id: 'r1' } });
      expect(d.attempts).toBeGreaterThanOrEqual(1);
      expect(String(d.error)).toMatch(/already used/);
    }
  });

  it('delayed messages 30 days beyond the timer horizon survive and fire; cancelled ones do not', async () => {
    const r = await Run.start(tmp.make('timers'), T0);
    try {
      const x = 'far';
      r.send(TIMER, x, { op: 'after', delay: 30 * DAY, tag: 'far' });
      r.send(TIMER, x, { op: 'after', delay: 30 * DAY, tag: 'far-cancelled', token: 'fc' });
      r.send(TIMER, x, { op: 'after', delay: 30 * DAY + 1, tag: 'far-cancelled-later', token: 'fl' });
      await r.barrier(TIMER, x);
      // Written to LMDB and no longer held in memory (beyond the 60 s horizon).
      await r.engine.checkpoint();
      r.send(TIMER, x, { op: 'cancel', token: 'fc' });
      // Created and cancelled between two flushes.
      r.send(TIMER, x, { op: 'after', delay: 30 * DAY, tag: 'far-unflushed-cancelled', token: 'fu' });
      r.send(TIMER, x, { op: 'cancel', token: 'fu' });
      await r.barrier(TIMER, x);
      r.advance(29 * DAY);
      await r.barrier(TIMER, x);
      expect(r.tags()).toEqual([]);
      r.send(TIMER, x, { op: 'cancel', token: 'fl' });
      await r.barrier(TIMER, x);
      // The cancellations are not flushed yet when the clock reaches the timers.
      r.advance(DAY + 1);
      await r.waitTags(['far']);
      await r.barrier(TIMER, x);
      expect(r.fired()).toEqual([{ kind: 'fired', id: x, tag: 'far', at: T0 + 30 * DAY + 1, caller: x }]);
    } finally {
      await r.stop();
    }
  });

  it('timers pending at a clean stop fire after restart (also those due while stopped), and cancel after restart', async () => {
    const stateDir = tmp.make('timers');
    let r = await Run.start(stateDir, T0);
    const x = 'p1';
    r.send(TIMER, x, { op: 'after', delay: 2_000, tag: 'due-while-stopped' });
    r.send(TIMER, x, { op: 'after', delay: 5_000, tag: 'a' });
    r.send(TIMER, x, { op: 'after', delay: 10_000, tag: 'b-cancelled', token: 'b' });
    r.send(TIMER, x, { op: 'after', delay: 10_000, tag: 'b2', token: 'b2' });
    r.send(TIMER, x, { op: 'after', delay: 30 * DAY, tag: 'c-cancelled', token: 'c' });
    r.send(TIMER, x, { op: 'after', delay: 30 * DAY, tag: 'd', token: 'd' });
    await r.barrier(TIMER, x);
    const stoppedAt = await r.stop();
    expect(stoppedAt).toBe(T0);

    // Restart 3 s later: the 2 s timer is overdue and fires at once.
    r = await Run.start(stateDir, stoppedAt + 3_000);
    try {
      await r.waitTags(['due-while-stopped']);
      r.send(TIMER, x, { op: 'cancel', token: 'b' });
      r.send(TIMER, x, { op: 'cancel', token: 'c' });
      // A token pending from before the restart is still in use.
      r.send(TIMER, x, { op: 'after', delay: 1, tag: 'reuse-d', token: 'd' });
      await r.barrier(TIMER, x);
      await until(() => r.engine.stats().deadLetters >= 1, 20_000, 'the TOKEN_IN_USE dead letter');
      r.advance(2_000); // T0 + 5 s
      await r.waitTags(['a']);
      r.advance(5_000); // T0 + 10 s
      await r.waitTags(['b2']);
      await r.barrier(TIMER, x);
      expect(r.tags()).toEqual(['a', 'b2', 'due-while-stopped']);
    } finally {
      await r.stop();
    }
    expect(readDeadLetterFile(stateDir).map((d) => d.code)).toEqual([ErrorCode.TOKEN_IN_USE]);

    // Another restart: the far timers are still there; the cancelled one stays cancelled.
    r = await Run.start(stateDir, T0 + 10_000);
    try {
      r.advance(30 * DAY);
      await r.waitTags(['d']);
      await r.barrier(TIMER, x);
      expect(r.tags()).toEqual(['d']);
      expect(r.fired()[0]).toMatchObject({ at: T0 + 10_000 + 30 * DAY });
    } finally {
      await r.stop();
    }
  });
});

describe('state TTL', () => {
  it('expireAfterWrite and expireAfterCall: visible before expiry, gone after; calls refresh after-call', async () => {
    const r = await Run.start(tmp.make('ttl'), T0);
    try {
      const id = 't1';
      r.send(TTL, id, { op: 'set', w: 'W', c: 'C', p: 'P' });
      // The manual clock moves for every thread at once: make sure the write happened at T0.
      await r.barrier(TTL, id);
      r.advance(TTL_MS - 1); // T0 + 999
      expect(await r.get(id)).toMatchObject({ w: 'W', c: 'C', p: 'P' });
      r.advance(TTL_MS - 1); // T0 + 1998: w expired at T0 + 1000; c was refreshed at T0 + 999
      expect(await r.get(id)).toMatchObject({ w: null, c: 'C', p: 'P' });
      r.advance(TTL_MS - 1); // T0 + 2997
      expect(await r.get(id)).toMatchObject({ w: null, c: 'C', p: 'P' });
      r.advance(TTL_MS); // T0 + 3997: exactly TTL after the last call
      expect(await r.get(id)).toMatchObject({ w: null, c: null, p: 'P' });
      // A write starts a new life; a flush in between changes nothing.
      r.send(TTL, id, { op: 'set', w: 'W2' });
      await r.barrier(TTL, id);
      await r.engine.checkpoint();
      r.advance(TTL_MS - 1);
      expect(await r.get(id)).toMatchObject({ w: 'W2', c: null, p: 'P' });
      await r.engine.checkpoint();
      r.advance(1);
      expect(await r.get(id)).toMatchObject({ w: null, c: null, p: 'P' });
    } finally {
      await r.stop();
    }
  });

  it('TTL holds across restarts', async () => {
    const stateDir = tmp.make('ttl');
    let r = await Run.start(stateDir, T0);
    const id = 't2';
    r.send(TTL, id, { op: 'set', w: 'W', c: 'C', p: 'P' });
    await r.get(id);
    await r.stop();
    r = await Run.start(stateDir, T0 + 500);
    try {
      expect(await r.get(id)).toMatchObject({ w: 'W', c: 'C', p: 'P' }); // c now expires at T0 + 1500
    } finally {
      await r.stop();
    }
    r = await Run.start(stateDir, T0 + 1_200);
    try {
      expect(await r.get(id)).toMatchObject({ w: null, c: 'C', p: 'P' }); // c now expires at T0 + 2200
      r.advance(TTL_MS); // T0 + 2200
      expect(await r.get(id)).toMatchObject({ w: null, c: null, p: 'P' });
    } finally {
      await r.stop();
    }
    r = await Run.start(stateDir, T0 + 5_000);
    try {
      expect(await r.get(id)).toMatchObject({ w: null, c: null, p: 'P' });
    } finally {
      await r.stop();
    }
  });
});
