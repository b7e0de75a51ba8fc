// Proves a worker whose dirty set is over `dirtyEntriesMax` still takes the checkpoint that clears
// it: the barrier arrives on the main ring behind ingress, and the worker once stopped reading that
// ring while pressured, so with more changed keys than the bound every worker waited for a barrier
// it never read (the engine stalled; at 10^6-10^7 benchmark keys it crawled or stopped). Here
// 20,000 distinct keys against a bound of 64 per worker: every message is handled and its egress
// released by checkpoints, exactly once, and the engine stops cleanly. With a 1 h interval only the
// engine's own trigger (a checkpoint as soon as a dirty set is over its bound) can make progress.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';

const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('dirty-set bound', () => {
  it.each([50, 3_600_000])(
    'checkpoints clear a dirty set over its bound: many distinct keys, a small bound, no stall (interval %i ms)',
    async (checkpointIntervalMs) => {
      const stateDir = mkdtempSync(join(tmpdir(), 'statefn-dirty-'));
      dirs.push(stateDir);
      const n = 20_000;
      const engine = await Engine.start(app, { stateDir, workers: 2, limits: { dirtyEntriesMax: 64, checkpointIntervalMs } });
      const input = engine.app.ingresses[0]!.connector as unknown as MemoryIngress<RoutedMessage>;
      const output = engine.app.egresses.get('test/out') as MemoryEgress;
      input.pushAll(
        Array.from({ length: n }, (_, i): RoutedMessage => ({
          to: { typename: 'test/counter', id: `key-${i}` },
          message: Message.of(Types.long, i),
        })),
      );
      // Egress is released only by complete checkpoints: all of it arriving means they kept coming.
      await output.waitFor(n, 60_000);
      await engine.stop();
      const ids = new Set(output.records.map((r) => (r.message.toJSON() as { id: string; count: number }).id));
      expect(ids.size).toBe(n);
      expect(output.records.every((r) => (r.message.toJSON() as { count: number }).count === 1)).toBe(true);
    },
  );
});
