/**
 * Reading checkpoints back: finding the newest complete checkpoint (falling back past damaged
 * ones), verifying the objects a manifest references, and streaming a range of key groups' state
 * and recorded in-flight messages into the caller's sink.
 */
import { snapshotReadsConcurrentMax } from '../shared/limits.js';
import { layoutLogger, manifestKey, withPrefix, type LayoutOptions } from './checkpoint_keys.js';
import { isDamage, malformed, readInflightObject } from './checkpoint_objects.js';
import { foldKeyGroup, keyBytes, sortedEntries } from './fold.js';
import { listManifestEpochs, readManifest, referencedKeys, type CheckpointManifest } from './manifest.js';
import { mapLimit } from './map_limit.js';
import { PackCache } from './pack.js';
import type { SnapshotStore } from './snapshot_store.js';

/** How to look for a checkpoint. */
export interface LatestOptions extends LayoutOptions {
  /**
   * `objects` (default): read every object the manifest references and verify its checksum, so
   * the checkpoint returned is known to be restorable. `manifest`: only the manifest itself.
   */
  verify?: 'objects' | 'manifest';
  /** Only consider checkpoints with an epoch below this. */
  beforeEpoch?: number;
  /** Parallel reads while verifying. Default `snapshotReadsConcurrentMax` (shared/limits.ts). */
  readConcurrency?: number;
}

/** Read every object `manifest` references, so that each one's checksum is verified. */
export async function verifyObjects(store: SnapshotStore, manifest: CheckpointManifest, opts: LatestOptions): Promise<void> {
  await mapLimit(referencedKeys(manifest, opts), opts.readConcurrency ?? snapshotReadsConcurrentMax, (k) => store.get(k));
}

/**
 * The newest complete checkpoint, or null when there is none. A manifest that is corrupt, or
 * (with `verify: 'objects'`) references a missing or corrupt object, is skipped with a warning
 * naming the object, and the previous one is tried. A store that is unreachable throws
 * (retriable): falling back because of a network hiccup would silently lose progress.
 */
export async function latestCheckpoint(store: SnapshotStore, opts: LatestOptions = {}): Promise<CheckpointManifest | null> {
  const logger = layoutLogger(opts);
  for (const epoch of await listManifestEpochs(store, opts)) {
    if (opts.beforeEpoch !== undefined && epoch >= opts.beforeEpoch) continue;
    try {
      const m = await readManifest(store, manifestKey(epoch, opts));
      if (m.epoch !== epoch) throw malformed(store, manifestKey(epoch, opts), `holds epoch ${m.epoch}`);
      if ((opts.verify ?? 'objects') === 'objects') await verifyObjects(store, m, opts);
      return m;
    } catch (e) {
      if (!isDamage(e)) throw e;
      logger.warn(`checkpoint ${epoch} is unusable, falling back to the previous one: ${e.message}`, {
        store: e.store,
        object: e.key,
        reason: e.reason,
      });
    }
  }
  return null;
}

/**
 * Stream the full state of key groups [kgStart, kgEnd) of a checkpoint into `sink`, key group by
 * key group, each in key order (so the caller's LMDB writes are sorted). Returns the entry count.
 * Memory: one key group's state at a time.
 */
export async function restoreKeyGroups(
  store: SnapshotStore,
  manifest: CheckpointManifest,
  kgStart: number,
  kgEnd: number,
  sink: (key: Uint8Array, value: Uint8Array) => void,
  opts: LayoutOptions = {},
): Promise<number> {
  if (!(0 <= kgStart && kgStart <= kgEnd && kgEnd <= manifest.keyGroups)) {
    throw new RangeError(`key group range [${kgStart}, ${kgEnd}) outside [0, ${manifest.keyGroups})`);
  }
  let n = 0;
  const packs = new PackCache();
  for (let kg = kgStart; kg < kgEnd; kg++) {
    if (manifest.chains[kg]!.length === 0) continue;
    for (const [k, v] of sortedEntries(await foldKeyGroup(store, manifest, kg, opts, packs))) {
      sink(keyBytes(k), v);
      n++;
    }
  }
  return n;
}

/** Stream the recorded in-flight messages of key groups [kgStart, kgEnd), in key-group order. */
export async function readInflight(
  store: SnapshotStore,
  manifest: CheckpointManifest,
  kgStart: number,
  kgEnd: number,
  sink: (kg: number, message: Uint8Array) => void,
  opts: LayoutOptions = {},
): Promise<number> {
  if (manifest.inflight === null) return 0;
  const key = withPrefix(opts.prefix, manifest.inflight);
  const o = await readInflightObject(store, key);
  let n = 0;
  for (const [kg, msgs] of o.g) {
    if (kg < kgStart || kg >= kgEnd) continue;
    for (const m of msgs) {
      sink(kg, m);
      n++;
    }
  }
  return n;
}
