// CI: the seeded crash test with the interpreter as a remote function served by StateFun's
// official JS SDK behind HTTP; the engine is SIGKILLed 10 times and the function service is
// killed and restarted at every other run. Checked against the model.
import { describe, expect, it } from 'vitest';
import { runCrashTest } from '../crash/runner.js';

describe('seeded crash test with a remote function (official JS SDK)', () => {
  it('seed 3: state and egress exactly-once after 10 SIGKILLs and 5 service crashes', async () => {
    const r = await runCrashTest({ seed: 3, mode: 'kill', instances: 200, count: 3000, remote: true, log: () => {} });
    expect(r.report).toMatch(/^PASS/);
    expect(r.ok).toBe(true);
  }, 600_000);
});
