// Proves the crash harness's model and checks agree with the engine through 10 seeded SIGINT
// (clean stop) restarts per seed: every counter and every egress record exact, no loss, no duplicate.
import { describe, expect, it } from 'vitest';
import { runCrashTest } from '../crash/runner.js';

const SEEDS = [1, 20260521];

describe('seeded crash test, clean stops (SIGINT)', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: 200 instances, 3,000 command trees, 10 SIGINT restarts match the model exactly`, async () => {
      const lines: string[] = [];
      const r = await runCrashTest({ seed, mode: 'clean', instances: 200, count: 3000, interruptions: 10, log: (l) => lines.push(l) });
      // The report names the seed, the first differences and the rerun command.
      expect(r.ok, `${r.report}\n${lines.join('\n')}`).toBe(true);
      expect({
        over: r.overCounted,
        under: r.underCounted,
        dup: r.egressDuplicates,
        lost: r.egressLosses,
        unexpected: r.egressUnexpected,
      }).toEqual({ over: 0, under: 0, dup: 0, lost: 0, unexpected: 0 });
    }, 180_000);
  }
});
