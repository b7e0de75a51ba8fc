/**
 * `MemoryIngress`: records pushed from code (tests, examples, embedding applications) delivered
 * to the engine in batches, honouring back-pressure. The queue is bounded: pushing beyond
 * `queueRecordsMax` throws OVERLOADED instead of growing without limit.
 */
import type { IngressConnector, IngressContext } from '../../api/connector_api.js';
import { ErrorCode, StatefnError, errorInfo } from '../../shared/errors.js';

/** Options of a {@link MemoryIngress}. */
export interface MemoryIngressOptions {
  /** The ingress id, `namespace/name`. */
  id: string;
  /** Records per `submit` call. Default 256. */
  batchSize?: number;
  /** Records queued but not yet submitted above which `push` throws OVERLOADED. Default 1,000,000. */
  queueRecordsMax?: number;
}

const BATCH_SIZE_DEFAULT = 256;
const QUEUE_RECORDS_MAX_DEFAULT = 1_000_000;
/** Consumed slots at the head of the queue array tolerated before it is compacted. */
const QUEUE_HEAD_SLACK_MAX = 4096;

interface DrainWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class MemoryIngress<R> implements IngressConnector<R> {
  readonly id: string;
  private readonly batchSize: number;
  private readonly queueRecordsMax: number;

  // A FIFO as an array plus a head index: O(1) dequeue, compacted now and then.
  private queue: R[] = [];
  private head = 0;
  private state: 'new' | 'started' | 'stopped' = 'new';
  private readonly stopping = new AbortController();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private drainWaiters: DrainWaiter[] = [];

  constructor(options: MemoryIngressOptions) {
    const id = options?.id;
    if (typeof id !== 'string' || id.length === 0) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `memory ingress: options.id: expected an ingress id 'namespace/name', got ${JSON.stringify(id)}`,
      );
    }
    this.id = id;
    this.batchSize = checkInt(id, 'batchSize', options.batchSize ?? BATCH_SIZE_DEFAULT, 1, 1 << 20);
    this.queueRecordsMax = checkInt(id, 'queueRecordsMax', options.queueRecordsMax ?? QUEUE_RECORDS_MAX_DEFAULT, 1, 1 << 30);
  }

  /** Records queued and not yet submitted. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Queue records for delivery (before or after start). Throws OVERLOADED past queueRecordsMax. */
  push(...records: R[]): void {
    this.pushAll(records);
  }

  /** `push` for an array (no argument-count limit). All or nothing: on OVERLOADED none is queued. */
  pushAll(records: readonly R[]): void {
    if (this.state === 'stopped') {
      throw new StatefnError(ErrorCode.ENGINE_STOPPED, `memory ingress '${this.id}': push after stop; records cannot be delivered`);
    }
    if (this.queued + records.length > this.queueRecordsMax) {
      throw new StatefnError(
        ErrorCode.OVERLOADED,
        `memory ingress '${this.id}': ${this.queued} records queued, pushing ${records.length} more exceeds queueRecordsMax ` +
          `(${this.queueRecordsMax}); await drained() before pushing more, or raise queueRecordsMax`,
        { retriable: true },
      );
    }
    for (const r of records) this.queue.push(r);
    this.wake?.();
  }

  /** Resolves once every record pushed so far has been submitted; rejects if stopped first. */
  drained(): Promise<void> {
    if (this.queued === 0) return Promise.resolve();
    if (this.state === 'stopped') return Promise.reject(this.stoppedWithRecords());
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  start(ctx: IngressContext<R>): void {
    if (this.state !== 'new') {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `memory ingress '${this.id}': started ${this.state === 'started' ? 'twice' : 'after stop'}; create one MemoryIngress per engine`,
      );
    }
    this.state = 'started';
    const onAbort = (): void => this.stopping.abort();
    if (ctx.signal.aborted) this.stopping.abort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });
    this.loop = this.run(ctx)
      .catch((err: unknown) => {
        ctx.logger.error(`memory ingress '${this.id}' failed`, { error: errorInfo(err) });
      })
      .finally(() => {
        ctx.signal.removeEventListener('abort', onAbort);
        this.state = 'stopped';
        if (this.queued > 0) for (const w of this.drainWaiters.splice(0)) w.reject(this.stoppedWithRecords());
      });
  }

  /** Stop delivering; resolves once no more `submit` calls will come. Queued records stay unsent. */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.wake?.();
    if (this.loop) await this.loop;
    this.state = 'stopped';
  }

  private async run(ctx: IngressContext<R>): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      if (this.queued === 0) {
        for (const w of this.drainWaiters.splice(0)) w.resolve();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      const end = Math.min(this.queue.length, this.head + this.batchSize);
      const batch = this.queue.slice(this.head, end);
      this.head = end;
      this.compact();
      const writable = ctx.submit(batch);
      if (!writable) await untilOrAborted(ctx.whenWritable(), signal);
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > QUEUE_HEAD_SLACK_MAX && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private stoppedWithRecords(): StatefnError {
    return new StatefnError(ErrorCode.ENGINE_STOPPED, `memory ingress '${this.id}': stopped with ${this.queued} records not delivered`);
  }
}

function checkInt(id: string, key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `memory ingress '${id}': options.${key}: expected an integer in [${min}, ${max}], got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/** Resolves when `p` settles or `signal` aborts (never rejects). */
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
