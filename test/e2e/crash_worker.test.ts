// Proves exactly-once when a single worker thread dies: at seeded moments one worker is killed
// (fault injection), the engine restores the last checkpoint in the same process and goes on;
// every counter and every egress record must match the model exactly.
import { describe, expect, it } from 'vitest';
import { runCrashTest } from '../crash/runner.js';

describe('seeded crash test, worker thread killed', () => {
  it('seed 5: 200 instances, 3,000 command trees, 10 worker kills match the model exactly', async () => {
    const lines: string[] = [];
    const r = await runCrashTest({ seed: 5, mode: 'worker', instances: 200, count: 3000, interruptions: 10, log: (l) => lines.push(l) });
    expect(r.ok, `${r.report}\n${lines.join('\n')}`).toBe(true);
    expect({
      over: r.overCounted,
      under: r.underCounted,
      dup: r.egressDuplicates,
      lost: r.egressLosses,
      unexpected: r.egressUnexpected,
    }).toEqual({ over: 0, under: 0, dup: 0, lost: 0, unexpected: 0 });
  }, 300_000);
});
