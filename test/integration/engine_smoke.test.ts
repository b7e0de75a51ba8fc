// Proves the engine routes ingress messages to workers, keeps per-address state, emits egress,
// and keeps that state across a clean stop and restart.
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

const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function io(engine: Engine) {
  return {
    input: engine.app.ingresses[0]!.connector as unknown as MemoryIngress<RoutedMessage>,
    output: engine.app.egresses.get('test/out') as MemoryEgress,
  };
}

describe('engine smoke', () => {
  it('counts per address across workers and a clean restart', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-smoke-'));
    dirs.push(stateDir);
    const msgs = (n: number) =>
      Array.from({ length: n }, (_, i): RoutedMessage => ({
        to: { typename: 'test/counter', id: `k${i % 100}` },
        message: Message.of(Types.long, i),
      }));
    let engine = await Engine.start(app, { stateDir, workers: 2 });
    let { input, output } = io(engine);
    input.pushAll(msgs(1000));
    await output.waitFor(1000, 20_000);
    await engine.stop();
    engine = await Engine.start(app, { stateDir, workers: 2 });
    ({ input, output } = io(engine));
    input.pushAll(msgs(100));
    await output.waitFor(100, 20_000);
    const counts = output.records.map((r) => (r.message.toJSON() as { count: number }).count);
    expect(Math.min(...counts)).toBe(11);
    expect(Math.max(...counts)).toBe(11);
    await engine.stop();
  });
});
