// Proves that an application embedding the engine with Engine.start (no CLI) recovers from a
// dead worker thread: the engine restores the last complete checkpoint in the same process,
// starts a fresh instance of the application, and goes on with the state of that checkpoint.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf } from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
const dirs = new TempDirs();
afterAll(() => dirs.removeAll());

const KEYS = 50;
const msgs = (n: number) =>
  Array.from({ length: n }, (_, i): RoutedMessage => ({
    to: { typename: 'test/counter', id: `k${i % KEYS}` },
    message: Message.of(Types.long, i),
  }));

/** Quiet: the worker's death is logged as an error on purpose. */
class QuietLogger extends MemoryLogger {
  override error(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', msg, ...(fields ? { fields } : {}) });
  }
}

async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('worker restart in an embedded engine', () => {
  it('restores the last complete checkpoint after a worker thread died and goes on', async () => {
    const logger = new QuietLogger();
    const engine = await Engine.start(app, {
      stateDir: dirs.make('worker-restart'),
      workers: 2,
      logger,
      limits: { checkpointIntervalMs: 100 },
    });
    let failedForGood: unknown;
    engine.failed().catch((e: unknown) => {
      failedForGood = e;
    });
    const firstApp = engine.app;
    ingressOf(engine, 'test/in').pushAll(msgs(10 * KEYS));
    await egressOf(engine, 'test/out').waitFor(10 * KEYS, 20_000);
    // Every key counted to 10 (egress is released by checkpoints), and checkpointed.
    const epoch = await engine.checkpoint();
    expect(engine.checkpoints.at(-1)?.epoch).toBe(epoch);

    await engine.terminateWorker(0);
    await until(() => logger.lines.some((l) => l.msg.startsWith('running again with 2 workers')), 'the in-process restart');
    expect(
      logger.lines.some(
        (l) => l.level === 'warn' && /restoring the last complete checkpoint after: worker 0 died: .*\(restart 1\/\d+\)/.test(l.msg),
      ),
    ).toBe(true);
    expect(logger.lines.some((l) => l.msg.startsWith(`recovered checkpoint ${epoch}`))).toBe(true);
    expect(failedForGood).toBeUndefined();
    // A fresh instance of the application: the old connectors were stopped.
    expect(engine.app).not.toBe(firstApp);

    ingressOf(engine, 'test/in').pushAll(msgs(KEYS));
    const out = egressOf(engine, 'test/out');
    await out.waitFor(KEYS, 20_000);
    const counts = out.records.map((r) => (r.message.toJSON() as { count: number }).count);
    expect(Math.min(...counts)).toBe(11);
    expect(Math.max(...counts)).toBe(11);
    // The history of checkpoints goes on across the restart.
    const next = await engine.checkpoint();
    expect(next).toBeGreaterThan(epoch);
    expect(engine.checkpoints.map((c) => c.epoch)).toContain(epoch);
    await engine.stop();
    expect(failedForGood).toBeUndefined();
  }, 60_000);
});
