/**
 * Delivers egress records (from workers' frames) to egress connectors on the main thread: one
 * ordered queue per egress, one write in flight per egress, retries with backoff on failure.
 * The queued count feeds back-pressure so a slow sink pauses ingress instead of growing memory.
 */
import type { EgressConnector, EgressRecord, Logger } from '../api/connector_api.js';
import { backoffDelayMs, type BackoffPolicy } from '../shared/backoff.js';
import { egressBatchRecordsMax, egressRetryBaseMs, egressRetryMaxMs } from '../shared/limits.js';

/** Retries of a failed write or commit of one egress. */
const RETRY: BackoffPolicy = { baseMs: egressRetryBaseMs, maxMs: egressRetryMaxMs };

/** A commit marker in a queue: everything before it belongs to epochs <= `epoch`. */
interface Commit {
  commit: number;
}

type Item = EgressRecord | Commit;

function isCommit(x: Item): x is Commit {
  return (x as Commit).commit !== undefined;
}

class EgressQueue {
  private q: Item[] = [];
  private writing = false;
  private failures = 0;
  written = 0;
  pushed = 0;

  constructor(
    readonly connector: EgressConnector,
    private readonly logger: Logger,
    private readonly onChange: () => void,
    private readonly onCommitted: (id: string, epoch: number) => void,
  ) {}

  get size(): number {
    return this.q.length;
  }

  push(r: Item): void {
    this.q.push(r);
    if (!isCommit(r)) this.pushed++;
  }

  pump(): void {
    if (this.writing || this.q.length === 0) return;
    const head = this.q[0]!;
    if (isCommit(head)) {
      this.writing = true;
      Promise.resolve(this.connector.commitEpoch!(head.commit)).then(
        () => {
          this.q.shift();
          this.writing = false;
          this.failures = 0;
          this.onCommitted(this.connector.id, head.commit);
          this.onChange();
        },
        (e: unknown) => {
          this.failures++;
          const delay = backoffDelayMs(RETRY, this.failures - 1);
          this.logger.warn(`egress ${this.connector.id}: commit of epoch ${head.commit} failed, retrying in ${delay} ms`, {
            error: (e as Error)?.message,
          });
          setTimeout(() => {
            this.writing = false;
            this.onChange();
          }, delay);
        },
      );
      return;
    }
    let n = 0;
    while (n < this.q.length && n < egressBatchRecordsMax && !isCommit(this.q[n]!)) n++;
    const batch = this.q.slice(0, n) as EgressRecord[];
    this.q = this.q.slice(n);
    this.writing = true;
    let p: void | Promise<void>;
    try {
      p = this.connector.write(batch);
    } catch (e) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- pass on the connector's error unchanged
      p = Promise.reject(e);
    }
    Promise.resolve(p).then(
      () => {
        this.writing = false;
        this.failures = 0;
        this.written += batch.length;
        this.onChange();
      },
      (e: unknown) => {
        this.failures++;
        const delay = backoffDelayMs(RETRY, this.failures - 1);
        this.logger.warn(`egress ${this.connector.id}: write failed, retrying in ${delay} ms`, {
          error: (e as Error)?.message,
          records: batch.length,
        });
        this.q = (batch as Item[]).concat(this.q);
        setTimeout(() => {
          this.writing = false;
          this.onChange();
        }, delay);
      },
    );
  }

  idle(): boolean {
    return !this.writing && this.q.length === 0;
  }
}

export class EgressDispatcher {
  private readonly queues = new Map<string, EgressQueue>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    connectors: Iterable<EgressConnector>,
    logger: Logger,
    private readonly onChange: () => void,
    onCommitted: (id: string, epoch: number) => void = () => {},
  ) {
    for (const c of connectors) this.queues.set(c.id, new EgressQueue(c, logger, () => this.changed(), onCommitted));
  }

  /** Queue a commit marker for epoch `epoch` behind everything pushed so far, in every exactly-once sink. */
  commit(epoch: number, only?: string): void {
    for (const q of this.queues.values()) {
      if (q.connector.commitEpoch === undefined || (only !== undefined && q.connector.id !== only)) continue;
      q.push({ commit: epoch });
    }
    this.pump();
  }

  has(id: string): boolean {
    return this.queues.has(id);
  }

  push(r: EgressRecord): boolean {
    const q = this.queues.get(r.egressId);
    if (q === undefined) return false;
    q.push(r);
    return true;
  }

  /** Start writes for queues that have records and no write in flight. */
  pump(): void {
    for (const q of this.queues.values()) q.pump();
  }

  queued(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  /** The exactly-once sinks' committed epochs (`committedEpoch()` as of their start, then commits). */
  transactional(): EgressConnector[] {
    return [...this.queues.values()].map((q) => q.connector).filter((c) => c.commitEpoch !== undefined && c.committedEpoch !== undefined);
  }

  written(id: string): number {
    return this.queues.get(id)?.written ?? 0;
  }

  /**
   * Resolves once the sinks `which` selects have written every record pushed to them so far
   * (for sinks that get records before their checkpoint: the checkpoint waits for this).
   */
  async whenWritten(which: (c: EgressConnector) => boolean): Promise<void> {
    const targets = [...this.queues.values()].filter((q) => which(q.connector)).map((q) => ({ q, upTo: q.pushed }));
    while (targets.some((t) => t.q.written < t.upTo)) {
      this.pump();
      await new Promise<void>((resolve) => this.writtenWaiters.push(resolve));
    }
  }

  private writtenWaiters: (() => void)[] = [];

  /** Resolves when every queue is empty and no write is in flight. */
  async drain(): Promise<void> {
    this.pump();
    if ([...this.queues.values()].every((q) => q.idle())) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  connectors(): EgressConnector[] {
    return [...this.queues.values()].map((q) => q.connector);
  }

  private changed(): void {
    this.pump();
    if (this.writtenWaiters.length > 0) {
      const w = this.writtenWaiters;
      this.writtenWaiters = [];
      for (const f of w) f();
    }
    if (this.idleWaiters.length > 0 && [...this.queues.values()].every((q) => q.idle())) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
    this.onChange();
  }
}
