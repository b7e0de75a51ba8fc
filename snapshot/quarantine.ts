/**
 * Quarantine: where manifests newer than the checkpoint a run recovered go, instead of being
 * deleted. They are checkpoints recovery did not use: uploaded but never recorded locally (a
 * crash between the upload and checkpoint.json), of a timeline a savepoint restore left, or
 * unusable (an object they name is missing or corrupt). The new run numbers its checkpoints from
 * the recovered one, so it would overwrite them; moved aside they stay available to an operator
 * who wants to repair the store (put the missing object back, move the manifest back).
 *
 *   quarantine/<13-digit ms>-<hex>-after-<recovered epoch>/manifests/<12-digit epoch>
 *
 * The objects a quarantined manifest references are kept by retention (see retention.ts). The
 * newest `quarantineBatchesRetained` batches are kept; older batches are deleted with a log line.
 */
import { randomBytes } from 'node:crypto';
import { quarantineBatchesRetained } from '../shared/limits.js';
import { manifestEpochOf, manifestKey, manifestsDir, withPrefix, type LayoutOptions } from './checkpoint_keys.js';
import { isDamage } from './checkpoint_objects.js';
import { listManifestEpochs, readManifest, referencedKeys } from './manifest.js';
import type { SnapshotStore } from './snapshot_store.js';

/** The listing prefix of every quarantine batch. */
export function quarantineDir(opts: LayoutOptions): string {
  return withPrefix(opts.prefix, 'quarantine/');
}

/** A batch name: sorts by creation time, unique, and says which checkpoint recovery used. */
function batchName(recoveredEpoch: number): string {
  return `${String(Date.now()).padStart(13, '0')}-${randomBytes(3).toString('hex')}-after-${recoveredEpoch}`;
}

/** What one quarantine did. */
export interface QuarantineResult {
  /** Epochs of the manifests moved aside (newest first). */
  epochs: number[];
  /** The batch's key prefix ('' when nothing was moved). */
  batch: string;
  /** Batches deleted because more than `quarantineBatchesRetained` were kept. */
  expired: string[];
}

/**
 * Move every manifest with an epoch above `recoveredEpoch` into a new quarantine batch (copy,
 * then delete the original: a crash in between leaves both, and the next run quarantines the
 * original again into a batch of its own). Copies are raw (`SnapshotStore.copy`), so a damaged
 * manifest is kept as it is.
 */
export async function quarantineNewerThan(
  store: SnapshotStore,
  recoveredEpoch: number,
  opts: LayoutOptions = {},
): Promise<QuarantineResult> {
  const newer = (await listManifestEpochs(store, opts)).filter((e) => e > recoveredEpoch);
  if (newer.length === 0) return { epochs: [], batch: '', expired: [] };
  const batch = `${quarantineDir(opts)}${batchName(recoveredEpoch)}/`;
  const dir = manifestsDir(opts);
  for (const epoch of newer) {
    const from = manifestKey(epoch, opts);
    await store.copy(from, `${batch}manifests/${from.slice(dir.length)}`);
  }
  await store.delete(newer.map((e) => manifestKey(e, opts)));
  const expired = await expireBatches(store, opts);
  return { epochs: newer, batch, expired };
}

/** The log line for a quarantine (the caller logs it with its own logger: this may run on the upload thread). */
export function quarantineMessage(r: QuarantineResult, recoveredEpoch: number): string {
  let m =
    `snapshot store: ${r.epochs.length} checkpoint(s) newer than the recovered checkpoint ${recoveredEpoch} moved to ` +
    `${r.batch} (epochs ${r.epochs.join(', ')}); kept for repair, see docs/checkpoints.md "Quarantine"`;
  if (r.expired.length > 0) m += `; older quarantine batches deleted (only ${quarantineBatchesRetained} are kept): ${r.expired.join(', ')}`;
  return m;
}

/** The quarantine batches, oldest first (each a key prefix ending in '/'). */
export async function listQuarantineBatches(store: SnapshotStore, opts: LayoutOptions = {}): Promise<string[]> {
  const root = quarantineDir(opts);
  const batches = new Set<string>();
  for (const k of await store.list(root)) {
    const slash = k.indexOf('/', root.length);
    if (slash > root.length) batches.add(k.slice(0, slash + 1));
  }
  return [...batches].sort();
}

/** Delete the oldest batches beyond the retained number; returns their prefixes. */
async function expireBatches(store: SnapshotStore, opts: LayoutOptions): Promise<string[]> {
  const batches = await listQuarantineBatches(store, opts);
  const expired = batches.slice(0, Math.max(0, batches.length - quarantineBatchesRetained));
  for (const b of expired) await store.delete(await store.list(b));
  return expired;
}

/**
 * Every object key the quarantined manifests reference (retention keeps them). A quarantined
 * manifest that cannot be read references nothing it could name; `complete` is false then, and
 * retention's orphan sweep deletes nothing (an unreadable manifest may still name objects).
 */
export async function quarantinedReferences(
  store: SnapshotStore,
  opts: LayoutOptions = {},
): Promise<{ keys: Set<string>; complete: boolean }> {
  const keys = new Set<string>();
  let complete = true;
  // One listing of every batch; a quarantined manifest never changes, so what it names is read
  // once per store and kept (retention asks on every run, up to several times a second).
  const root = quarantineDir(opts);
  const listed = new Set<string>();
  for (const k of await store.list(root)) {
    const m = /^(.*\/manifests\/)\d+$/.exec(k.slice(root.length));
    if (m === null || manifestEpochOf(`${root}${m[1]!}`, k) === undefined) continue;
    const memoKey = `${store.describe()}\0${k}`;
    listed.add(memoKey);
    let refs = referencesMemo.get(memoKey);
    if (refs === undefined) {
      try {
        refs = referencedKeys(await readManifest(store, k), opts);
        referencesMemo.set(memoKey, refs);
      } catch (e) {
        if (!isDamage(e)) throw e;
        complete = false;
        continue;
      }
    }
    for (const r of refs) keys.add(r);
  }
  // Forget batches that are gone (expired, or deleted by an operator): the memo stays as small as the quarantine.
  for (const k of referencesMemo.keys()) if (k.startsWith(`${store.describe()}\0`) && !listed.has(k)) referencesMemo.delete(k);
  return { keys, complete };
}

/** What each quarantined manifest names, by store and key (see quarantinedReferences). */
const referencesMemo = new Map<string, readonly string[]>();
