// Proves the HTTP ingress acknowledges a message only once the checkpoint that covers it is
// complete (checkpoint.json already names a later epoch when the 202 arrives), and that the
// acknowledged effect is in the state after a restart. Group commit: a waiting reply starts a
// checkpoint on demand (a 60 s interval never fires here), concurrent requests share checkpoints,
// and a plain whenDurable() (Kafka's offset commits) does not start one.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import type { HttpIngress } from '../../connectors/http/http_ingress.js';

const app = new URL('../fixtures/apps/http_counter_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const epochOf = (stateDir: string): number => {
  try {
    return (JSON.parse(readFileSync(join(stateDir, 'checkpoint.json'), 'utf8')) as { epoch: number }).epoch;
  } catch {
    return 0;
  }
};

describe('HTTP ingress durable replies', () => {
  it('replies 202 after the covering checkpoint completed', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-httpd-'));
    dirs.push(stateDir);
    const engine = await Engine.start(app, { stateDir, workers: 2, limits: { checkpointIntervalMs: 300 } });
    const http = engine.app.ingresses[0]!.connector as unknown as HttpIngress;
    const { port } = http.address();
    for (let i = 0; i < 3; i++) {
      const before = epochOf(stateDir);
      const r = await fetch(`http://127.0.0.1:${port}/hc/counter/a`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/vnd.io.statefun.types/string' },
        body: '',
      });
      expect(r.status).toBe(202);
      // The message was submitted after checkpoint `before` began at the earliest, so the one
      // covering it is later: the reply waited for it.
      expect(epochOf(stateDir)).toBeGreaterThan(before);
    }
    await engine.stop();
  });

  it('starts a checkpoint on demand for waiting replies, shared by concurrent requests', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-httpd-'));
    dirs.push(stateDir);
    const engine = await Engine.start(app, { stateDir, workers: 2, limits: { checkpointIntervalMs: 60_000, durableWaitMs: 5 } });
    const http = engine.app.ingresses[0]!.connector as unknown as HttpIngress;
    const { port } = http.address();
    const post = (id: string) =>
      fetch(`http://127.0.0.1:${port}/hc/counter/${id}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/vnd.io.statefun.types/string' },
        body: '',
      });
    // No interval checkpoint runs during this test: each reply needs one started on demand.
    expect((await post('a')).status).toBe(202);
    expect(epochOf(stateDir)).toBeGreaterThanOrEqual(1);
    // 200 concurrent requests: every one answered, by far fewer checkpoints than requests.
    const before = epochOf(stateDir);
    const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => post(`k${i % 50}`)));
    expect(rs.every((r) => r.status === 202)).toBe(true);
    const used = epochOf(stateDir) - before;
    expect(used).toBeGreaterThanOrEqual(1);
    expect(used).toBeLessThan(100);
    // A waiter without `soon` does not start a checkpoint; a `soon` one does, and covers both.
    const e0 = epochOf(stateDir);
    let plainDone = false;
    const plain = engine.whenDurable().then(() => {
      plainDone = true;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(plainDone).toBe(false);
    expect(epochOf(stateDir)).toBe(e0);
    await engine.whenDurable({ soon: true });
    await plain;
    expect(epochOf(stateDir)).toBe(e0 + 1);
    await engine.stop();
  });
});

// Regression (issue 12, item 1): a request waiting for its checkpoint got 202 at once when a clean
// stop began or a worker thread died, before any checkpoint covered it; a SIGKILL right after lost
// the acknowledged write. The contract: 202 only once the covering checkpoint completed, else 503.
describe('HTTP ingress: no 202 before the covering checkpoint', () => {
  // No checkpoint can complete while the request waits: a 1 h interval and a 60 s group commit.
  const limits = { checkpointIntervalMs: 3_600_000, durableWaitMs: 60_000, workerRestartsMax: 0 };

  // The reply is wrapped: an async function returning a promise would wait for it.
  const waitingRequest = async (engine: Engine): Promise<{ reply: Promise<Response> }> => {
    const http = engine.app.ingresses[0]!.connector as unknown as HttpIngress;
    const { port } = http.address();
    const reply = fetch(`http://127.0.0.1:${port}/hc/counter/w`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/vnd.io.statefun.types/string' },
      body: '',
    });
    const deadline = Date.now() + 20_000;
    while (engine.stats().ingested < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(engine.stats().ingested).toBe(1);
    return { reply };
  };

  it('answers 503 with Retry-After when a clean stop begins first', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-httpd-'));
    dirs.push(stateDir);
    const engine = await Engine.start(app, { stateDir, workers: 2, limits });
    const { reply } = await waitingRequest(engine);
    await engine.stop();
    const r = await reply;
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).not.toBeNull();
  });

  it('answers 503 when a worker thread dies first', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-httpd-'));
    dirs.push(stateDir);
    const engine = await Engine.start(app, { stateDir, workers: 2, limits });
    const { reply } = await waitingRequest(engine);
    await engine.terminateWorker(0);
    const r = await reply;
    expect(r.status).toBe(503);
    await expect(engine.failed()).rejects.toThrow(/worker 0/);
    await engine.tornDown();
  });
});
