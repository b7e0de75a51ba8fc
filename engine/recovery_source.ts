/**
 * Gathers the input of the recovery plan (recovery_plan.ts): reads a requested savepoint (and
 * then clears the local state it replaces), the local layout and checkpoint record, and, on an
 * empty local disk, the snapshot store's latest checkpoint. All of the run's start-up I/O about
 * where the state comes from is here; the decision itself stays pure.
 */
import { randomUUID } from 'node:crypto';
import { latestCheckpoint, manifestKey, readSavepoint, savepointKey, type CheckpointManifest } from '../snapshot/checkpoint_layout.js';
import { openSnapshotStore } from '../snapshot/store_config.js';
import { clearLocalState, readLayout } from '../state/state_layout.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { ResolvedOptions } from '../config/engine_options.js';
import { checkpointFile, readCheckpointRecord } from './checkpoint_record.js';
import { wantsLatestFromStore, type RecoveryInput, type StoreCheckpoint } from './recovery_plan.js';

/**
 * Read what the plan needs. `keyGroupsAsked` is keyGroups as the user set it in
 * `options.limits` (a change of it is rejected for an existing state).
 */
export async function readRecoveryInput(opts: ResolvedOptions, keyGroupsAsked: number | undefined): Promise<RecoveryInput> {
  let fromStore: StoreCheckpoint | null = null;
  if (opts.fromSavepoint !== undefined) {
    if (opts.snapshots === false)
      throw new StatefnError(ErrorCode.CONFIG_INVALID, 'fromSavepoint needs a snapshot store (snapshots is false)');
    const manifest = await readSavepoint(openSnapshotStore(opts.snapshots), opts.fromSavepoint);
    fromStore = { manifest, manifestKey: savepointKey(opts.fromSavepoint), savepoint: opts.fromSavepoint };
    // The savepoint replaces the local state (the snapshot store is kept).
    clearLocalState(opts.stateDir);
    opts.logger.info(`restoring savepoint '${opts.fromSavepoint}' (checkpoint ${manifest.epoch}); local state replaced`);
  }
  const localLayout = readLayout(opts.stateDir);
  const localRecord = readCheckpointRecord(opts.stateDir);
  // An empty local disk with a snapshot store that holds checkpoints: restore from it.
  if (fromStore === null && opts.snapshots !== false && wantsLatestFromStore(localLayout, localRecord, true)) {
    const manifest = await latestCheckpoint(openSnapshotStore(opts.snapshots), { logger: opts.logger });
    if (manifest !== null) fromStore = { manifest, manifestKey: manifestKey(manifest.epoch) };
  }
  // Local state without its checkpoint record: the record was lost; the store's newest verified
  // checkpoint says which checkpoint is complete (recovery_plan.ts).
  let latestForMissingRecord: CheckpointManifest | null | undefined;
  if (fromStore === null && localLayout !== undefined && localRecord === undefined && opts.snapshots !== false) {
    latestForMissingRecord = await latestCheckpoint(openSnapshotStore(opts.snapshots), { logger: opts.logger });
    if (latestForMissingRecord !== null) {
      opts.logger.warn(
        `${checkpointFile(opts.stateDir)} is missing although the state exists; recovering checkpoint ` +
          `${latestForMissingRecord.epoch}, the newest verified checkpoint in the snapshot store`,
      );
    }
  }
  return {
    stateDir: opts.stateDir,
    workers: opts.workers,
    keyGroupsAsked,
    keyGroupsResolved: opts.limits.keyGroups,
    localLayout,
    localRecord,
    fromStore,
    ...(latestForMissingRecord === undefined ? {} : { latestForMissingRecord }),
    newLineage: randomUUID,
  };
}
