/**
 * The checkpoint coordinator: decides when checkpoint n starts (every checkpoint interval, soon
 * after a caller waits for durability (group commit), or as soon as a worker's dirty set is over
 * its bound), sends the barriers, collects every worker's acknowledgement that its part of epoch
 * n is written, has it uploaded, writes the checkpoint record, and then completes it: egress of
 * the epoch is released, durability waiters resolve, and COMMIT tells workers to delete the
 * messages recorded by older checkpoints (undo records are not deleted then: a worker clears
 * each undo database when its epoch parity comes round again; docs/checkpoints.md). One
 * checkpoint is under way at a time.
 */
import { type EngineLimits, checkpointHistoryMax } from '../shared/limits.js';
import { ErrorCode, StatefnError, assert } from '../shared/errors.js';
import { writeCheckpointRecord, type CheckpointRecord } from './checkpoint_record.js';

/** One completed checkpoint, as stats and history show it. */
export interface CheckpointInfo {
  epoch: number;
  atMs: number;
  durationMs: number;
  writes: number;
  ok: boolean;
}

/** The checkpoint interval of the limits (the limit's one place of use). */
export function checkpointIntervalMs(limits: EngineLimits): number {
  return limits.checkpointIntervalMs;
}

/** The egress side of a checkpoint (epoch_egress.ts). */
export interface CheckpointEgress {
  /** Before the record is written: what must be durable or written first. */
  beforeRecord(epoch: number): Promise<void>;
  /** The record is written: release and commit the epoch's egress. */
  afterRecord(epoch: number): void;
  /** After a checkpoint: let sinks write what they buffer. */
  flushSinks(): void;
}

/** What the coordinator drives and asks of the engine run. */
export interface CheckpointPorts {
  workers: number;
  limits: EngineLimits;
  stateDir: string;
  /** The run takes new checkpoints (not stopping, stopped or failed). */
  running(): boolean;
  /** Send BARRIER `epoch` to every worker. */
  sendBarrier(epoch: number): void;
  /** Send COMMIT `epoch` to every worker (they delete the messages recorded by checkpoints before it). */
  sendCommit(epoch: number): void;
  /** How far every ingress got (all it submitted so far is routed). */
  positions(): Record<string, unknown>;
  /** True when some worker's dirty set is over limits.dirtyEntriesMax. */
  dirtyOverBound(): boolean;
  /** True when a checkpoint may write now (the state directory has room); false: try again later. */
  storageReady(): boolean;
  egress: CheckpointEgress;
  /** Upload checkpoint `epoch` to the snapshot store, if there is one (`final`: of a clean stop). */
  upload(epoch: number, positions: Record<string, unknown>, final: boolean): Promise<void>;
  fail(e: Error): void;
  schedulePump(): void;
}

interface InFlight {
  epoch: number;
  started: number;
  acks: number;
  writes: number;
  positions: Record<string, unknown>;
}

interface DurableWaiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

export class CheckpointCoordinator {
  private epochNow: number;
  private inFlight: InFlight | undefined;
  private intervalTimer: NodeJS.Timeout | undefined;
  /** A durability waiter arrived after the last checkpoint started (it waits for the next one). */
  private soonWanted = false;
  private soonTimer: NodeJS.Timeout | undefined;
  /** Checkpoint records are written one after the other. */
  private recordWrite: Promise<void> = Promise.resolve();
  private readonly durableWaiters = new Map<number, DurableWaiter[]>();
  private readonly completionWaiters = new Map<number, (() => void)[]>();

  /**
   * @param recoveredEpoch the checkpoint the run resumes from (0: none)
   * @param history        completed checkpoints (kept across the engine's restarts), newest last
   */
  constructor(
    private readonly ports: CheckpointPorts,
    recoveredEpoch: number,
    private readonly history: CheckpointInfo[],
  ) {
    this.epochNow = recoveredEpoch;
  }

  /** The epoch now under way, or of the last checkpoint started. */
  get epoch(): number {
    return this.epochNow;
  }

  /** Start a checkpoint every interval. The timer also keeps the process alive while the engine runs (Atomics.waitAsync does not). */
  startInterval(): void {
    this.intervalTimer = setInterval(() => this.startCheckpoint(), checkpointIntervalMs(this.ports.limits));
  }

  /** No new checkpoints (stop or failure). */
  stopTimers(): void {
    if (this.intervalTimer !== undefined) clearInterval(this.intervalTimer);
    if (this.soonTimer !== undefined) clearTimeout(this.soonTimer);
  }

  /** How long the checkpoint under way has taken so far (0 when none). */
  pendingMs(): number {
    return this.inFlight === undefined ? 0 : Date.now() - this.inFlight.started;
  }

  /** True while a checkpoint is under way. */
  busy(): boolean {
    return this.inFlight !== undefined;
  }

  /** The most recent completed checkpoint. */
  last(): CheckpointInfo | undefined {
    return this.history[this.history.length - 1];
  }

  /**
   * Start checkpoint `epoch`: note how far every ingress got (all it submitted so far is ahead of
   * the barrier in the rings) and send the barrier to every worker (docs/checkpoints.md).
   */
  startCheckpoint(): void {
    if (this.inFlight !== undefined || !this.ports.running()) return;
    // Out of room: no checkpoint now; the interval (or the next waiter) tries again.
    if (!this.ports.storageReady()) return;
    const epoch = ++this.epochNow;
    this.inFlight = { epoch, started: Date.now(), acks: 0, writes: 0, positions: this.ports.positions() };
    // This checkpoint covers every durability waiter so far.
    this.soonWanted = false;
    if (this.soonTimer !== undefined) clearTimeout(this.soonTimer);
    this.soonTimer = undefined;
    this.ports.sendBarrier(epoch);
    this.ports.schedulePump();
  }

  /** A worker's ACK: its part of `epoch` is written (`writes` entries). */
  onAck(epoch: number, writes: number): void {
    const fl = this.inFlight;
    if (fl === undefined || fl.epoch !== epoch) return;
    fl.acks++;
    fl.writes += writes;
    assert(fl.acks <= this.ports.workers, () => `checkpoint ${epoch}: ${fl.acks} acknowledgements from ${this.ports.workers} workers`);
    if (fl.acks === this.ports.workers) this.finish(fl);
  }

  /** A dirty set over its bound clears only by a checkpoint (and pauses ingress meanwhile): start one now. */
  checkDirtyBound(): void {
    if (this.inFlight === undefined && this.ports.running() && this.ports.dirtyOverBound()) this.checkpointSoon();
  }

  private finish(fl: InFlight): void {
    // The next barrier waits until this checkpoint is uploaded and recorded.
    void this.upload(fl.epoch, fl.positions)
      .then(() => {
        this.inFlight = undefined;
        // Waiters that arrived while it ran want the next one.
        if (this.soonWanted) this.checkpointSoon();
        return this.complete(fl.epoch, fl.positions, false);
      })
      .then(
        () => this.afterCheckpoint(fl),
        (e: unknown) => this.ports.fail(e as Error),
      );
  }

  private async upload(epoch: number, positions: Record<string, unknown>, final = false): Promise<void> {
    await this.ports.upload(epoch, positions, final);
  }

  /**
   * Every worker's part is durable: record the checkpoint, then release its egress and let
   * workers delete the messages recorded by older checkpoints (not after a clean stop's).
   */
  private complete(epoch: number, positions: Record<string, unknown>, clean: boolean): Promise<void> {
    const record: CheckpointRecord = { version: 1, epoch, positions, completedAt: new Date().toISOString(), clean };
    this.recordWrite = this.recordWrite.then(async () => {
      await this.ports.egress.beforeRecord(epoch);
      await writeCheckpointRecord(this.ports.stateDir, record);
      this.ports.egress.afterRecord(epoch);
      this.resolveDurable(epoch);
      if (!clean) this.ports.sendCommit(epoch);
      this.ports.schedulePump();
    });
    this.recordWrite.catch((e: unknown) =>
      this.ports.fail(
        // A typed condition (read-only, permission, full disk) keeps its own code.
        new StatefnError(
          e instanceof StatefnError ? e.code : ErrorCode.STATE_DIR_INVALID,
          `cannot write the checkpoint record: ${(e as Error).message}`,
          { cause: e },
        ),
      ),
    );
    return this.recordWrite;
  }

  private afterCheckpoint(fl: InFlight): void {
    const info: CheckpointInfo = { epoch: fl.epoch, atMs: Date.now(), durationMs: Date.now() - fl.started, writes: fl.writes, ok: true };
    this.history.push(info);
    if (this.history.length > checkpointHistoryMax) this.history.shift();
    this.ports.egress.flushSinks();
    const w = this.completionWaiters.get(fl.epoch);
    this.completionWaiters.delete(fl.epoch);
    w?.forEach((f) => f());
  }

  private whenComplete(epoch: number): Promise<void> {
    return new Promise<void>((r) => this.completionWaiters.set(epoch, [...(this.completionWaiters.get(epoch) ?? []), r]));
  }

  /** Take a checkpoint now (after the one under way); resolves with its epoch once it is complete. */
  async checkpoint(): Promise<number> {
    while (this.inFlight !== undefined) await this.whenComplete(this.inFlight.epoch);
    this.startCheckpoint();
    const e = this.epochNow;
    await this.whenComplete(e);
    return e;
  }

  /**
   * Resolves when checkpoint `epoch + 1` (the first to cover what is submitted now) completes.
   * `soon`: start that checkpoint within `limits.durableWaitMs` (group commit).
   */
  whenDurable(opts?: { soon?: boolean }): Promise<void> {
    const epoch = this.epochNow + 1;
    if (opts?.soon === true) this.checkpointSoon();
    return new Promise((resolve, reject) => {
      let w = this.durableWaiters.get(epoch);
      if (w === undefined) this.durableWaiters.set(epoch, (w = []));
      w.push({ resolve, reject });
    });
  }

  /** A checkpoint is wanted soon: start one after durableWaitMs, or right after the one under way. */
  private checkpointSoon(): void {
    this.soonWanted = true;
    if (this.inFlight !== undefined || this.soonTimer !== undefined) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      if (this.soonWanted) this.startCheckpoint();
    }, this.ports.limits.durableWaitMs);
  }

  private resolveDurable(upTo: number): void {
    for (const [epoch, ws] of this.durableWaiters) {
      if (epoch > upTo) continue;
      this.durableWaiters.delete(epoch);
      for (const w of ws) w.resolve();
    }
  }

  /** The run failed: no waiter's checkpoint will complete. */
  rejectWaiters(e: Error): void {
    for (const ws of this.durableWaiters.values()) for (const w of ws) w.reject(e);
    this.durableWaiters.clear();
  }

  /** For a clean stop: resolves once the checkpoint records written so far are. */
  async settled(): Promise<void> {
    await this.recordWrite;
  }

  /** For a clean stop: the epoch of the final checkpoint (its barrier is the workers' SHUTDOWN). */
  nextFinalEpoch(): number {
    assert(this.inFlight === undefined, 'the final checkpoint starts after the one under way completed');
    return ++this.epochNow;
  }

  /** For a clean stop: every worker saved the final epoch; upload and record it as a clean stop. */
  async completeFinal(epoch: number, positions: Record<string, unknown>): Promise<void> {
    await this.upload(epoch, positions, true);
    await this.complete(epoch, positions, true);
  }
}
