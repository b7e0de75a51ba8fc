// Proves checkpoints reach a real S3 server incrementally and that an engine on an empty local
// disk restores the last checkpoint from S3, with another worker count, losing nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import type { SnapshotStoreConfig } from '../../snapshot/store_config.js';
import { freshBucket, rawS3Client, s3Credentials, s3Endpoint } from '../fixtures/s3_test_env.js';

const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function io(engine: Engine) {
  return {
    input: engine.app.ingresses[0]!.connector as unknown as MemoryIngress<RoutedMessage>,
    output: engine.app.egresses.get('test/out') as MemoryEgress,
  };
}

const msgs = (n: number) =>
  Array.from({ length: n }, (_, i): RoutedMessage => ({
    to: { typename: 'test/counter', id: `k${i % 100}` },
    message: Message.of(Types.long, i),
  }));

describe('snapshots in S3', () => {
  it('restores onto an empty state directory with a different worker count', async () => {
    const bucket = await freshBucket(rawS3Client(), 'restore');
    const credentials = s3Credentials();
    const snapshots: SnapshotStoreConfig = {
      type: 's3',
      bucket,
      prefix: 'app1',
      endpoint: s3Endpoint(),
      ...(credentials ? { credentials } : {}),
    };
    const first = mkdtempSync(join(tmpdir(), 'statefn-s3a-'));
    const second = mkdtempSync(join(tmpdir(), 'statefn-s3b-'));
    dirs.push(first, second);
    const opts = { snapshots, limits: { checkpointIntervalMs: 200 } };

    let engine = await Engine.start(app, { ...opts, stateDir: first, workers: 2 });
    let { input, output } = io(engine);
    input.pushAll(msgs(1000));
    await output.waitFor(1000, 30_000); // released per checkpoint: the state is in S3 by now
    await engine.stop();
    expect(engine.uploads.length).toBeGreaterThan(0);

    // A new machine: nothing local, the same bucket.
    engine = await Engine.start(app, { ...opts, stateDir: second, workers: 3 });
    ({ input, output } = io(engine));
    input.pushAll(msgs(100));
    await output.waitFor(100, 30_000);
    const counts = output.records.map((r) => (r.message.toJSON() as { count: number }).count);
    expect(new Set(counts)).toEqual(new Set([11]));
    await engine.stop();
  });
});
