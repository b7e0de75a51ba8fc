/** Engine options: where state lives, how many workers, the limits, the clock. */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import type { ManualClock } from '../shared/clock.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { resolveEngineLimits, type EngineLimits, LIMIT_SPECS } from '../shared/limits.js';
import type { EgressConnector, Logger } from '../api/connector_api.js';
import type { ConnectorKind } from '../api/connector_kind.js';
import { checkSnapshotStoreConfig, type SnapshotStoreConfig } from '../snapshot/store_config.js';
import { LIMIT_ALIASES, canonicalLimits, workersProblem } from './engine_schema.js';

export interface EngineOptions {
  /** Directory for state (LMDB environments), dead letters and the lock. Default `./statefn-data`. */
  stateDir?: string;
  /** Worker threads. Default: the number of cores. */
  workers?: number;
  /** Limits (see limits.ts); `keyGroups` is fixed once a state directory exists. */
  limits?: Partial<Record<keyof EngineLimits, number>> & {
    /** @deprecated The former name of `checkpointIntervalMs`; still accepted, with a warning. */
    flushIntervalMs?: number;
  };
  /** A manual clock shared with the workers (tests); default: the system clock. */
  clock?: ManualClock;
  logger?: Logger;
  /** Write dead letters to `<stateDir>/dead-letters.jsonl` unless the app registers the dead-letter egress. Default true. */
  deadLetterFile?: boolean;
  /**
   * The egress dead letters go to when the application registers none and `deadLetterFile` is
   * not false (the package root supplies a JSON-lines file in `<stateDir>/dead-letters.jsonl`).
   */
  deadLetterEgress?: (stateDir: string) => EgressConnector;
  /** The module.yaml kinds this engine can read (the package root supplies the built-in connectors). */
  connectorKinds?: readonly ConnectorKind[];
  /**
   * Exactly-once egress: records become visible only when the checkpoint of their epoch is
   * complete (default true). False releases them at once (lower latency, at-least-once after a
   * crash); state and messages are checkpointed either way.
   */
  checkpointing?: boolean;
  /**
   * Where checkpoints are uploaded, incrementally (only what changed): a local directory (default
   * `<stateDir>/snapshots`) or S3 (`{ type: 's3', bucket, prefix?, endpoint?, region?,
   * forcePathStyle? }`, credentials from the standard chain). `false`: local LMDB only. Checked
   * like `--snapshots`: a `dir` that looks like a URL other than `file://` is an error.
   */
  snapshots?: false | SnapshotStoreConfig;
  /** Complete checkpoints kept in the snapshot store. Default 3. */
  snapshotRetain?: number;
  /** Start from this savepoint of the snapshot store, replacing the local state. */
  fromSavepoint?: string;
}

export interface ResolvedOptions {
  stateDir: string;
  workers: number;
  limits: EngineLimits;
  clock: ManualClock | undefined;
  logger: Logger;
  deadLetterFile: boolean;
  deadLetterEgress: ((stateDir: string) => EgressConnector) | undefined;
  connectorKinds: readonly ConnectorKind[];
  checkpointing: boolean;
  snapshots: false | SnapshotStoreConfig;
  snapshotRetain: number;
  fromSavepoint: string | undefined;
}

export const consoleLogger: Logger = {
  info: (m, f) => console.error(`${new Date().toISOString()} INFO ${m}${f ? ' ' + JSON.stringify(f) : ''}`),
  warn: (m, f) => console.error(`${new Date().toISOString()} WARN ${m}${f ? ' ' + JSON.stringify(f) : ''}`),
  error: (m, f) => console.error(`${new Date().toISOString()} ERROR ${m}${f ? ' ' + JSON.stringify(f) : ''}`),
};

const KNOWN = new Set([
  'stateDir',
  'workers',
  'limits',
  'clock',
  'logger',
  'deadLetterFile',
  'deadLetterEgress',
  'connectorKinds',
  'checkpointing',
  'snapshots',
  'snapshotRetain',
  'fromSavepoint',
  ...Object.keys(LIMIT_SPECS),
  ...Object.keys(LIMIT_ALIASES),
]);

/**
 * Merge app options, then user options; limits may be given flat (`ringBytes: ...`) or under
 * `limits`. Every value is validated with a message naming it.
 */
export function resolveOptions(
  appOptions: Record<string, unknown>,
  options: EngineOptions & Record<string, unknown>,
  where = 'options',
): ResolvedOptions {
  const merged: Record<string, unknown> = { ...appOptions, ...options };
  for (const k of Object.keys(merged)) {
    if (!KNOWN.has(k))
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}.${k}: unknown option; known options are ${[...KNOWN].join(', ')}`);
  }
  // Limits come flat (`ringBytes: ...`, as module.yaml's engine config gives them) or under
  // `limits` (EngineOptions, `--set`); former names are mapped to current ones, then one function
  // (resolveEngineLimits) checks them all.
  const flat: Record<string, unknown> = {};
  for (const k of [...Object.keys(LIMIT_SPECS), ...Object.keys(LIMIT_ALIASES)]) if (merged[k] !== undefined) flat[k] = merged[k];
  const sources = [appOptions.limits as Record<string, unknown> | undefined, flat, options.limits as Record<string, unknown> | undefined];
  const combined: Record<string, unknown> = {};
  for (const source of sources) {
    const c = canonicalLimits(source ?? {}, `${where}.limits`);
    if ('error' in c && typeof c.error === 'string')
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}.limits.${String(c.key)}: ${c.error}`);
    Object.assign(combined, c);
  }
  const limits = resolveEngineLimits(combined, `${where}.limits`);
  const cores = availableParallelism();
  const workers = merged.workers === undefined ? Math.max(1, cores) : Number(merged.workers);
  const problem = workersProblem(workers, limits.keyGroups);
  if (problem !== undefined) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `${where}.workers: ${problem.message}${problem.fix === undefined ? '' : `. Fix: ${problem.fix}`}`,
    );
  }
  const stateDir = resolve(typeof merged.stateDir === 'string' ? merged.stateDir : './statefn-data');
  return {
    stateDir,
    workers,
    limits,
    clock: merged.clock as ManualClock | undefined,
    logger: (merged.logger as Logger | undefined) ?? consoleLogger,
    deadLetterFile: merged.deadLetterFile !== false,
    deadLetterEgress: merged.deadLetterEgress as ((stateDir: string) => EgressConnector) | undefined,
    connectorKinds: (merged.connectorKinds as readonly ConnectorKind[] | undefined) ?? [],
    checkpointing: merged.checkpointing !== false,
    snapshots:
      merged.snapshots === undefined
        ? { type: 'local', dir: resolve(stateDir, 'snapshots') }
        : checkSnapshotStoreConfig(merged.snapshots, `${where}.snapshots`),
    snapshotRetain: typeof merged.snapshotRetain === 'number' ? merged.snapshotRetain : 3,
    fromSavepoint: typeof merged.fromSavepoint === 'string' ? merged.fromSavepoint : undefined,
  };
}
