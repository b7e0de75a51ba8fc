/**
 * Every bound statefn keeps, in one place, with its unit last. `resolveEngineLimits` validates a
 * user's overrides against this schema (type, bounds, description) and asserts the relationships
 * between limits, so a bad value fails at startup with a message naming the key and the fix.
 */
import { ErrorCode, StatefnError } from './errors.js';
import { frameFootprint } from './ring_buffer.js';

interface LimitSpec {
  default: number;
  min: number;
  max: number;
  powerOfTwo?: boolean;
  description: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const LIMIT_SPECS = {
  keyGroups: {
    default: 256,
    min: 1,
    max: 32768,
    description: 'number of key groups G; fixed for the life of the state directory (upper bound on workers)',
  },
  ringBytes: {
    default: 1 * MiB,
    min: 4 * KiB,
    max: 256 * MiB,
    powerOfTwo: true,
    description: 'data bytes of each single-producer/single-consumer ring between two threads',
  },
  frameBytesMax: {
    default: 256 * KiB,
    min: 1 * KiB,
    max: 128 * MiB,
    description: 'largest encoded frame on a ring; a single message larger than this is rejected (dead-lettered)',
  },
  batchMessagesMax: {
    default: 512,
    min: 1,
    max: 65536,
    description: 'messages packed into one frame and handled per drain step',
  },
  outboxBytesHighWater: {
    default: 8 * MiB,
    min: 0,
    max: 4096 * MiB,
    description: "bytes parked in a thread's outboxes (frames a full ring could not take) above which ingress is paused",
  },
  outboxBytesLowWater: {
    default: 2 * MiB,
    min: 0,
    max: 4096 * MiB,
    description: 'bytes parked in outboxes below which a paused ingress resumes',
  },
  pendingMessagesMax: {
    default: 65536,
    min: 16,
    max: 16 * MiB,
    description: 'messages a worker holds decoded but not yet handled before it stops taking ingress',
  },
  asyncInvocationsMax: {
    default: 1024,
    min: 1,
    max: 1 << 20,
    description: 'invocations of async handlers a worker runs concurrently (each on its own address)',
  },
  mailboxMessagesMax: {
    default: 1_000_000,
    min: 1,
    max: 1 << 30,
    description: 'messages waiting for busy addresses in one worker above which it stops taking ingress',
  },
  stateCacheEntriesMax: {
    default: 500_000,
    min: 16,
    max: 1 << 30,
    description: 'addresses whose state a worker keeps decoded in memory; beyond it clean entries are evicted',
  },
  dirtyEntriesMax: {
    default: 200_000,
    min: 16,
    max: 1 << 30,
    description:
      'addresses with state changed since the last checkpoint, per worker, above which ingress is paused until a checkpoint takes them',
  },
  checkpointIntervalMs: {
    default: 1000,
    min: 10,
    max: 3_600_000,
    description: 'checkpoint interval: how often changed state is written to LMDB and uploaded, and egress released',
  },
  durableWaitMs: {
    default: 2,
    min: 0,
    max: 60_000,
    description:
      'group commit: a checkpoint starts this long after the first caller waits for durability (an HTTP reply with ' +
      'replyWhen durable) instead of at the next interval; waiters arriving meanwhile share it',
  },
  stateDirFreeBytesMin: {
    default: 64 * MiB,
    min: 0,
    max: 1024 * 1024 * MiB,
    description:
      'free bytes the state directory must have for a checkpoint to start; below it checkpoints (and so durable replies) wait ' +
      'and an error is logged, since LMDB does not survive running out of space mid-write; 0 = no check',
  },
  workerRestartsMax: {
    default: 10,
    min: 0,
    max: 1000,
    description:
      "in-process restarts (restoring the last complete checkpoint) after a worker thread died, over the engine's life, " +
      'before it fails for good; 0 fails at the first death',
  },
  handlerAttemptsMax: {
    default: 3,
    min: 1,
    max: 100,
    description: 'attempts of a failing handler invocation before its message goes to the dead-letter egress',
  },
  handlerRetryBackoffMs: {
    default: 20,
    min: 0,
    max: 60_000,
    description: 'first retry delay of a failing invocation; doubles each attempt',
  },
  timerHorizonMs: {
    default: 60_000,
    min: 100,
    max: 86_400_000,
    description: 'delayed messages due within this horizon are kept in memory; later ones are read from LMDB when due',
  },
  stopTimeoutMs: {
    default: 30_000,
    min: 100,
    max: 3_600_000,
    description: 'how long a clean stop waits for in-flight work before giving up',
  },
} as const satisfies Record<string, LimitSpec>;

export type LimitName = keyof typeof LIMIT_SPECS;
export type EngineLimits = { readonly [K in LimitName]: number };

export function defaultLimits(): EngineLimits {
  const out: Record<string, number> = {};
  for (const [k, spec] of Object.entries(LIMIT_SPECS)) out[k] = spec.default;
  return out as EngineLimits;
}

/** Render any value for an error message (JSON.stringify throws on BigInt and cycles). */
function describeValue(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function invalid(path: string, message: string): StatefnError {
  return new StatefnError(ErrorCode.CONFIG_INVALID, `${path}: ${message}`);
}

/**
 * Merge user overrides into the defaults, checking each value and the relationships between them.
 * `where` names the source (an options object or a file) in error messages.
 */
export function resolveEngineLimits(overrides: Partial<Record<string, unknown>> = {}, where = 'options'): EngineLimits {
  const out: Record<string, number> = {};
  for (const key of Object.keys(overrides)) {
    if (!Object.hasOwn(LIMIT_SPECS, key)) {
      throw invalid(`${where}.${key}`, `unknown limit; known limits are: ${Object.keys(LIMIT_SPECS).join(', ')}`);
    }
  }
  for (const [key, spec] of Object.entries(LIMIT_SPECS) as [LimitName, LimitSpec][]) {
    const raw = overrides[key];
    if (raw === undefined) {
      out[key] = spec.default;
      continue;
    }
    const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw invalid(`${where}.${key}`, `expected an integer (${spec.description}), got ${describeValue(raw)}`);
    }
    if (v < spec.min || v > spec.max) {
      throw invalid(`${where}.${key}`, `expected a value in [${spec.min}, ${spec.max}] (${spec.description}), got ${v}`);
    }
    if (spec.powerOfTwo && (v & (v - 1)) !== 0) {
      throw invalid(`${where}.${key}`, `expected a power of two, got ${v}; try ${2 ** Math.round(Math.log2(v))}`);
    }
    out[key] = v;
  }
  const l = out as EngineLimits;
  // Relationships. A frame must fit in half a ring so a producer can always make progress after
  // the consumer frees what it has read, whatever the wrap-around position.
  // The ring's 4-byte length word counts against that half too (ring_buffer.ts: maxPayload).
  if (frameFootprint(l.frameBytesMax) > l.ringBytes / 2) {
    throw invalid(`${where}.frameBytesMax`, `must be at most ringBytes/2 - 4 (${l.ringBytes / 2 - 4}), got ${l.frameBytesMax}`);
  }
  if (l.outboxBytesLowWater > l.outboxBytesHighWater) {
    throw invalid(`${where}.outboxBytesLowWater`, `must be at most outboxBytesHighWater (${l.outboxBytesHighWater})`);
  }
  if (l.dirtyEntriesMax > l.stateCacheEntriesMax) {
    throw invalid(`${where}.dirtyEntriesMax`, `must be at most stateCacheEntriesMax (${l.stateCacheEntriesMax})`);
  }
  return l;
}

// ---------------------------------------------------------------------------------------------
// Fixed internal constants of the snapshot store, the checkpoint layout and the state store
// (snapshot/, state/). Not user-configurable; some are defaults of layout options.

/** Deltas of one checkpoint are packed into objects of about this many bytes. */
export const packBytesMax = 4 * MiB;
/** A key group's chain is folded into a new base once it holds more deltas than this. */
export const compactAfterDeltas = 8;
/** Compactions one checkpoint does at most, so that its extra work is bounded. */
export const compactKeyGroupsPerCheckpointMax = 8;
/** Complete checkpoints retention keeps when the caller does not say. */
export const checkpointsRetained = 3;
/**
 * Quarantine batches (manifests newer than a recovered checkpoint, moved aside at a recovery;
 * snapshot/quarantine.ts) kept in the snapshot store; older batches are deleted.
 */
export const quarantineBatchesRetained = 10;
/** A state directory short of free space (stateDirFreeBytesMin) is reported at most this often. */
export const lowDiskLogEveryMs = 10_000;
/** Retention after a checkpoint whose epoch is a multiple of this also sweeps orphan objects. */
export const sweepEveryCheckpoints = 100;
/** Objects one checkpoint writes to the snapshot store in parallel. */
export const snapshotUploadsConcurrentMax = 8;
/** Objects read in parallel while verifying a checkpoint. */
export const snapshotReadsConcurrentMax = 8;
/** Decoded packs a pack cache holds at most. */
export const packCachePacksMax = 64;
/** Approximate bytes of decoded packs a pack cache holds at most. */
export const packCacheBytesMax = 64 * MiB;
/** The uploader runs retention at most this often (it costs more than a small checkpoint). */
export const retentionIntervalMs = 200;
/** The uploader sweeps orphan objects once every this many retentions. */
export const sweepEveryRetentions = 100;
/** Manifests the uploader remembers having written, so retention need not read them back. */
export const knownManifestsMax = 4096;
/** Time to establish a TCP connection to S3. */
export const s3ConnectTimeoutMs = 5_000;
/** Time for a whole S3 request once connected. */
export const s3RequestTimeoutMs = 60_000;
/** Attempts of one S3 request inside the SDK (1 = no SDK retry). */
export const s3AttemptsMax = 3;
/** First retry delay of a failed S3 request (the SDK's default base). */
export const s3RetryBaseMs = 50;
/** First retry delay of a throttled S3 request (the SDK's throttling base). */
export const s3ThrottledRetryBaseMs = 1_000;
/** Upper bound of an S3 retry delay (the SDK's cap). */
export const s3RetryMaxMs = 20_000;
/** Writes a copy between LMDB environments (rescaling) queues per batch. */
export const stateCopyBatchOpsMax = 10_000;

// ---------------------------------------------------------------------------------------------
// Fixed internal constants of the main thread (engine/) and the `statefn` command (cli/).

/** Completed checkpoints and uploads the engine keeps in its history (stats, benchmarks). */
export const checkpointHistoryMax = 16;
/** Ingress pauses while a checkpoint has been under way for more than this many checkpoint intervals. */
export const checkpointLagIntervalsMax = 10;
/** Egress records held for their checkpoint, as a multiple of pendingMessagesMax, above which ingress pauses. */
export const egressHeldPerPendingMessage = 8;
/** First delay before restarting after a worker thread died. */
export const workerRestartBackoffBaseMs = 100;
/** Upper bound of the delay before restarting after a worker thread died. */
export const workerRestartBackoffMaxMs = 5_000;
/** First retry delay of a failed checkpoint upload. */
export const uploadRetryBaseMs = 200;
/** Upper bound of the retry delay of a failed checkpoint upload. */
export const uploadRetryMaxMs = 30_000;
/** Checkpoint uploads queued for the upload thread at most. */
export const uploadQueueMax = 4;
/** First retry delay of a failed egress write or commit. */
export const egressRetryBaseMs = 100;
/** Upper bound of the retry delay of a failed egress write or commit. */
export const egressRetryMaxMs = 30_000;
/** Egress records handed to one connector write at most. */
export const egressBatchRecordsMax = 4096;
/** Frames the main thread reads from one worker's ring per turn of its loop. */
export const mainFramesPerReadMax = 256;
/** The main loop's sleep on its doorbell when idle. */
export const mainIdleWaitMs = 50;
/** The main loop's sleep while an ingress waits on back-pressure or frames are parked. */
export const mainBusyPollMs = 1;
/** How often a clean stop re-checks what it waits for (workers' marks also wake it). */
export const stopPollMs = 100;
/** Dead letters logged one by one before only every deadLetterLogEvery-th is. */
export const deadLetterLogFirst = 10;
/** After the first few, one dead letter in this many is logged. */
export const deadLetterLogEvery = 1000;
/** How often `statefn start` refreshes its progress display. */
export const progressRefreshMs = 250;
/** How often `statefn start` checks whether a stop was requested. */
export const cliStopPollMs = 50;

// ---------------------------------------------------------------------------------------------
// Fixed bounds of the configuration (config/: module.yaml, engine options) and of connectors/.

/** A module file is configuration, not data: a larger one is a mistake. */
export const moduleFileBytesMax = 8 * MiB;
/** YAML documents in one module file at most. */
export const moduleDocumentsMax = 10_000;
/** Nesting of a module document at most (deeper is a recursive alias). */
export const moduleNestingDepthMax = 64;
/** Values of one module document once aliases are expanded: stops alias bombs ("billion laughs"). */
export const moduleDocumentNodesMax = 250_000;
/** Worker threads an engine runs at most (and never more than its key groups). */
export const workersMax = 256;
/** module.yaml endpoints' `maxNumBatchRequests` at most. */
export const moduleBatchRequestsMax = 1 << 20;
/** Any timeout written in module.yaml at most: a week. */
export const moduleTimeoutMaxMs = 7 * 86_400_000;
/** Complete checkpoints a snapshot store may be asked to keep, at most. */
export const snapshotRetainMax = 1000;
/** First retry delay of a failed file-egress write. */
export const fileWriteRetryBaseMs = 50;
/** Upper bound of the retry delay of a failed file-egress write. */
export const fileWriteRetryMaxMs = 2_000;

// ---------------------------------------------------------------------------------------------
// Fixed tuning of the worker threads (workers/).

/** Messages a worker handles between pushes of what is queued for other workers (a power of two, minus 1). */
export const peerPushMessagesMask = 63;
/** Rounds of "incomplete invocation context" a remote batch may take before it fails. */
export const remoteNegotiationRoundsMax = 4;
/** States encoded per loop step while a worker writes its part of a checkpoint. */
export const checkpointEncodeSliceStates = 500;
/** Frames a worker reads from the main thread's ring per loop step (ingress is admitted a little at a time). */
export const mainRingFramesPerStep = 4;
/** Frames a worker reads from another worker's ring per loop step. */
export const workerRingFramesPerStep = 64;
/** Longest sleep of a worker on its doorbell before it looks at its timers again. */
export const doorbellWaitMaxMs = 1000;
/** Poll interval of a worker while frames are parked for a full ring (consumers do not ring producers). */
export const parkedPollMs = 1;
/** Consumed fields of a worker's pending queue after which it is compacted (when over half of it). */
export const pendingCompactAfterFields = 65536;
/** Eviction brings a worker's state cache back to this fraction of stateCacheEntriesMax. */
export const stateCacheEvictTargetRatio = 0.9;
/** Upper bound of the delay between retries of a failing handler. */
export const handlerRetryMaxMs = 60_000;
/** Writes per LMDB transaction while a worker restores its key groups from a snapshot store. */
export const restoreWriteBatchOps = 10_000;

// ---------------------------------------------------------------------------------------------
// Fixed tuning of the HTTP ingress (connectors/http/).

/**
 * The most a message alone takes in a MESSAGES frame besides its payload: its target type and id
 * and its type name at their longest (255 + 1024 + 255 UTF-16 units, at most 3 UTF-8 bytes each:
 * 4,602 bytes) and the msgpack headers, rounded up. An HTTP body must fit in frameBytesMax minus
 * this, or the message it becomes could not be delivered.
 */
export const messageEnvelopeBytesMax = 8 * KiB;
/** An idle connection (no request in progress) at least this old gives way to a new one when all connections are taken. */
export const httpIdleConnectionEvictMs = 1_000;
/** A connection answered 503 (over a connection limit) is closed after this at the latest, if the client does not close first. */
export const httpRejectedConnectionLingerMs = 1_000;
/** Seconds an HTTP 503 asks clients to wait before retrying (Retry-After). */
export const httpRetryAfterSeconds = 1;

// ---------------------------------------------------------------------------------------------
// Fixed tuning of the Kafka ingress (connectors/kafka/).

/** Heartbeat interval of a back-pressured Kafka ingress, so that its consumer stays in its group. */
export const kafkaWaitHeartbeatMs = 1_000;
/** Routed messages a Kafka ingress hands to the engine at once. */
export const kafkaSubmitGroupMessagesMax = 256;
/** Attempts to write a record to the dead-letter topic before it goes to the engine's dead letters. */
export const kafkaDeadLetterAttemptsMax = 5;
/** First delay before retrying a write to the Kafka dead-letter topic (then doubling, see shared/backoff.ts). */
export const kafkaDeadLetterRetryStepMs = 200;
/** Upper bound of the delay between attempts to write a Kafka dead-letter record. */
export const kafkaDeadLetterRetryMaxMs = 2_000;
/** Transaction timeout of the producer that commits the consumer group's offsets. */
export const kafkaOffsetTransactionTimeoutMs = 30_000;
/** Default `max.partition.fetch.bytes` of the Kafka ingress consumer. */
export const kafkaFetchPartitionBytesMax = 1 << 20;
/** Default `fetch.max.bytes` of the Kafka ingress consumer. */
export const kafkaFetchBytesMax = 8 << 20;
/** Default `fetch.max.wait.ms` of the Kafka ingress consumer. */
export const kafkaFetchWaitMaxMs = 100;
/** Retries of the Kafka ingress consumer before it restarts. */
export const kafkaConsumerRetries = 8;

// ---------------------------------------------------------------------------------------------
// Fixed tuning of remote-function calls (remote/).

/** First delay before retrying a failed remote-function call (within its callTimeoutMs). */
export const remoteRetryBackoffBaseMs = 10;
/** Upper bound of the delay between retries of a remote-function call. */
export const remoteRetryBackoffMaxMs = 2_000;
