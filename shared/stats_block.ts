/**
 * Per-thread counters and flags shared with the main thread (for progress, metrics, tests and
 * back-pressure). Each thread writes only its own row; readers see approximate values.
 *
 * Layout: one row of 16 Float64 per thread (128 bytes), then one Int32 pressure flag per thread.
 */
export const Stat = {
  processed: 0, // handler invocations that committed
  sent: 1, // messages sent to other threads and to itself
  egressed: 2, // egress records emitted
  dead: 3, // messages dead-lettered
  pending: 4, // decoded messages waiting to be handled
  mailboxed: 5, // messages waiting for a busy address
  parkedBytes: 6, // bytes in outboxes
  cacheEntries: 7, // addresses with state in memory
  dirty: 8, // addresses whose state changed since the last checkpoint
  asyncInFlight: 9, // async invocations running
  timers: 10, // delayed messages held in memory
  checkpointedEpoch: 11, // epoch of the last checkpoint this thread wrote
  failures: 12, // handler attempts that threw
  ingested: 13, // (main) records accepted from ingresses
  remoteCalls: 14, // requests sent to remote functions (negotiation rounds included)
  remoteBatched: 15, // messages carried by those requests
  remoteRetries: 16, // attempts repeated after a failed one
  remoteFailures: 17, // batches whose call failed after its retries
  /**
   * Remote batch sizes: slot REMOTE_BATCH_HIST + k counts batches of 2^k..2^(k+1)-1 messages
   * (k < REMOTE_BATCH_BUCKETS; the last bucket is open).
   */
  remoteBatchHist: 18,
} as const;

export const REMOTE_BATCH_BUCKETS = 11;

const ROW = 18 + REMOTE_BATCH_BUCKETS;

export class StatsBlock {
  private readonly f64: Float64Array;
  private readonly flags: Int32Array;

  constructor(
    readonly buffer: SharedArrayBuffer,
    private readonly threads: number,
  ) {
    this.f64 = new Float64Array(buffer, 0, threads * ROW);
    this.flags = new Int32Array(buffer, threads * ROW * 8, threads);
  }

  static allocate(threads: number): SharedArrayBuffer {
    return new SharedArrayBuffer(threads * ROW * 8 + threads * 4);
  }

  set(thread: number, stat: number, v: number): void {
    this.f64[thread * ROW + stat] = v;
  }

  add(thread: number, stat: number, v: number): void {
    this.f64[thread * ROW + stat] = this.f64[thread * ROW + stat]! + v;
  }

  get(thread: number, stat: number): number {
    return this.f64[thread * ROW + stat]!;
  }

  sum(stat: number): number {
    let s = 0;
    for (let t = 0; t < this.threads; t++) s += this.f64[t * ROW + stat]!;
    return s;
  }

  setPressure(thread: number, on: boolean): void {
    Atomics.store(this.flags, thread, on ? 1 : 0);
  }

  anyPressure(): boolean {
    for (let t = 0; t < this.threads; t++) if (Atomics.load(this.flags, t) !== 0) return true;
    return false;
  }
}
