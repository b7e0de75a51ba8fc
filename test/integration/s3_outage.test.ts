// Proves an S3 outage does not stop processing and loses nothing: while the store is unreachable
// checkpoints are retried (and logged), egress waits for them, and when S3 returns they complete
// and everything is released exactly once.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { Logger, RoutedMessage } from '../../api/connector_api.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import { freshBucket, rawS3Client, s3Credentials, s3Endpoint } from '../fixtures/s3_test_env.js';

const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A TCP proxy in front of the S3 server that the test can cut. */
async function proxy(target: URL): Promise<{ url: string; cut: (on: boolean) => void; close: () => void }> {
  let cut = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut: (on) => {
      cut = on;
      if (on) for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close: () => server.close(),
  };
}

const msgs = (from: number, n: number) =>
  Array.from({ length: n }, (_, i): RoutedMessage => ({
    to: { typename: 'test/counter', id: `k${(from + i) % 50}` },
    message: Message.of(Types.long, from + i),
  }));

describe('S3 outage', () => {
  it('keeps processing, retries checkpoints, and releases everything once S3 is back', async () => {
    const p = await proxy(new URL(s3Endpoint()));
    const bucket = await freshBucket(rawS3Client(), 'outage');
    const credentials = s3Credentials();
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-outage-'));
    dirs.push(stateDir);
    const warnings: string[] = [];
    const logger: Logger = { info: () => {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) };
    const engine = await Engine.start(app, {
      stateDir,
      workers: 2,
      logger,
      limits: { checkpointIntervalMs: 200 },
      snapshots: {
        type: 's3',
        bucket,
        endpoint: p.url,
        maxAttempts: 1,
        connectionTimeoutMs: 500,
        requestTimeoutMs: 2000,
        ...(credentials ? { credentials } : {}),
      },
    });
    const input = engine.app.ingresses[0]!.connector as unknown as MemoryIngress<RoutedMessage>;
    const output = engine.app.egresses.get('test/out') as MemoryEgress;
    input.pushAll(msgs(0, 100));
    await output.waitFor(100, 30_000);

    p.cut(true);
    input.pushAll(msgs(100, 100));
    // Processing goes on (the handlers run), but no checkpoint completes, so no egress.
    await new Promise((r) => setTimeout(r, 2500));
    expect(engine.stats().processed).toBe(200);
    expect(output.records.length).toBe(100);
    expect(engine.stats().checkpointPendingMs).toBeGreaterThan(0);
    expect(warnings.some((w) => w.includes('upload to the snapshot store failed'))).toBe(true);

    p.cut(false);
    await output.waitFor(200, 60_000);
    await engine.stop();
    p.close();
    const counts = output.records.map((r) => (r.message.toJSON() as { count: number }).count).sort((a, b) => a - b);
    expect(counts.length).toBe(200); // exactly once: no duplicate release after the retries
    expect(counts.at(-1)).toBe(4);
  });
});
