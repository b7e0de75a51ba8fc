/**
 * Folding a key group's chain (a base, then its deltas, oldest first) into its full state: later
 * puts win, deletes remove. Used by restores and by compaction, which writes a folded chain as a
 * new base.
 */
import { chainKeys, packOf, type CheckpointManifest } from './manifest.js';
import type { LayoutOptions } from './checkpoint_keys.js';
import { readChainObject } from './checkpoint_objects.js';
import { packEntry, type PackCache } from './pack.js';
import type { SnapshotStore } from './snapshot_store.js';

/** A key group's state: key bytes as latin1 strings (see keyString) to values. */
export type KeyGroupState = Map<string, Uint8Array>;

/** Key bytes as a latin1 string: a Map key that sorts exactly like Buffer.compare. */
function keyString(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
}

/** The key bytes of a KeyGroupState key. */
export function keyBytes(k: string): Buffer {
  return Buffer.from(k, 'latin1');
}

/** Apply puts then deletes to `state`. */
export function applyChanges(state: KeyGroupState, puts: Iterable<readonly [Uint8Array, Uint8Array]>, deletes: Iterable<Uint8Array>): void {
  for (const [k, v] of puts) state.set(keyString(k), v);
  for (const k of deletes) state.delete(keyString(k));
}

function* pairs(flat: Uint8Array[]): Generator<[Uint8Array, Uint8Array]> {
  for (let i = 0; i < flat.length; i += 2) yield [flat[i]!, flat[i + 1]!];
}

/** Fold the objects of one key group, in order, into a map of its full state. */
export async function foldKeyGroup(
  store: SnapshotStore,
  manifest: CheckpointManifest,
  kg: number,
  opts: LayoutOptions,
  packs: PackCache,
): Promise<KeyGroupState> {
  const chain = manifest.chains[kg]!;
  const keys = chainKeys(manifest, kg, opts);
  const parts = await Promise.all(
    keys.map(async (k, i): Promise<{ p: Uint8Array[]; d: Uint8Array[] }> => {
      const epoch = chain[i]!;
      if (packOf(manifest.packs?.[String(epoch)], kg) === undefined) return readChainObject(store, k, kg, epoch);
      return packEntry(store, k, await packs.get(store, k), kg, epoch);
    }),
  );
  const state: KeyGroupState = new Map();
  for (const o of parts) applyChanges(state, pairs(o.p), o.d);
  return state;
}

/** The entries of a key group's state in key order. */
export function sortedEntries(state: KeyGroupState): [string, Uint8Array][] {
  return [...state.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}
