/**
 * `GeneratorIngress`: produces synthetic records for load tests and examples, at a given rate or
 * as fast as the engine takes them.
 *
 * Determinism. Record i is `make(i, rng)` where `rng` has just been reseeded from (seed, i), so a
 * record depends only on the seed and its index, never on batch boundaries, timing or the records
 * before it. `seek(i)` therefore regenerates exactly the records a previous run produced from
 * position i on, which is what an exactly-once checkpoint of `position()` needs.
 *
 * Flow control. Records go to the engine in batches of at most `batchSize`. When `ctx.submit`
 * returns false the generator waits for `ctx.whenWritable()`; otherwise it yields to the event
 * loop with `setImmediate` between batches. With `ratePerSec`, a token bucket refilled from the
 * clock limits the rate; waiting for tokens is a timer, never a busy loop.
 */
import type { IngressConnector, IngressContext } from '../../api/connector_api.js';
import { ErrorCode, StatefnError, errorInfo } from '../../shared/errors.js';
import { Xoshiro128, type Rng } from './rng.js';

/** Options of a {@link GeneratorIngress}. */
export interface GeneratorIngressOptions<R> {
  /** The ingress id, `namespace/name`. */
  id: string;
  /** Records per second; 0 or undefined = as fast as the engine accepts them. */
  ratePerSec?: number;
  /** Total records to produce (indices [0, count)); undefined = unbounded. */
  count?: number;
  /** Records per `submit` call. Default 256. */
  batchSize?: number;
  /** Seed of the per-record random streams (a safe integer). Default 0. */
  seed?: number;
  /**
   * Largest burst the rate limiter allows after an idle or back-pressured period, as a duration
   * of the configured rate (tokens saved up are capped at `ratePerSec * rateBurstMs / 1000`).
   * Only used with `ratePerSec`. Default 50 ms.
   */
  rateBurstMs?: number;
  /**
   * Builds record `index`. `rng` is reseeded from (seed, index) before every call and is valid
   * only during the call; draw from it, do not keep it. Must be deterministic given its
   * arguments for replays to reproduce the same records.
   */
  make: (index: number, rng: Rng) => R;
}

const BATCH_SIZE_DEFAULT = 256;
const BATCH_SIZE_MAX = 1 << 20;
const RATE_BURST_MS_DEFAULT = 50;

function invalid(id: string, key: string, expected: string, got: unknown): StatefnError {
  return new StatefnError(
    ErrorCode.CONFIG_INVALID,
    `generator ingress '${id}': options.${key}: expected ${expected}, got ${JSON.stringify(got)}`,
  );
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Resolves when `p` settles or `signal` aborts, whichever is first (never rejects). */
function untilOrAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    p.then(done, done);
  });
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class GeneratorIngress<R> implements IngressConnector<R> {
  readonly id: string;
  /** Resolves when `count` records were submitted or the generator stopped; rejects if it failed. */
  readonly done: Promise<void>;

  private readonly ratePerSec: number;
  private readonly count: number | undefined;
  private readonly batchSize: number;
  private readonly seed: number;
  private readonly tokensMax: number;
  private readonly make: (index: number, rng: Rng) => R;

  private next = 0;
  private started = false;
  private readonly stopping = new AbortController();
  private resolveDone!: () => void;
  private rejectDone!: (err: unknown) => void;

  constructor(options: GeneratorIngressOptions<R>) {
    const id = options?.id;
    if (typeof id !== 'string' || id.length === 0) throw invalid(String(id), 'id', "an ingress id 'namespace/name'", id);
    this.id = id;
    const rate = options.ratePerSec ?? 0;
    if (!(typeof rate === 'number' && Number.isFinite(rate) && rate >= 0)) {
      throw invalid(id, 'ratePerSec', 'a number >= 0 (0 = unlimited)', rate);
    }
    if (options.count !== undefined && !(Number.isSafeInteger(options.count) && options.count >= 0)) {
      throw invalid(id, 'count', 'an integer >= 0, or undefined for unbounded', options.count);
    }
    const batchSize = options.batchSize ?? BATCH_SIZE_DEFAULT;
    if (!(Number.isInteger(batchSize) && batchSize >= 1 && batchSize <= BATCH_SIZE_MAX)) {
      throw invalid(id, 'batchSize', `an integer in [1, ${BATCH_SIZE_MAX}]`, batchSize);
    }
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed)) throw invalid(id, 'seed', 'a safe integer', seed);
    const burstMs = options.rateBurstMs ?? RATE_BURST_MS_DEFAULT;
    if (!(typeof burstMs === 'number' && Number.isFinite(burstMs) && burstMs > 0)) {
      throw invalid(id, 'rateBurstMs', 'a number of milliseconds > 0', burstMs);
    }
    if (typeof options.make !== 'function') throw invalid(id, 'make', 'a function (index, rng) => record', typeof options.make);
    this.ratePerSec = rate;
    this.count = options.count;
    this.batchSize = batchSize;
    this.seed = seed;
    // At least one token so a rate below 1000/burstMs still makes progress one record at a time.
    this.tokensMax = Math.max(1, (rate * burstMs) / 1000);
    this.make = options.make;
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // `done` may legitimately go unobserved; its failure is also logged, so do not let an
    // unobserved rejection crash the process.
    this.done.catch(() => {});
  }

  /** The index of the next record to generate (= records submitted so far, counting from the seek). */
  position(): number {
    return this.next;
  }

  /** Continue from record `index` (e.g. a checkpointed `position()`). Must be called before `start`. */
  seek(index: number): void {
    if (this.started) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `generator ingress '${this.id}': seek(${index}) after start; call seek before the engine starts the ingress`,
      );
    }
    if (!(Number.isSafeInteger(index) && index >= 0 && (this.count === undefined || index <= this.count))) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `generator ingress '${this.id}': seek(index): expected an integer in [0, ${this.count ?? 'Number.MAX_SAFE_INTEGER'}], ` +
          `got ${String(index)}`,
      );
    }
    this.next = index;
  }

  start(ctx: IngressContext<R>): void {
    if (this.started) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `generator ingress '${this.id}': started twice; create one GeneratorIngress per engine`,
      );
    }
    this.started = true;
    const onEngineAbort = (): void => this.stopping.abort();
    if (ctx.signal.aborted) this.stopping.abort();
    else ctx.signal.addEventListener('abort', onEngineAbort, { once: true });
    this.run(ctx).then(
      () => {
        ctx.signal.removeEventListener('abort', onEngineAbort);
        this.resolveDone();
      },
      (err: unknown) => {
        ctx.signal.removeEventListener('abort', onEngineAbort);
        ctx.logger.error(`generator ingress '${this.id}' failed at record ${this.next}`, { error: errorInfo(err) });
        this.rejectDone(err);
      },
    );
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (!this.started) {
      this.resolveDone();
      return;
    }
    // The loop checks `stopping` right before every submit, so once it has exited no submit
    // can follow. A failure was already reported through `done` and the logger.
    await this.done.catch(() => {});
  }

  private async run(ctx: IngressContext<R>): Promise<void> {
    const signal = this.stopping.signal;
    const rng = new Xoshiro128(this.seed, 0);
    const rate = this.ratePerSec;
    let tokens = 0;
    let refilledAt = performance.now();
    while (!signal.aborted && (this.count === undefined || this.next < this.count)) {
      let n = this.batchSize;
      if (this.count !== undefined) n = Math.min(n, this.count - this.next);
      if (rate > 0) {
        const now = performance.now();
        tokens = Math.min(this.tokensMax, tokens + ((now - refilledAt) * rate) / 1000);
        refilledAt = now;
        if (tokens < 1) {
          // Sleep until one token is there; a timer, so the event loop keeps running.
          await sleep(Math.max(1, Math.ceil(((1 - tokens) * 1000) / rate)), signal);
          continue;
        }
        n = Math.min(n, Math.floor(tokens));
        tokens -= n;
      }
      const from = this.next;
      const batch: R[] = new Array<R>(n);
      for (let i = 0; i < n; i++) {
        rng.reseed(this.seed, from + i);
        try {
          batch[i] = this.make(from + i, rng);
        } catch (e) {
          // A bug in `make` would throw again on every replay of this index, so skipping it
          // would silently change the record stream: stop here instead, at a known position.
          throw new StatefnError(
            ErrorCode.INGRESS_RECORD_INVALID,
            `generator ingress '${this.id}': options.make(${from + i}) threw: ${(e as Error)?.message ?? String(e)}; fix the ` +
              `make function (the generator stopped at position ${from})`,
            { cause: e },
          );
        }
      }
      if (signal.aborted) break;
      // Position and submit move together, synchronously: a checkpoint that reads position()
      // always sees exactly the records handed to the engine.
      this.next = from + n;
      const writable = ctx.submit(batch);
      if (!writable) await untilOrAborted(ctx.whenWritable(), signal);
      else await yieldToEventLoop();
    }
  }
}
