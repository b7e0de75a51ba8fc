// Regression: a delayed message cancelled in the same invocation that sent it never runs (effects
// keep their call order, as in StateFun), and a token cancelled then reused in one call works.
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

const app = new URL('../fixtures/apps/cancel_same_call_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('sendAfter then cancelDelayedMessage in one invocation', () => {
  it('never delivers the cancelled message; a reused token delivers the new one', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-cancel-'));
    dirs.push(stateDir);
    const engine = await Engine.start(app, { stateDir, workers: 2, checkpointing: false });
    const input = engine.app.ingresses[0]!.connector as unknown as MemoryIngress<RoutedMessage>;
    const out = engine.app.egresses.get('cs/out') as MemoryEgress;
    input.push(
      { to: { typename: 'cs/f', id: 'a' }, message: Message.of(Types.string, 'schedule-and-cancel') },
      { to: { typename: 'cs/f', id: 'b' }, message: Message.of(Types.string, 'cancel-then-reschedule') },
    );
    await out.waitFor(2, 20_000);
    // 'after' is due 40 ms later than 'must-not-run' would have been: seeing it means the
    // cancelled one had its chance to fire.
    const values = out.records.map((r) => r.message.asString()).sort();
    expect(values).toEqual(['after', 'rescheduled']);
    await engine.stop();
  });
});
