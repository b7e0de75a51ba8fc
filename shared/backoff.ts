/**
 * One backoff policy for every retry loop (S3 uploads, egress delivery, remote calls, Kafka
 * reconnects, worker restarts): exponential from `baseMs`, capped at `maxMs`, with full jitter
 * (a uniform draw in [delay/2, delay]) so that peers retrying the same outage do not retry in
 * step. Each caller bounds its attempts itself; this only says how long to wait before the next.
 */
import { assert } from './errors.js';

export interface BackoffPolicy {
  /** Delay before the first retry, in ms. */
  readonly baseMs: number;
  /** Upper bound of any delay, in ms. */
  readonly maxMs: number;
  /** Growth per attempt (default 2). */
  readonly factor?: number;
  /** Jitter: the delay is drawn from [delay * (1 - jitter), delay] (default 0.5; 0 = none). */
  readonly jitter?: number;
}

/**
 * The delay in ms before retry number `attempt` (0 = the first retry). `random` defaults to
 * Math.random and is injectable for deterministic tests.
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const factor = policy.factor ?? 2;
  const jitter = policy.jitter ?? 0.5;
  assert(
    policy.baseMs >= 0 && policy.maxMs >= policy.baseMs,
    () => `backoff: need 0 <= baseMs <= maxMs, got ${policy.baseMs}, ${policy.maxMs}`,
  );
  assert(factor >= 1 && jitter >= 0 && jitter <= 1, () => `backoff: need factor >= 1 and 0 <= jitter <= 1, got ${factor}, ${jitter}`);
  assert(Number.isInteger(attempt) && attempt >= 0, () => `backoff: attempt must be a non-negative integer, got ${attempt}`);
  // Cap the exponent so that factor ** attempt cannot overflow to Infinity for long outages.
  const raw = policy.baseMs * factor ** Math.min(attempt, 64);
  const delay = Math.min(policy.maxMs, raw);
  return Math.round(delay * (1 - jitter * random()));
}
