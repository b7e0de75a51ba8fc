// Remote functions served by StateFun's official JavaScript SDK (apache-flink-statefun 3.3.0),
// called by statefn's runtime over the request-reply protocol: state negotiation on the first
// call, state across calls and restarts, delayed messages and cancellation, TTL, batching under
// a slow function, and functions that fail, hang or answer garbage.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf } from '../fixtures/engine_harness.js';
import { startBadService, startJsService, startPyService, type RemoteService } from '../fixtures/remote/services.js';
import type { RemoteAppParams } from '../fixtures/apps/remote_app.js';

const appUrl = new URL('../fixtures/apps/remote_app.ts', import.meta.url).href;
const dirs = new TempDirs();
let js: RemoteService;
beforeAll(async () => {
  js = await startJsService();
}, 120_000);
afterAll(async () => {
  await js?.stop();
  dirs.removeAll();
});

const msg = (typename: string, id: string, s: string): RoutedMessage => ({ to: { typename, id }, message: Message.of(Types.string, s) });
const strings = (e: ReturnType<typeof egressOf>): string[] => e.records.map((r) => r.message.asString());

async function start(
  params: RemoteAppParams,
  stateDir = dirs.make('remote'),
  limits: Record<string, number> = {},
): Promise<{ engine: Engine; stateDir: string; logger: MemoryLogger }> {
  const logger = new MemoryLogger();
  const engine = await Engine.start(
    { module: appUrl, params },
    { stateDir, workers: 2, logger, limits: { checkpointIntervalMs: 300, ...limits } },
  );
  return { engine, stateDir, logger };
}

describe('remote functions (official JS SDK)', () => {
  it('negotiates state on the first call and keeps it across calls and a restart', async () => {
    const { engine, stateDir, logger } = await start({ url: js.url });
    const greets = egressOf(engine, 'remote-test/greets');
    ingressOf(engine, 'rt/in').push(
      msg('remote-test/greeter', 'alice', 'hi'),
      msg('remote-test/greeter', 'bob', 'hi'),
      msg('remote-test/greeter', 'alice', 'hi'),
    );
    await greets.waitFor(3, 30_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n${JSON.stringify(logger.lines.slice(-10))}`);
    });
    expect(strings(greets).sort()).toEqual(['Hello alice, seen 1', 'Hello alice, seen 2', 'Hello bob, seen 1']);
    await engine.stop();

    const again = await start({ url: js.url }, stateDir);
    const greets2 = egressOf(again.engine, 'remote-test/greets');
    ingressOf(again.engine, 'rt/in').push(msg('remote-test/greeter', 'alice', 'hi'));
    await greets2.waitFor(1, 30_000);
    expect(strings(greets2)).toEqual(['Hello alice, seen 3']);
    await again.engine.stop();
  });

  it('delayed messages fire, cancelled ones do not', async () => {
    const { engine } = await start({ url: js.url });
    const out = egressOf(engine, 'remote-test/delayed-out');
    const input = ingressOf(engine, 'rt/in');
    input.push(msg('remote-test/delayed', 'd', 'schedule:t1:300'), msg('remote-test/delayed', 'd', 'schedule:t2:400'));
    input.push(msg('remote-test/delayed', 'd', 'cancel:t2'));
    await out.waitFor(1, 20_000);
    await new Promise((r) => setTimeout(r, 800));
    expect(strings(out)).toEqual(['fired:t1']);
    await engine.stop();
  });

  it('expires state after its TTL (expireAfterWrite)', async () => {
    const { engine } = await start({ url: js.url });
    const out = egressOf(engine, 'remote-test/ttl-out');
    const input = ingressOf(engine, 'rt/in');
    // Timed by the pushes, not by the egress (which shows up only after its checkpoint).
    input.push(msg('remote-test/ttl', 'x', 'set:v1'));
    await new Promise((r) => setTimeout(r, 300));
    input.push(msg('remote-test/ttl', 'x', 'get'));
    await out.waitFor(2, 20_000);
    await new Promise((r) => setTimeout(r, 3_000)); // the service's TTL is 2 s after the write
    input.push(msg('remote-test/ttl', 'x', 'get'));
    await out.waitFor(3, 20_000);
    expect(strings(out)).toEqual(['read none', 'read v1', 'read none']);
    await engine.stop();
  });

  it('batches the messages that queue while a slow call is in flight, and other addresses go on meanwhile', async () => {
    const { engine } = await start({ url: js.url });
    const slow = egressOf(engine, 'remote-test/slow-out');
    const greets = egressOf(engine, 'remote-test/greets');
    const input = ingressOf(engine, 'rt/in');
    input.push(msg('remote-test/slow', 's1', '300'));
    await new Promise((r) => setTimeout(r, 100));
    input.push(...Array.from({ length: 20 }, () => msg('remote-test/slow', 's1', '1')));
    input.push(msg('remote-test/slow', 's2', '3000'));
    await new Promise((r) => setTimeout(r, 100));
    input.push(msg('remote-test/greeter', 'fast', 'hi'));
    await greets.waitFor(1, 20_000);
    // Not behind s2's 3 s call: the greeting is out before s2's reply (an order, not a timing).
    expect(strings(slow).filter((x) => x.startsWith('s2 '))).toEqual([]);
    await slow.waitFor(22, 30_000);
    const s1 = strings(slow).filter((x) => x.startsWith('s1 '));
    expect(s1).toHaveLength(21);
    // The 20 queued messages went out together: positions 1..20 of one batch.
    expect(Math.max(...s1.map((x) => Number(/#(\d+)/.exec(x)![1])))).toBe(20);
    const stats = engine.stats();
    expect(stats.remote.batched / stats.remote.calls).toBeGreaterThan(1);
    expect(stats.remote.batchSizes['16-31']).toBeGreaterThanOrEqual(1);
    await engine.stop();
  });

  for (const mode of ['status500', 'hang', 'garbage'] as const) {
    const behaviour = mode === 'status500' ? 'answers 500' : mode === 'hang' ? 'hangs' : 'answers garbage';
    it(`a function that ${behaviour}: its messages are dead-lettered with the endpoint and the reason, others go on`, async () => {
      const bad = await startBadService(mode);
      try {
        const { engine, logger } = await start({ url: bad.url, callTimeoutMs: 1_500 });
        ingressOf(engine, 'rt/in').push(msg('remote-test/greeter', 'victim', 'hi'));
        const why =
          mode === 'status500'
            ? /HTTP 500/
            : mode === 'hang'
              ? /no response within/
              : /STATEFN_REMOTE_PROTOCOL|not valid|malformed|decode/i;
        const deadline = Date.now() + 20_000;
        let line: string | undefined;
        while (line === undefined && Date.now() < deadline) {
          line = logger.lines.map((l) => l.msg).find((m) => m.includes('dead letter') && m.includes('remote-test/greeter/victim'));
          if (line === undefined) await new Promise((r) => setTimeout(r, 100));
        }
        expect(line, JSON.stringify(logger.lines)).toBeDefined();
        expect(line).toContain(bad.url);
        expect(line).toMatch(why);
        expect(engine.stats().remote.failures).toBeGreaterThanOrEqual(1);
        await engine.stop();
      } finally {
        await bad.stop();
      }
    });
  }

  const restoreTest =
    "onFailure 'restore' restores the last checkpoint instead of dead-lettering, and fails the engine past workerRestartsMax";
  it(restoreTest, async () => {
    const bad = await startBadService('status500');
    try {
      // One in-process restart: the worker dies on the failed call, the engine restores the last
      // checkpoint and redelivers the message, which fails again; the second death is final.
      const { engine, logger } = await start({ url: bad.url, callTimeoutMs: 3_000, onFailure: 'restore' }, undefined, {
        workerRestartsMax: 1,
      });
      ingressOf(engine, 'rt/in').push(msg('remote-test/greeter', 'v', 'hi'));
      // A checkpoint that covers the message (held as pending while its call is retried): the
      // restored run redelivers it. The in-memory ingress of a fresh module instance does not
      // replay what no checkpoint covered.
      await engine.checkpoint();
      await expect(engine.failed()).rejects.toThrow(/HTTP 500/);
      await engine.tornDown();
      const restoring = /restoring the last complete checkpoint after: .*HTTP 500.*\(restart 1\/1\)/;
      expect(logger.lines.some((l) => l.level === 'warn' && restoring.test(l.msg))).toBe(true);
      expect(logger.lines.some((l) => l.msg.includes('dead letter'))).toBe(false);
    } finally {
      await bad.stop();
    }
  });
});

describe('remote functions (official Python SDK)', () => {
  it('greets with state, fires and cancels delayed messages, and expires state after the last call (expireAfterCall)', async () => {
    const py = await startPyService({ env: { REMOTE_TEST_TTL_MS: '1500' } });
    try {
      const { engine } = await start({ url: py.url });
      const input = ingressOf(engine, 'rt/in');
      const greets = egressOf(engine, 'remote-test/greets');
      const delayed = egressOf(engine, 'remote-test/delayed-out');
      const ttl = egressOf(engine, 'remote-test/ttl-out');
      input.push(msg('remote-test/greeter', 'p1', 'hi'), msg('remote-test/greeter', 'p1', 'hi'));
      input.push(
        msg('remote-test/delayed', 'd', 'schedule:a:200'),
        msg('remote-test/delayed', 'd', 'schedule:b:300'),
        msg('remote-test/delayed', 'd', 'cancel:b'),
      );
      await greets.waitFor(2, 20_000);
      await delayed.waitFor(1, 20_000);
      // expireAfterCall: calls 400 ms apart keep the value alive (each call restarts its 1.5 s),
      // a pause of 3 s expires it. The pushes are timed, not the egress (which waits for its
      // checkpoint, so it shows up later than the call).
      input.push(msg('remote-test/ttl-call', 't', 'set:v'));
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 400));
        input.push(msg('remote-test/ttl-call', 't', 'get'));
      }
      await ttl.waitFor(4, 20_000);
      await new Promise((r) => setTimeout(r, 3_000));
      input.push(msg('remote-test/ttl-call', 't', 'get'));
      await ttl.waitFor(5, 20_000);
      expect(strings(ttl)).toEqual(['read none', 'read v', 'read v', 'read v', 'read none']);
      expect(strings(greets)).toEqual(['Hello p1, seen 1', 'Hello p1, seen 2']);
      expect(strings(delayed)).toEqual(['fired:a']);
      await engine.stop();
    } finally {
      await py.stop();
    }
  });
});
