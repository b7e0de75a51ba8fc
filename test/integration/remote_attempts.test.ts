// A remote function call dead-lettered after its HTTP retries says how many HTTP attempts were
// actually made (it said `attempts: 1` whatever the retries). A real HTTP server that answers 500
// to every request counts them; the engine's dead letter must carry the same number.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { MemoryLogger, TempDirs, ingressOf, readDeadLetterFile, until } from '../fixtures/engine_harness.js';

const appUrl = new URL('../fixtures/apps/remote_app.ts', import.meta.url).href;
const dirs = new TempDirs();
afterAll(() => dirs.removeAll());

/** An HTTP server that fails every request with 500 and counts them by path. */
async function failingServer(): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end('always failing');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/statefun`,
    requests: () => requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('remote dead letters', () => {
  it('count every HTTP attempt of the failed call', async () => {
    const server = await failingServer();
    const stateDir = dirs.make('remote-attempts');
    const logger = new MemoryLogger();
    // The call is retried with backoff (from remoteRetryBackoffBaseMs) within its call timeout:
    // several attempts in 1.5 s.
    const engine = await Engine.start(
      { module: appUrl, params: { url: server.url, callTimeoutMs: 1_500 } },
      { stateDir, workers: 1, logger, limits: { checkpointIntervalMs: 200 } },
    );
    try {
      ingressOf(engine, 'rt/in').push({ to: { typename: 'remote-test/greeter', id: 'victim' }, message: Message.of(Types.string, 'hi') });
      await until(() => readDeadLetterFile(stateDir).length >= 1, 30_000, 'the dead letter of remote-test/greeter/victim');
      const [dead] = readDeadLetterFile(stateDir);
      expect(dead).toMatchObject({ code: 'STATEFN_REMOTE_FAILED', target: { typename: 'remote-test/greeter', id: 'victim' } });
      expect(server.requests()).toBeGreaterThan(1);
      expect(dead!.attempts).toBe(server.requests());
      expect(String(dead!.error)).toContain(`after ${server.requests()} attempts`);
    } finally {
      await engine.stop();
      await server.close();
    }
  });
});
