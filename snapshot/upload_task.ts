/**
 * The piscina task that uploads checkpoint `epoch` to the snapshot store, off the main thread
 * and off the workers. The workers' LMDB environments already hold the epoch (written and
 * acknowledged); the epoch's undo records name every key it changed, whose current values are
 * the epoch's values (the next epoch is not written before this checkpoint completes). Keys are
 * stored as `db index u8 | LMDB key` in the key group's delta object.
 */
import { assert } from '../shared/errors.js';
import { knownManifestsMax, retentionIntervalMs, sweepEveryRetentions } from '../shared/limits.js';
import { StateStore, undoDbOf } from '../state/state_store.js';
import { UNDO_DB, ckptKey, kgEpochBound, parseUndoKey } from '../state/state_keys.js';
import { writeCheckpoint, type CheckpointInput } from './checkpoint_writer.js';
import type { CheckpointManifest } from './manifest.js';
import { PackCache, type KeyGroupChanges } from './pack.js';
import { quarantineMessage, quarantineNewerThan } from './quarantine.js';
import { openSnapshotStore, type SnapshotStoreConfig } from './store_config.js';
import type { SnapshotStore } from './snapshot_store.js';

/** One checkpoint to upload, as the engine's checkpoint coordinator posts it. */
export interface UploadTask {
  epoch: number;
  keyGroups: number;
  /** Each worker's environment and key groups. */
  envs: { dir: string; kgStart: number; kgEnd: number }[];
  store: SnapshotStoreConfig;
  meta: Record<string, unknown>;
  retain: number;
  /** The last checkpoint of a clean stop: retention always runs. */
  final?: boolean;
  /** The checkpoint this one builds on, when the engine knows better than the store (a restored savepoint). */
  previous?: CheckpointManifest;
  /**
   * The first upload of a run: the checkpoint the run recovered. Manifests newer than it are moved
   * to quarantine (quarantine.ts) before this checkpoint is written, which would overwrite them.
   */
  quarantineAbove?: number;
}

/** What uploading one checkpoint wrote. */
export interface UploadResult {
  epoch: number;
  objects: number;
  bytes: number;
  changedKeys: number;
  ms: number;
  /** Set when manifests were moved to quarantine first: the line to log. */
  quarantined?: string;
}

// Retention (listing manifests, reading the retained ones, deleting) costs more than a small
// checkpoint itself: with checkpoints started on demand (group commit, tens per second) it runs at
// most every `retentionIntervalMs`, and the orphan sweep every `sweepEveryRetentions` retentions.
let lastRetention = 0;
let retentions = 0;
let packCache = new PackCache();
/** Manifests this thread wrote (retention need not read them back), at most `knownManifestsMax`. */
let known = new Map<number, CheckpointManifest>();
let store: SnapshotStore | undefined;
let storeKey = '';
let previous: CheckpointManifest | null | undefined;
const envs = new Map<string, StateStore>();

/** Check a task at the boundary between the engine and this thread. */
function checkTask(task: UploadTask): void {
  assert(Number.isSafeInteger(task.epoch) && task.epoch >= 0, () => `upload task epoch ${task.epoch}`);
  for (const e of task.envs) {
    assert(
      0 <= e.kgStart && e.kgStart <= e.kgEnd && e.kgEnd <= task.keyGroups,
      () => `upload task key groups [${e.kgStart}, ${e.kgEnd}) outside [0, ${task.keyGroups})`,
    );
  }
}

export default async function upload(task: UploadTask): Promise<UploadResult> {
  const started = Date.now();
  checkTask(task);
  const k = JSON.stringify(task.store);
  if (store === undefined || storeKey !== k) {
    store = openSnapshotStore(task.store);
    storeKey = k;
    previous = undefined;
    packCache = new PackCache();
    known = new Map();
  }
  if (task.previous !== undefined) previous = task.previous;
  let quarantined: string | undefined;
  if (task.quarantineAbove !== undefined) {
    const q = await quarantineNewerThan(store, task.quarantineAbove);
    if (q.epochs.length > 0) quarantined = quarantineMessage(q, task.quarantineAbove);
  }
  const parts = new Map<number, KeyGroupChanges>();
  const inflight = new Map<number, Uint8Array[]>();
  let changedKeys = 0;
  const undoDb = undoDbOf(task.epoch);
  for (const e of task.envs) {
    let env = envs.get(e.dir);
    if (env === undefined) {
      env = new StateStore(e.dir);
      envs.set(e.dir, env);
    }
    for (let kg = e.kgStart; kg < e.kgEnd; kg++) {
      const from = kgEpochBound(kg, task.epoch);
      const to = kgEpochBound(kg, task.epoch + 1);
      let part: KeyGroupChanges | undefined;
      for (const { key } of env.range(undoDb, from, to)) {
        const u = parseUndoKey(key);
        // The range holds exactly this key group's undo records of this epoch.
        assert(
          u.kg === kg && u.epoch === task.epoch,
          () => `undo record of key group ${u.kg} epoch ${u.epoch} in the range of key group ${kg} epoch ${task.epoch}`,
        );
        const value = env.get(u.db, u.key);
        const partKey = Buffer.concat([Buffer.from([UNDO_DB.indexOf(u.db)]), u.key]);
        part ??= { puts: [], deletes: [] };
        if (value === undefined) part.deletes.push(partKey);
        else part.puts.push([partKey, value]);
        changedKeys++;
      }
      if (part !== undefined) parts.set(kg, part);
      const msgs: Uint8Array[] = [];
      for (const { value } of env.range('ckpt', ckptKey(kg, task.epoch, 0), to)) msgs.push(Buffer.from(value));
      if (msgs.length > 0) inflight.set(kg, msgs);
    }
  }
  const input: CheckpointInput = {
    epoch: task.epoch,
    keyGroups: task.keyGroups,
    parts,
    inflight,
    meta: task.meta,
    ...(previous === undefined ? {} : { previous }),
  };
  const now = Date.now();
  const retention = task.final === true || now - lastRetention >= retentionIntervalMs;
  const sweep = retention && retentions % sweepEveryRetentions === sweepEveryRetentions - 1;
  const r = await writeCheckpoint(store, input, { retain: task.retain, packCache, retention, sweep, known });
  known.set(r.manifest.epoch, r.manifest);
  if (known.size > knownManifestsMax) known.delete(known.keys().next().value!);
  if (retention) {
    lastRetention = now;
    retentions++;
  }
  previous = r.manifest;
  return {
    epoch: task.epoch,
    objects: r.written.length,
    bytes: r.written.reduce((a, w) => a + w.bytes, 0),
    changedKeys,
    ms: Date.now() - started,
    ...(quarantined === undefined ? {} : { quarantined }),
  };
}

/** Forget the environments (before the workers close them, e.g. at a stop or a rescale). */
export async function closeEnvs(): Promise<void> {
  for (const env of envs.values()) await env.close();
  envs.clear();
}
