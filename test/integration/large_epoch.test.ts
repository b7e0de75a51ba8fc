// One checkpoint epoch holding more egress records than a JS call takes arguments (~125,000 on
// the default stack): completing it must not overflow the stack. Found by the Kafka benchmark,
// where a backlog read faster than checkpoints complete made the engine fail with "cannot write
// the checkpoint record: Maximum call stack size exceeded".
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf } from '../fixtures/engine_harness.js';

const appUrl = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
const dirs = new TempDirs();
afterAll(() => dirs.removeAll());

describe('a checkpoint epoch with 200,000 egress records', () => {
  it('completes and releases them all', async () => {
    const logger = new MemoryLogger();
    // No periodic checkpoint during the burst: the one engine.checkpoint() starts holds everything.
    const engine = await Engine.start(appUrl, {
      stateDir: dirs.make('large-epoch'),
      workers: 2,
      logger,
      limits: { checkpointIntervalMs: 3_600_000 },
    });
    const input = ingressOf(engine, 'test/in');
    const N = 200_000;
    for (let i = 0; i < N; i += 10_000) {
      input.pushAll(
        Array.from({ length: 10_000 }, (_, j) => ({
          to: { typename: 'test/counter', id: `k${(i + j) % 1000}` },
          message: Message.of(Types.long, i + j),
        })),
      );
      await input.drained();
    }
    while (engine.stats().processed < N) await new Promise((r) => setTimeout(r, 50));
    await engine.checkpoint();
    await egressOf(engine, 'test/out').waitFor(N, 60_000);
    expect(logger.errors()).toEqual([]);
    await engine.stop();
  }, 180_000);
});
