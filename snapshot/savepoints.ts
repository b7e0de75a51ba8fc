/**
 * Savepoints: a manifest copied under a name the user chose (`savepoints/<name>`). Retention
 * never deletes the objects a savepoint references while the savepoint exists.
 */
import { savepointKey, savepointsDir, type LayoutOptions } from './checkpoint_keys.js';
import { encodeObject } from './checkpoint_objects.js';
import { verifyObjects, type LatestOptions } from './checkpoint_restore.js';
import { readManifest, type CheckpointManifest } from './manifest.js';
import { SnapshotError, type SnapshotStore } from './snapshot_store.js';

/** A savepoint name: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit. */
const SAVEPOINT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkSavepointName(store: SnapshotStore, name: string): void {
  if (!SAVEPOINT_NAME.test(name)) {
    throw new SnapshotError(
      'invalid-key',
      store.describe(),
      `savepoints/${name}`,
      `savepoint name ${JSON.stringify(name)} is invalid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

/** Keep `manifest` as savepoint `name`: its objects are never deleted while the savepoint exists. */
export async function writeSavepoint(
  store: SnapshotStore,
  name: string,
  manifest: CheckpointManifest,
  opts: LayoutOptions = {},
): Promise<void> {
  checkSavepointName(store, name);
  await store.put(savepointKey(name, opts), encodeObject({ ...manifest, savepoint: name }));
}

/** Read savepoint `name` and verify every object it references (no fallback: the user named it). */
export async function readSavepoint(store: SnapshotStore, name: string, opts: LatestOptions = {}): Promise<CheckpointManifest> {
  checkSavepointName(store, name);
  const m = await readManifest(store, savepointKey(name, opts));
  if ((opts.verify ?? 'objects') === 'objects') await verifyObjects(store, m, opts);
  return m;
}

/** The names of every savepoint in the store. */
export async function listSavepoints(store: SnapshotStore, opts: LayoutOptions = {}): Promise<string[]> {
  const dir = savepointsDir(opts);
  return (await store.list(dir)).map((k) => k.slice(dir.length));
}

/** Delete a savepoint; its objects go at the next retention that no longer needs them. */
export async function deleteSavepoint(store: SnapshotStore, name: string, opts: LayoutOptions = {}): Promise<void> {
  checkSavepointName(store, name);
  await store.delete([savepointKey(name, opts)]);
}
