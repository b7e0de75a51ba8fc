// One codebase, embedded or remote by configuration alone: the same FunctionSpec runs embedded in
// the engine, then served by statefn/sdk and called by the engine over the request-reply
// protocol; both runs must produce the same egress (state, messages, delayed messages,
// cancellations, TTL specs all go over the wire in the remote run).
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { serve } from '../../sdk/index.js';
import sdkCounterApp from '../fixtures/apps/sdk_counter_app.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf } from '../fixtures/engine_harness.js';

const appUrl = new URL('../fixtures/apps/sdk_counter_app.ts', import.meta.url).href;
const dirs = new TempDirs();
afterAll(() => dirs.removeAll());

const m = (id: string, s: string): RoutedMessage => ({ to: { typename: 'sdk/counter', id }, message: Message.of(Types.string, s) });
const INPUT = [m('a', 'one'), m('b', 'one'), m('a', 'forward'), m('a', 'later'), m('b', 'later-cancel'), m('a', 'two'), m('c', 'x')];
// a: one, forward, later, two, delayed (4 own + 1 delayed); a-fwd: forwarded; b: one, later-cancel, cancel; c: x
const EXPECTED_RECORDS = 10;

async function run(remoteUrl?: string): Promise<string[]> {
  const logger = new MemoryLogger();
  const engine = await Engine.start(
    { module: appUrl, params: remoteUrl ? { remoteUrl } : {} },
    { stateDir: dirs.make('sdk-remote'), workers: 2, logger, limits: { checkpointIntervalMs: 300 } },
  );
  try {
    const out = egressOf(engine, 'sdk/out');
    const input = ingressOf(engine, 'sdk/in');
    for (const r of INPUT) {
      input.push(r);
      await new Promise((res) => setTimeout(res, 30)); // one message per batch, as in the embedded run
    }
    await out.waitFor(EXPECTED_RECORDS, 20_000);
    await new Promise((res) => setTimeout(res, 300)); // nothing more may come (the cancelled message)
    expect(logger.errors()).toEqual([]);
    return out.records.map((r) => r.message.asString()).sort();
  } finally {
    await engine.stop();
  }
}

describe('statefn/sdk: the same function embedded and remote', () => {
  it('produces the same effects both ways', async () => {
    const server = await serve(sdkCounterApp(), { path: '/statefun' });
    try {
      const remote = await run(server.url);
      const embedded = await run();
      expect(remote).toHaveLength(EXPECTED_RECORDS);
      expect(remote).toEqual(embedded);
      expect(remote.filter((r) => r.startsWith('a:')).length).toBe(5);
      expect(remote.some((r) => r.includes('->delayed from a'))).toBe(true);
      expect(remote).toContain('a-fwd:1:-->forwarded from a');
      expect(remote.some((r) => r.includes('never'))).toBe(false);
    } finally {
      await server.close();
    }
  });
});
