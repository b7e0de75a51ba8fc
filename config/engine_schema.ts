/**
 * The schema of the engine settings that can be given three ways (EngineOptions, `statefn start`
 * flags and `--set`, and module.yaml's `io.statefn.engine.v1/config`): one bound per key, checked
 * by one function, so the three agree. Limits themselves are validated by `resolveEngineLimits`
 * (shared/limits.ts) whichever way they come in; here are their former names.
 */
import { LIMIT_SPECS, type LimitName, workersMax } from '../shared/limits.js';

/** Former names of limits, still accepted (with a deprecation warning). */
export const LIMIT_ALIASES: Readonly<Record<string, LimitName>> = {
  flushIntervalMs: 'checkpointIntervalMs',
};

const warned = new Set<string>();

/**
 * The current name of limit `name` (itself when it is not a former name). A former name prints a
 * deprecation warning, once per process, naming `where` and the new name.
 */
export function canonicalLimitName(name: string, where: string): string {
  const current = LIMIT_ALIASES[name];
  if (current === undefined) return name;
  if (!warned.has(name)) {
    warned.add(name);
    process.emitWarning(`${where}.${name} is deprecated; write ${current} instead (same meaning and unit)`, {
      type: 'DeprecationWarning',
      code: 'STATEFN_LIMIT_RENAMED',
    });
  }
  return current;
}

/** True if `name` is a limit or a former name of one. */
export function isLimitName(name: string): boolean {
  return Object.hasOwn(LIMIT_SPECS, name) || Object.hasOwn(LIMIT_ALIASES, name);
}

/**
 * Limits with former names replaced by current ones. Writing both names of one limit is an error
 * (returned as the message), since which one wins would be a guess.
 */
export function canonicalLimits(
  limits: Readonly<Record<string, unknown>>,
  where: string,
): Record<string, unknown> | { error: string; key: string } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(limits)) {
    if (v === undefined) continue;
    const name = canonicalLimitName(k, where);
    if (name !== k && Object.hasOwn(limits, name) && limits[name] !== undefined) {
      return { key: k, error: `both ${k} and ${name} are set; ${k} is the former name of ${name}: keep only ${name}` };
    }
    out[name] = v;
  }
  return out;
}

/** A problem with a worker count (for `keyGroups` key groups), or undefined when it is valid. */
export function workersProblem(workers: unknown, keyGroups: number): { message: string; fix?: string } | undefined {
  const n = typeof workers === 'number' ? workers : Number.NaN;
  if (!Number.isInteger(n) || n < 1) {
    return { message: `expected an integer in [1, ${Math.min(workersMax, keyGroups)}] (worker threads), got ${String(workers)}` };
  }
  if (n > keyGroups) {
    return {
      message: `${n} workers but only ${keyGroups} key groups; each worker owns at least one key group`,
      fix: `lower workers or raise keyGroups to at least ${n}`,
    };
  }
  if (n > workersMax) return { message: `expected an integer in [1, ${workersMax}] (worker threads), got ${n}` };
  return undefined;
}
