/**
 * Retention and garbage collection of the checkpoint layout: keep the newest complete
 * checkpoints and every savepoint, delete other manifests and the objects only they referenced,
 * and (on a sweep) objects no manifest references at all (attempts that crashed before their
 * manifest, abandoned timelines).
 */
import { checkpointsRetained } from '../shared/limits.js';
import { isLayoutObject, layoutLogger, manifestKey, OBJECT_DIRS, savepointKey, withPrefix, type LayoutOptions } from './checkpoint_keys.js';
import { isDamage } from './checkpoint_objects.js';
import { listManifestEpochs, readManifest, referencedKeys, type CheckpointManifest } from './manifest.js';
import { quarantinedReferences, quarantineMessage, quarantineNewerThan } from './quarantine.js';
import { listSavepoints } from './savepoints.js';
import type { SnapshotStore } from './snapshot_store.js';

/** How to apply retention. */
export interface GcOptions extends LayoutOptions {
  /** Complete checkpoints to keep. Default `checkpointsRetained` (shared/limits.ts). */
  retain?: number;
  /**
   * The checkpoint just written, which is always retained. Manifests with a newer epoch belong to
   * a timeline that recovery abandoned (it fell back past them, or restored a savepoint) and are
   * moved to quarantine (quarantine.ts), not deleted: left in place, a later `latestCheckpoint`
   * would resurrect them, and deleted, an operator could not repair the store. (Recovery
   * quarantines them before the run's first checkpoint; this is the second line of defence.)
   */
  current?: CheckpointManifest;
  /** Also list every object and delete those no retained manifest or savepoint references. */
  sweep?: boolean;
  /**
   * Manifests the caller wrote itself, by epoch (the single writer's memory): used instead of
   * reading them back. Entries of manifests retention deletes are removed.
   */
  known?: Map<number, CheckpointManifest>;
}

/**
 * What retention does with one listed manifest, decided from the listing alone (newest first):
 * - `abandoned`: newer than the current checkpoint, from a timeline recovery abandoned; quarantined.
 * - `current`: the checkpoint just written; retained without reading it back.
 * - `stale-listing`: the listing does not show the current checkpoint yet; delete nothing at all.
 * - `expired`: older than the `retain` newest complete checkpoints; deleted.
 * - `candidate`: retained if it reads back as a complete checkpoint, deleted otherwise.
 */
export type RetentionVerdict = 'abandoned' | 'current' | 'stale-listing' | 'expired' | 'candidate';

/**
 * The verdict for the manifest of `epoch`, given the current checkpoint's epoch (if any), how many
 * complete checkpoints newer than it are retained already, and how many to retain.
 */
export function retentionVerdict(epoch: number, currentEpoch: number | undefined, retainedSoFar: number, retain: number): RetentionVerdict {
  if (currentEpoch !== undefined && epoch > currentEpoch) return 'abandoned';
  if (currentEpoch !== undefined && epoch === currentEpoch) return 'current';
  // Listed newest first, the current checkpoint comes before any older one: if none was retained
  // yet, the listing missed the manifest just written (a store that lists stale results).
  if (currentEpoch !== undefined && retainedSoFar === 0) return 'stale-listing';
  if (retainedSoFar >= retain) return 'expired';
  return 'candidate';
}

/** The keys the dropped manifests reference that no kept manifest or savepoint does. */
export function unreferencedKeys(dropped: readonly CheckpointManifest[], keep: ReadonlySet<string>, opts: LayoutOptions): Set<string> {
  const out = new Set<string>();
  for (const m of dropped) for (const k of referencedKeys(m, opts)) if (!keep.has(k)) out.add(k);
  return out;
}

/**
 * Apply retention: keep the newest `retain` complete checkpoints and every savepoint, delete the
 * other manifests and the objects only they referenced. Returns the deleted keys. Manifests go
 * first: a crash in between leaves orphan objects for the next sweep, never a manifest naming
 * deleted objects.
 */
export async function collectGarbage(store: SnapshotStore, opts: GcOptions = {}): Promise<string[]> {
  const logger = layoutLogger(opts);
  const retain = opts.retain ?? checkpointsRetained;
  if (!Number.isInteger(retain) || retain < 1) throw new RangeError(`retain must be a positive integer, got ${retain}`);

  const known = opts.known;
  const read = async (epoch: number, key: string): Promise<CheckpointManifest> => known?.get(epoch) ?? readManifest(store, key);
  const retained: CheckpointManifest[] = [];
  const dropped: CheckpointManifest[] = [];
  const dropKeys: string[] = [];
  // Read what a deleted manifest references so those objects can go too (unreadable: the sweep finds them).
  const drop = async (epoch: number, key: string): Promise<void> => {
    dropKeys.push(key);
    try {
      dropped.push(await read(epoch, key));
    } catch (e) {
      if (!isDamage(e)) throw e;
    }
  };
  const current = opts.current;
  let abandoned = false;
  for (const epoch of await listManifestEpochs(store, opts)) {
    const key = manifestKey(epoch, opts);
    switch (retentionVerdict(epoch, current?.epoch, retained.length, retain)) {
      case 'abandoned':
        abandoned = true;
        break;
      case 'current':
        retained.push(current!); // just written: no need to read it back
        break;
      case 'stale-listing':
        logger.warn(`retention skipped: the listing of ${store.describe()} does not show checkpoint ${current!.epoch} yet`);
        return [];
      case 'expired':
        await drop(epoch, key);
        break;
      case 'candidate':
        try {
          retained.push(await read(epoch, key));
        } catch (e) {
          if (!isDamage(e)) throw e;
          // Not a complete checkpoint: it does not count towards `retain`, and it is garbage.
          logger.warn(`retention: deleting unusable manifest: ${e.message}`, { object: e.key, reason: e.reason });
          dropKeys.push(key);
        }
        break;
    }
  }
  if (retained.length === 0) return []; // nothing verifiable: never delete in that state
  if (abandoned) {
    const q = await quarantineNewerThan(store, current!.epoch, opts);
    if (q.epochs.length > 0) logger.warn(quarantineMessage(q, current!.epoch), { store: store.describe() });
  }

  const keep = new Set<string>();
  for (const m of retained) for (const k of referencedKeys(m, opts)) keep.add(k);
  let savepointsKnown = true;
  for (const name of await listSavepoints(store, opts)) {
    try {
      for (const k of referencedKeys(await readManifest(store, savepointKey(name, opts)), opts)) keep.add(k);
    } catch (e) {
      if (!isDamage(e)) throw e;
      savepointsKnown = false;
      logger.warn(
        `retention: savepoint ${name} is unreadable, so no snapshot object is deleted until it is repaired or deleted: ${e.message}`,
        { object: e.key },
      );
    }
  }

  const deleted: string[] = [];
  if (dropKeys.length > 0) {
    await store.delete(dropKeys);
    deleted.push(...dropKeys);
    if (known !== undefined) for (const m of dropped) known.delete(m.epoch);
  }
  if (!savepointsKnown) return deleted;
  if (dropped.length > 0 || opts.sweep === true) {
    // Objects of quarantined manifests stay for repair; an unreadable one may name any object.
    const q = await quarantinedReferences(store, opts);
    if (!q.complete) {
      logger.warn('retention: a quarantined manifest is unreadable, so no snapshot object is deleted until it is removed', {
        store: store.describe(),
      });
      return deleted;
    }
    for (const k of q.keys) keep.add(k);
  }

  const doomed = unreferencedKeys(dropped, keep, opts);
  if (opts.sweep === true) {
    // Orphans of attempts that never wrote a manifest, and of abandoned timelines. Safe because
    // there is one writer and it never runs retention while a checkpoint is being written.
    for (const dir of OBJECT_DIRS) {
      for (const k of await store.list(withPrefix(opts.prefix, dir))) {
        if (isLayoutObject(k) && !keep.has(k)) doomed.add(k);
      }
    }
  }
  if (doomed.size > 0) {
    const keys = [...doomed].sort();
    await store.delete(keys);
    deleted.push(...keys);
  }
  return deleted;
}
