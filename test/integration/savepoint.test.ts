// Proves a savepoint keeps a checkpoint that later checkpoints do not replace, and that starting
// from it replaces the local state, also with another worker count.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { LocalDirStore } from '../../snapshot/local_dir_store.js';
import { latestCheckpoint, writeSavepoint } from '../../snapshot/checkpoint_layout.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import type { RoutedMessage } from '../../api/connector_api.js';

const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const msgs = (n: number) =>
  Array.from({ length: n }, (_, i): RoutedMessage => ({
    to: { typename: 'test/counter', id: `k${i % 100}` },
    message: Message.of(Types.long, i),
  }));

async function run(stateDir: string, workers: number, n: number, extra: Record<string, unknown> = {}): Promise<number[]> {
  const engine = await Engine.start(app, { stateDir, workers, limits: { checkpointIntervalMs: 200 }, ...extra });
  const input = engine.app.ingresses[0]!.connector as unknown as MemoryIngress<RoutedMessage>;
  const output = engine.app.egresses.get('test/out') as MemoryEgress;
  input.pushAll(msgs(n));
  await output.waitFor(n, 30_000);
  await engine.stop();
  return output.records.map((r) => (r.message.toJSON() as { count: number }).count);
}

describe('savepoints', () => {
  it('restores a savepoint with another worker count after later checkpoints', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-sp-'));
    dirs.push(stateDir);
    await run(stateDir, 2, 1000); // every counter at 10
    const store = new LocalDirStore(join(stateDir, 'snapshots'));
    const latest = await latestCheckpoint(store);
    expect(latest).not.toBeNull();
    await writeSavepoint(store, 'ten', latest!);
    await run(stateDir, 2, 500); // counters at 15, and more checkpoints after the savepoint
    const counts = await run(stateDir, 3, 100, { fromSavepoint: 'ten' });
    expect(new Set(counts)).toEqual(new Set([11]));
  });
});
