// Proves what a handler reads cannot change stored, cached or checkpointed state unless the
// handler returns normally and assigns it (StateFun semantics: state changes only by a write):
// a mutated-and-assigned object of a failed attempt is not seen by its retry, a read object
// mutated without an assignment changes nothing, a mutation made while a checkpoint is under
// way does not reach that checkpoint (checked by a worker crash and restore), and a reference
// kept past the handler's return and mutated later changes nothing. Real worker threads, LMDB.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { keyGroupOf, ownerTable } from '../../shared/key_group.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { ACCT, ISO_CMD, type IsoCmd, type IsoReport } from '../fixtures/apps/isolation_app.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf, jsonRecords, orFail, until } from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/isolation_app.ts', import.meta.url).pathname;
const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

const WORKERS = 2;
const KEY_GROUPS = 64;
const owner = ownerTable(WORKERS, KEY_GROUPS);
const ownerOf = (id: string): number => owner[keyGroupOf(id, KEY_GROUPS)]!;

/** An id whose key group worker `w` owns (prefix keeps ids of different tests apart). */
function idOn(w: number, prefix: string): string {
  for (let i = 0; ; i++) if (ownerOf(`${prefix}${i}`) === w) return `${prefix}${i}`;
}

/** Quiet: a worker's death is logged as an error on purpose in the crash test. */
class QuietLogger extends MemoryLogger {
  override error(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', msg, ...(fields ? { fields } : {}) });
  }
}

class Harness {
  engine!: Engine;
  readonly logger = new QuietLogger();
  readonly markerDir = tmp.make('isolation-markers');

  async start(checkpointIntervalMs: number): Promise<void> {
    this.engine = await Engine.start(
      { module: app, params: { markerDir: this.markerDir } },
      {
        stateDir: tmp.make('isolation'),
        workers: WORKERS,
        logger: this.logger,
        limits: { keyGroups: KEY_GROUPS, handlerRetryBackoffMs: 5, checkpointIntervalMs },
      },
    );
  }

  // The ingress and egress of the current run (a worker restart starts a new application instance).
  private get input(): MemoryIngress<RoutedMessage> {
    return ingressOf(this.engine, 'iso/in');
  }
  get output(): MemoryEgress {
    return egressOf(this.engine, 'iso/out');
  }

  send(id: string, cmd: IsoCmd): void {
    this.input.push({ to: { typename: ACCT, id }, message: Message.of(ISO_CMD, cmd) });
  }

  reports(id: string, op?: IsoCmd['op']): IsoReport[] {
    return jsonRecords<IsoReport>(this.output).filter((r) => r.id === id && (op === undefined || r.op === op));
  }

  /** Wait until `id` has `count` reports of `op`; checkpoints meanwhile (egress is released by them). */
  async waitReports(id: string, op: IsoCmd['op'], count: number): Promise<IsoReport[]> {
    const deadline = Date.now() + 20_000;
    while (this.reports(id, op).length < count) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} '${op}' report(s) of ${id}`);
      await orFail(this.engine, this.engine.checkpoint());
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.reports(id, op);
  }

  /** The state of `id` as a handler reads it now. */
  async get(id: string): Promise<IsoReport> {
    const before = this.reports(id, 'get').length;
    this.send(id, { op: 'get' });
    return (await this.waitReports(id, 'get', before + 1)).at(-1)!;
  }

  /** Wait until the workers handled `n` messages in all (the run's counter). */
  async processed(n: number): Promise<void> {
    await until(() => this.engine.stats().processed >= n, 20_000, `${n} messages handled`);
  }
}

describe('state isolation', () => {
  const h = new Harness();
  beforeAll(() => h.start(20));
  afterAll(async () => {
    await h.engine.stop();
    expect(h.logger.errors()).toEqual([]);
  });

  it('a handler that mutates, assigns, then throws: its retry starts from the stored state (one application)', async () => {
    const id = 'retry';
    h.send(id, { op: 'bump', seq: 1 });
    h.send(id, { op: 'bump', seq: 2, failFirst: true });
    h.send(id, { op: 'bump', seq: 3 });
    const bumps = await h.waitReports(id, 'bump', 3);
    // The failed attempt's egress is discarded: one report per message, each seeing one application.
    expect(bumps.map((r) => r.s)).toEqual([
      { count: 1, items: [1] },
      { count: 2, items: [1, 2] },
      { count: 3, items: [1, 2, 3] },
    ]);
    expect((await h.get(id)).s).toEqual({ count: 3, items: [1, 2, 3] });
  });

  it('mutating a read object without assigning it leaves the state unchanged', async () => {
    const id = 'mutate';
    h.send(id, { op: 'bump', seq: 1 });
    h.send(id, { op: 'mutate' });
    const [m] = await h.waitReports(id, 'mutate', 1);
    // Within the invocation, two reads give the same (mutated) object.
    expect(m).toMatchObject({ same: true, s: { count: 101, items: [1, -1] } });
    expect((await h.get(id)).s).toEqual({ count: 1, items: [1] });
    // Nor does it reach LMDB when another value of the address is written and checkpointed.
    h.send(id, { op: 'mutate' });
    h.send(id, { op: 'touch' });
    expect(await h.get(id)).toMatchObject({ s: { count: 1, items: [1] }, n: 1 });
  });

  it('a reference kept past the return and mutated later changes nothing', async () => {
    const id = 'later';
    h.send(id, { op: 'bump', seq: 1 });
    h.send(id, { op: 'bump-then-mutate-later', name: 'assigned' });
    await until(() => existsSync(join(h.markerDir, 'assigned')), 20_000, 'the late mutation of an assigned object');
    expect((await h.get(id)).s).toEqual({ count: 2, items: [1] });
    h.send(id, { op: 'read-then-mutate-later', name: 'read' });
    await until(() => existsSync(join(h.markerDir, 'read')), 20_000, 'the late mutation of a read object');
    expect((await h.get(id)).s).toEqual({ count: 2, items: [1] });
  });
});

describe('state isolation across a checkpoint under way and a crash', () => {
  const h = new Harness();
  // Checkpoints only when the test takes them.
  beforeAll(() => h.start(3_600_000));
  afterAll(() => h.engine.stop());

  it('a mutation made while a checkpoint is under way is not in that checkpoint', async () => {
    const a = 0;
    const x = idOn(a, 'cx'); // mutated without assignment during the checkpoint
    const y = idOn(a, 'cy'); // mutated and assigned during the checkpoint (after its barrier)
    const spinner = idOn(1 - a, 'cs');
    h.send(x, { op: 'bump', seq: 1 });
    h.send(y, { op: 'bump', seq: 1 });
    await h.waitReports(x, 'bump', 1);
    await h.waitReports(y, 'bump', 1);
    // Both dirty when the next checkpoint captures them.
    h.send(x, { op: 'bump', seq: 2 });
    h.send(y, { op: 'bump', seq: 2 });
    await h.processed(4);
    // Worker 1 busy: worker 0 captures at the main thread's barrier, then waits for worker 1's
    // barrier, handling what arrives behind the main thread's barrier meanwhile.
    h.send(spinner, { op: 'spin', ms: 1500 });
    await new Promise((r) => setTimeout(r, 200));
    const checkpoint = h.engine.checkpoint();
    h.send(x, { op: 'mutate' });
    h.send(y, { op: 'bump', seq: 3 });
    await orFail(h.engine, checkpoint);
    await h.processed(7);

    await h.engine.terminateWorker(a);
    await until(() => h.logger.lines.some((l) => l.msg.startsWith('running again with')), 20_000, 'the in-process restart');
    // The checkpoint holds what was assigned before its barrier, nothing after it.
    expect((await h.get(x)).s).toEqual({ count: 2, items: [1, 2] });
    expect((await h.get(y)).s).toEqual({ count: 2, items: [1, 2] });
  }, 60_000);
});
