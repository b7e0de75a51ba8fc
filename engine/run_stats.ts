/**
 * The engine's statistics (EngineStats): the main thread's own counters plus the sums of what
 * every thread publishes in the shared stats block.
 */
import { REMOTE_BATCH_BUCKETS, Stat, type StatsBlock } from '../shared/stats_block.js';
import type { CheckpointInfo } from './checkpoint_coordinator.js';

export interface EngineStats {
  uptimeMs: number;
  workers: number;
  ingested: number;
  processed: number;
  sent: number;
  egressed: number;
  deadLetters: number;
  failures: number;
  pending: number;
  mailboxed: number;
  parkedBytes: number;
  cacheEntries: number;
  timers: number;
  backPressured: boolean;
  /** How long the checkpoint under way has taken so far (0 when none). */
  checkpointPendingMs: number;
  /** The most recent completed checkpoint. */
  lastCheckpoint: CheckpointInfo | undefined;
  /** @deprecated the same as `lastCheckpoint`. */
  lastFlush: CheckpointInfo | undefined;
  /** Remote functions: requests sent (negotiation rounds included), messages they carried, attempts repeated, batches failed for good. */
  remote: {
    calls: number;
    batched: number;
    retries: number;
    failures: number;
    /** Requests by batch size: `{'1': n, '2-3': n, '4-7': n, ..., '1024+': n}`. */
    batchSizes: Record<string, number>;
  };
}

/** The main thread's part of the stats. */
export interface MainStats {
  uptimeMs: number;
  workers: number;
  ingested: number;
  deadLetters: number;
  backPressured: boolean;
  checkpointPendingMs: number;
  lastCheckpoint: CheckpointInfo | undefined;
}

/** The label of remote batch-size bucket `k` (1, 2-3, 4-7, ..., the last open-ended). */
function bucketLabel(k: number): string {
  if (k === 0) return '1';
  return k === REMOTE_BATCH_BUCKETS - 1 ? `${2 ** k}+` : `${2 ** k}-${2 ** (k + 1) - 1}`;
}

export function runStats(s: StatsBlock, main: MainStats): EngineStats {
  return {
    uptimeMs: main.uptimeMs,
    workers: main.workers,
    ingested: main.ingested,
    processed: s.sum(Stat.processed),
    sent: s.sum(Stat.sent),
    egressed: s.sum(Stat.egressed),
    deadLetters: main.deadLetters,
    failures: s.sum(Stat.failures),
    pending: s.sum(Stat.pending),
    mailboxed: s.sum(Stat.mailboxed),
    parkedBytes: s.sum(Stat.parkedBytes),
    cacheEntries: s.sum(Stat.cacheEntries),
    timers: s.sum(Stat.timers),
    backPressured: main.backPressured,
    checkpointPendingMs: main.checkpointPendingMs,
    lastCheckpoint: main.lastCheckpoint,
    lastFlush: main.lastCheckpoint,
    remote: {
      calls: s.sum(Stat.remoteCalls),
      batched: s.sum(Stat.remoteBatched),
      retries: s.sum(Stat.remoteRetries),
      failures: s.sum(Stat.remoteFailures),
      batchSizes: Object.fromEntries(
        Array.from({ length: REMOTE_BATCH_BUCKETS }, (_, k) => [bucketLabel(k), s.sum(Stat.remoteBatchHist + k)]),
      ),
    },
  };
}
