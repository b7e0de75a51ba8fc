/**
 * `MemoryEgress`: collects egress records in memory for tests and examples, with `waitFor` to
 * await a number of records or a condition. Bounded by `recordsMax`: past it `write` rejects
 * with OVERLOADED (retriable), so the engine backs off until the test calls `clear()`.
 */
import type { EgressConnector, EgressRecord } from '../../api/connector_api.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';

/** Options of a {@link MemoryEgress}. */
export interface MemoryEgressOptions {
  /** The egress id, `namespace/name`. */
  id: string;
  /** Records kept before `write` rejects with OVERLOADED. Default 1,000,000. */
  recordsMax?: number;
}

/** What `waitFor` waits for: at least this many records, or a condition over all records. */
export type MemoryEgressCondition = number | ((records: readonly EgressRecord[]) => boolean);

const RECORDS_MAX_DEFAULT = 1_000_000;
/** Longest `waitFor` timeout accepted: an hour; anything longer is a mistake (e.g. a unit mix-up). */
const WAIT_TIMEOUT_MS_MAX = 3_600_000;

interface Waiter {
  condition: MemoryEgressCondition;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class MemoryEgress implements EgressConnector {
  readonly id: string;
  private readonly recordsMax: number;
  private collected: EgressRecord[] = [];
  private readonly waiters = new Set<Waiter>();

  constructor(options: MemoryEgressOptions) {
    const id = options?.id;
    if (typeof id !== 'string' || id.length === 0) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `memory egress: options.id: expected an egress id 'namespace/name', got ${JSON.stringify(id)}`,
      );
    }
    this.id = id;
    const max = options.recordsMax ?? RECORDS_MAX_DEFAULT;
    if (!(Number.isInteger(max) && max >= 1 && max <= 1 << 30)) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `memory egress '${id}': options.recordsMax: expected an integer in [1, ${1 << 30}], got ${JSON.stringify(max)}`,
      );
    }
    this.recordsMax = max;
  }

  /** The records written so far, in order. */
  get records(): readonly EgressRecord[] {
    return this.collected;
  }

  write(records: readonly EgressRecord[]): void {
    if (this.collected.length + records.length > this.recordsMax) {
      throw new StatefnError(
        ErrorCode.OVERLOADED,
        `memory egress '${this.id}': holding ${this.collected.length} records, ${records.length} more exceed recordsMax ` +
          `(${this.recordsMax}); call clear() or raise recordsMax`,
        { retriable: true },
      );
    }
    for (const r of records) this.collected.push(r);
    this.check();
  }

  /** Forget the records collected so far (pending `waitFor`s keep waiting). */
  clear(): void {
    this.collected = [];
    this.check();
  }

  /**
   * Resolves once at least `condition` records were collected, or `condition(records)` is true
   * (checked now and after every write). Rejects after `timeoutMs` with an error saying what was
   * awaited and what arrived, or if the predicate throws.
   */
  waitFor(condition: MemoryEgressCondition, timeoutMs: number): Promise<void> {
    if (typeof condition !== 'function' && !(Number.isInteger(condition) && condition >= 0)) {
      return Promise.reject(
        new StatefnError(
          ErrorCode.CONFIG_INVALID,
          `memory egress '${this.id}': waitFor(condition): expected a record count >= 0 or a predicate, got ${String(condition)}`,
        ),
      );
    }
    if (!(Number.isFinite(timeoutMs) && timeoutMs >= 0 && timeoutMs <= WAIT_TIMEOUT_MS_MAX)) {
      return Promise.reject(
        new StatefnError(
          ErrorCode.CONFIG_INVALID,
          `memory egress '${this.id}': waitFor(condition, timeoutMs): expected milliseconds in [0, ${WAIT_TIMEOUT_MS_MAX}], ` +
            `got ${String(timeoutMs)}`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        condition,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          const wanted = typeof condition === 'number' ? `${condition} records` : 'its condition';
          const last = this.collected.at(-1);
          reject(
            new StatefnError(
              ErrorCode.EGRESS_FAILED,
              `memory egress '${this.id}': waitFor(${wanted}) timed out after ${timeoutMs} ms with ${this.collected.length} records` +
                (last ? `; last: ${JSON.stringify({ typename: last.message.typename, value: last.message.toJSON() })}` : '') +
                '; check that the functions emit to this egress id, or raise timeoutMs',
            ),
          );
        }, timeoutMs),
      };
      this.waiters.add(waiter);
      this.checkOne(waiter);
    });
  }

  private check(): void {
    for (const w of this.waiters) this.checkOne(w);
  }

  private checkOne(w: Waiter): void {
    let met: boolean;
    try {
      met = typeof w.condition === 'number' ? this.collected.length >= w.condition : w.condition(this.collected);
    } catch (e) {
      this.settle(w);
      w.reject(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    if (met) {
      this.settle(w);
      w.resolve();
    }
  }

  private settle(w: Waiter): void {
    clearTimeout(w.timer);
    this.waiters.delete(w);
  }
}
