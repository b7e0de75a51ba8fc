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
    default: 256, min: 1, max: 32768,
    description: 'number of key groups G; fixed for the life of the state directory (upper bound on workers)',
  },
  ringBytes: {
    default: 1 * MiB, min: 4 * KiB, max: 256 * MiB, powerOfTwo: true,
    description: 'data bytes of each single-producer/single-consumer ring between two threads',
  },
  frameBytesMax: {
    default: 256 * KiB, min: 1 * KiB, max: 128 * MiB,
    description: 'largest encoded frame on a ring; a single message larger than this is rejected (dead-lettered)',
  },
  batchMessagesMax: {
    default: 512, min: 1, max: 65536,
    description: 'messages packed into one frame and handled per drain step',
  },
  outboxBytesHighWater: {
    default: 8 * MiB, min: 0, max: 4096 * MiB,
    description: 'bytes parked in a thread\'s outboxes (frames a full ring could not take) above which ingress is paused',
  },
  outboxBytesLowWater: {
    default: 2 * MiB, min: 0, max: 4096 * MiB,
    description: 'bytes parked in outboxes below which a paused ingress resumes',
  },
  pendingMessagesMax: {
    default: 65536, min: 16, max: 16 * MiB,
    description: 'messages a worker holds decoded but not yet handled before it stops taking ingress',
  },
  asyncInvocationsMax: {
    default: 1024, min: 1, max: 1 << 20,
    description: 'invocations of async handlers a worker runs concurrently (each on its own address)',
  },
  mailboxMessagesMax: {
    default: 1_000_000, min: 1, max: 1 << 30,
    description: 'messages waiting for busy addresses in one worker above which it stops taking ingress',
  },
  stateCacheEntriesMax: {
    default: 500_000, min: 16, max: 1 << 30,
    description: 'addresses whose state a worker keeps decoded in memory; beyond it clean entries are evicted',
  },
  dirtyEntriesMax: {
    default: 200_000, min: 16, max: 1 << 30,
    description: 'addresses with state changed since the last checkpoint, per worker, above which ingress is paused until a checkpoint takes them',
  },
  flushIntervalMs: {
    default: 1000, min: 10, max: 3_600_000,
    description: 'checkpoint interval: how often changed state is written to LMDB and uploaded, and egress released',
  },
  durableWaitMs: {
    default: 2, min: 0, max: 60_000,
    description: 'group commit: a checkpoint starts this long after the first caller waits for durability (an HTTP reply with replyWhen durable) instead of at the next interval; waiters arriving meanwhile share it',
  },
  handlerAttemptsMax: {
    default: 3, min: 1, max: 100,
    description: 'attempts of a failing handler invocation before its message goes to the dead-letter egress',
  },
  handlerRetryBackoffMs: {
    default: 20, min: 0, max: 60_000,
    description: 'first retry delay of a failing invocation; doubles each attempt',
  },
  timerHorizonMs: {
    default: 60_000, min: 100, max: 86_400_000,
    description: 'delayed messages due within this horizon are kept in memory; later ones are read from LMDB when due',
  },
  stopTimeoutMs: {
    default: 30_000, min: 100, max: 3_600_000,
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
