/**
 * The recovery plan: a pure decision, made once per start, of what state an engine run begins
 * from. Given what the local state directory holds (its layout and checkpoint record), what the
 * snapshot store offers (a savepoint or its latest checkpoint, already read) and what the user
 * asked for, it says which key groups and worker layout the run uses, which state lineage it
 * continues, whether the workers restore from the snapshot store, and which checkpoint (epoch and
 * ingress positions) the run resumes from. It does no I/O, so every case is unit-testable
 * (test/unit/recovery_plan.test.ts); recovery_source.ts gathers its input.
 */
import type { CheckpointManifest } from '../snapshot/checkpoint_layout.js';
import type { Layout } from '../state/state_layout.js';
import { ErrorCode, StatefnError, assert } from '../shared/errors.js';
import type { CheckpointRecord } from './checkpoint_record.js';

/** A checkpoint of the snapshot store the run restores (its manifest and where it was read). */
export interface StoreCheckpoint {
  manifest: CheckpointManifest;
  /** The key of the manifest in the store (a checkpoint's or a savepoint's). */
  manifestKey: string;
  /** Set when the checkpoint is a savepoint the user asked for. */
  savepoint?: string;
}

/** Everything the plan is decided from. */
export interface RecoveryInput {
  /** The state directory (named in error messages only). */
  stateDir: string;
  /** Worker threads the run is asked to use. */
  workers: number;
  /** keyGroups as the user set it explicitly in `options.limits`, if at all. */
  keyGroupsAsked: number | undefined;
  /** keyGroups of the resolved limits (the default, or what app or user set). */
  keyGroupsResolved: number;
  /** The local state directory's layout.json (undefined: no local state). */
  localLayout: Layout | undefined;
  /** The local checkpoint record (undefined: no checkpoint completed locally). */
  localRecord: CheckpointRecord | undefined;
  /** A checkpoint of the snapshot store to restore, or null to go on from the local state. */
  fromStore: StoreCheckpoint | null;
  /**
   * The snapshot store's newest verified checkpoint, read when the local state exists (layout.json)
   * but its checkpoint record does not (lost or damaged): the run recovers it instead of starting
   * from nothing. Undefined when not looked up; null when the store has none.
   */
  latestForMissingRecord?: CheckpointManifest | null;
  /** Makes a new lineage id (a random UUID in the engine; injectable for tests). */
  newLineage: () => string;
}

/** What a run starts from. */
export interface RecoveryPlan {
  /** The key groups of the state (fixed for its life). */
  keyGroups: number;
  /** The layout the run writes once its workers are ready. */
  layout: Layout;
  /** The previous layout when the worker count changed: its environments are migrated (rescaling). */
  migrateFrom: Layout | undefined;
  /** The checkpoint the run resumes from (undefined: a fresh start). */
  recovered: CheckpointRecord | undefined;
  /** The snapshot store's checkpoint each worker restores its key groups from first. */
  restoreFrom: { epoch: number; manifestKey: string; manifest: CheckpointManifest } | undefined;
  /** The epoch of the recovered checkpoint (0 for a fresh start): local epochs after it are rolled back. */
  epoch: number;
  /**
   * Why the recovered checkpoint has no local record yet (it came from the snapshot store): the
   * run writes checkpoint.json for it before anything else, so that a crash before its first
   * checkpoint recovers the same state. Undefined when the local record is the source.
   */
  recordFromStore: 'restored' | 'record-missing' | undefined;
}

/**
 * Whether the snapshot store's latest checkpoint should be looked up: only when the local disk
 * is empty (no layout and no checkpoint record) and a snapshot store is configured.
 */
export function wantsLatestFromStore(
  localLayout: Layout | undefined,
  localRecord: CheckpointRecord | undefined,
  snapshotsEnabled: boolean,
): boolean {
  return localLayout === undefined && localRecord === undefined && snapshotsEnabled;
}

/** Decide what the run starts from; throws CONFIG_INVALID for a request the state cannot honour. */
export function planRecovery(input: RecoveryInput): RecoveryPlan {
  const { localLayout: prev, fromStore, workers } = input;
  // A store checkpoint is restored only onto an empty local disk (a savepoint clears it first).
  assert(fromStore === null || prev === undefined, 'recovery: a store checkpoint is restored only onto an empty local state');
  const resolvedKeyGroups = fromStore !== null ? fromStore.manifest.keyGroups : input.keyGroupsResolved;
  if (prev !== undefined && input.keyGroupsAsked !== undefined && prev.keyGroups !== resolvedKeyGroups) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `keyGroups is ${prev.keyGroups} for the state in ${input.stateDir} and cannot change (asked for ${resolvedKeyGroups})`,
    );
  }
  const keyGroups = prev?.keyGroups ?? resolvedKeyGroups;
  if (workers > keyGroups) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `workers (${workers}) must be at most keyGroups (${keyGroups})`);
  }
  // The state's history continues only when the local state does (see Layout.lineage).
  const lineage = prev?.lineage !== undefined && fromStore === null ? prev.lineage : input.newLineage();
  let layout: Layout;
  if (prev === undefined) layout = { version: 1, keyGroups, workers, generation: 0, lineage };
  else if (prev.workers === workers) layout = { ...prev, lineage };
  else layout = { version: 1, keyGroups, workers, generation: prev.generation + 1, lineage };
  let recovered = input.localRecord;
  let recordFromStore: RecoveryPlan['recordFromStore'];
  const lost = input.latestForMissingRecord;
  if (prev !== undefined && recovered === undefined && fromStore === null && lost !== undefined && lost !== null) {
    // The local state exists but its record does not: the record was lost (a fresh state writes
    // one before it can be without one, see recordFromStore). The store's newest verified
    // checkpoint is the newest complete one, if it belongs to this state's history.
    const theirs = lost.meta.lineage;
    if (typeof theirs === 'string' && prev.lineage !== undefined && theirs !== prev.lineage) {
      throw new StatefnError(
        ErrorCode.STATE_DIR_INVALID,
        `${input.stateDir}/checkpoint.json is missing, and the snapshot store's newest checkpoint ${lost.epoch} belongs to ` +
          `another state history (lineage ${theirs}, the local state's is ${prev.lineage}); restore checkpoint.json from ` +
          `a backup, or move ${input.stateDir} away to restore checkpoint ${lost.epoch} from the store`,
      );
    }
    const positions = (lost.meta.positions ?? {}) as Record<string, unknown>;
    recovered = { version: 1, epoch: lost.epoch, positions, completedAt: 'recovered from the snapshot store', clean: false };
    recordFromStore = 'record-missing';
  }
  let restoreFrom: RecoveryPlan['restoreFrom'];
  if (fromStore !== null) {
    const positions = (fromStore.manifest.meta.positions ?? {}) as Record<string, unknown>;
    recovered = { version: 1, epoch: fromStore.manifest.epoch, positions, completedAt: 'restored from the snapshot store', clean: false };
    restoreFrom = { epoch: fromStore.manifest.epoch, manifestKey: fromStore.manifestKey, manifest: fromStore.manifest };
    recordFromStore = 'restored';
  }
  const migrateFrom = prev !== undefined && prev.generation !== layout.generation ? prev : undefined;
  return { keyGroups, layout, migrateFrom, recovered, restoreFrom, epoch: recovered?.epoch ?? 0, recordFromStore };
}
