/**
 * Delivers egress records (from workers' frames) to egress connectors on the main thread: one
 * ordered queue per egress, one write in flight per egress, retries with backoff on failure.
 * The queued count feeds back-pressure so a slow sink pauses ingress instead of growing memory.
 */
import type { EgressConnector, EgressRecord, Logger } from '../shared/connector_api.js';

const BATCH_MAX = 4096;
const RETRY_BACKOFF_MS_MAX = 30_000;

class EgressQueue {
  private q: EgressRecord[] = [];
  private writing = false;
  private failures = 0;
  written = 0;

  constructor(readonly connector: EgressConnector, private readonly logger: Logger, private readonly onChange: () => void) {}

  get size(): number {
    return this.q.length;
  }

  push(r: EgressRecord): void {
    this.q.push(r);
  }

  pump(): void {
    if (this.writing || this.q.length === 0) return;
    const batch = this.q.length <= BATCH_MAX ? this.q : this.q.slice(0, BATCH_MAX);
    this.q = this.q.length <= BATCH_MAX ? [] : this.q.slice(BATCH_MAX);
    this.writing = true;
    let p: void | Promise<void>;
    try {
      p = this.connector.write(batch);
    } catch (e) {
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
        const delay = Math.min(RETRY_BACKOFF_MS_MAX, 50 * 2 ** Math.min(this.failures, 10));
        this.logger.warn(`egress ${this.connector.id}: write failed, retrying in ${delay} ms`, { error: (e as Error)?.message, records: batch.length });
        this.q = batch.concat(this.q);
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

  constructor(connectors: Iterable<EgressConnector>, logger: Logger, private readonly onChange: () => void) {
    for (const c of connectors) this.queues.set(c.id, new EgressQueue(c, logger, () => this.changed()));
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

  written(id: string): number {
    return this.queues.get(id)?.written ?? 0;
  }

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
    if (this.idleWaiters.length > 0 && [...this.queues.values()].every((q) => q.idle())) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
    this.onChange();
  }
}
