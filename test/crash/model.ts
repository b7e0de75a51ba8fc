// The reference model of the crash test: replays the command generator (same seed, indices
// 0..count-1) through a pure in-memory interpreter and returns every instance's expected counter
// and the expected multisets of `egress` records and `verify` reports.
import { Xoshiro128 } from '../../connectors/generator/rng.js';
import { instanceId, makeCommandRecord, type Command } from '../fixtures/apps/command_app.js';

export interface ModelParams {
  seed: number;
  count: number;
  instances: number;
}

export interface Expected {
  /** Expected counter of every instance id (instances never incremented: 0). */
  counters: Map<string, number>;
  /** Multiset of `egress` records, keyed by `egressKey(id, value)`. */
  egress: Map<string, number>;
  /** How many `verify` reports each instance emits during the run (not the final check). */
  verifies: Map<string, number>;
  /** Totals, for the log. */
  invocations: number;
  delayed: number;
  cancelled: number;
}

export function egressKey(id: string, value: string): string {
  return `${id}|${value}`;
}

function bump(m: Map<string, number>, k: string, by = 1): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

/**
 * Runs the command semantics to completion. Message order between instances does not matter for
 * what is compared (counters are sums, egress and verify outputs are multisets), so a work queue
 * stands for the engine's delivery; delayed messages eventually run, cancelled ones never do.
 */
export function runModel(p: ModelParams): Expected {
  const counters = new Map<string, number>();
  for (let n = 0; n < p.instances; n++) counters.set(instanceId(n), 0);
  const egress = new Map<string, number>();
  const verifies = new Map<string, number>();
  let invocations = 0;
  let delayed = 0;
  let cancelled = 0;
  const rng = new Xoshiro128(p.seed, 0);
  const queue: { at: string; commands: Command[] }[] = [];
  for (let i = 0; i < p.count; i++) {
    // Exactly what GeneratorIngress does before calling make(i, rng).
    rng.reseed(p.seed, i);
    const r = makeCommandRecord(i, rng, p.instances);
    queue.push({ at: r.to, commands: r.commands });
    while (queue.length > 0) {
      const { at, commands } = queue.pop()!;
      invocations++;
      for (const c of commands) {
        switch (c.kind) {
          case 'inc':
            bump(counters, at);
            break;
          case 'send':
            queue.push({ at: c.to, commands: c.commands });
            break;
          case 'sendAfter':
            delayed++;
            queue.push({ at: c.to, commands: c.commands });
            break;
          case 'sendAfterCancel':
            // Scheduled, then cancelled by a `cancel` invocation of `at` itself.
            cancelled++;
            queue.push({ at, commands: [{ kind: 'cancel', token: c.token }] });
            break;
          case 'cancel':
            break;
          case 'egress':
            bump(egress, egressKey(at, c.value));
            break;
          case 'verify':
            bump(verifies, at);
            break;
        }
      }
    }
  }
  return { counters, egress, verifies, invocations, delayed, cancelled };
}
