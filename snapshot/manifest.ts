/**
 * The checkpoint manifest: its format, its validation when read back, and the object keys it
 * references (each key group's chain of bases, deltas and packs, and the in-flight object). The
 * manifest format is on disk and in S3: existing snapshot stores are read by it, so fields are
 * only ever added as optional.
 */
import { assert } from '../shared/errors.js';
import { chainObjectRel, INFLIGHT_REL, manifestEpochOf, manifestsDir, packRel, withPrefix, type LayoutOptions } from './checkpoint_keys.js';
import { decodeObject, malformed } from './checkpoint_objects.js';
import type { SnapshotStore } from './snapshot_store.js';

/** The commit point of one checkpoint: for every key group, the objects making up its full state. */
export interface CheckpointManifest {
  format: 1;
  epoch: number;
  /** The write attempt that produced this manifest. */
  tag: string;
  keyGroups: number;
  /** Per key group, the epochs of its chain: chains[kg][0] is a base, the rest deltas. */
  chains: number[][];
  /** The attempt tag of every epoch referenced in `chains`. */
  tags: Record<string, string>;
  /** Key (relative to the layout prefix) of the in-flight messages object, or null. */
  inflight: string | null;
  meta: Record<string, unknown>;
  /** Set on savepoint copies. */
  savepoint?: string;
  /** Epochs whose deltas are packed (see checkpoint_layout.ts): absent when none in the chains are. */
  packs?: Record<string, PackIndex>;
}

/** Where an epoch's packed deltas are. */
export interface PackIndex {
  /** The first key group of pack 1, 2, ... (pack 0 starts at key group 0); ascending. */
  splits: number[];
  /** Key groups of this epoch with an object of their own (a compacted base), not in a pack. */
  own: number[];
}

/** Keys carry their key group as a u16, so a layout has at most this many key groups. */
export const KEY_GROUPS_MAX = 65_536;

/** A write attempt's tag: lowercase hex (it becomes part of object names). */
const TAG = /^[0-9a-f]+$/;

/** The pack of `index` that holds key group `kg` (undefined: the key group has an object of its own). */
export function packOf(index: PackIndex | undefined, kg: number): number | undefined {
  if (index === undefined || index.own.includes(kg)) return undefined;
  let n = 0;
  while (n < index.splits.length && index.splits[n]! <= kg) n++;
  return n;
}

/** The keys (with the layout prefix) of the objects holding key group `kg`'s chain, base first (packs included). */
export function chainKeys(manifest: CheckpointManifest, kg: number, opts: LayoutOptions = {}): string[] {
  const chain = manifest.chains[kg];
  assert(chain !== undefined, `key group ${kg} outside [0, ${manifest.keyGroups})`);
  return chain.map((e, i) => {
    const tag = manifest.tags[String(e)];
    assert(tag !== undefined, `manifest ${manifest.epoch} has no tag for epoch ${e}`);
    const pack = packOf(manifest.packs?.[String(e)], kg);
    return withPrefix(opts.prefix, pack === undefined ? chainObjectRel(kg, e, tag, i === 0) : packRel(e, tag, pack));
  });
}

const referencedMemo = new WeakMap<CheckpointManifest, { prefix: string; keys: string[] }>();

/** Every object key (with prefix) a manifest references, except the manifest itself; each once. */
export function referencedKeys(manifest: CheckpointManifest, opts: LayoutOptions = {}): readonly string[] {
  const prefix = opts.prefix ?? '';
  const memo = referencedMemo.get(manifest);
  if (memo !== undefined && memo.prefix === prefix) return memo.keys;
  const out = new Set<string>();
  // A packed epoch's pack keys are the same for every key group: build each once.
  const packKeys = new Map<string, string[]>();
  for (let kg = 0; kg < manifest.keyGroups; kg++) {
    const chain = manifest.chains[kg]!;
    for (let i = 0; i < chain.length; i++) {
      const e = String(chain[i]);
      const tag = manifest.tags[e];
      assert(tag !== undefined, `manifest ${manifest.epoch} has no tag for epoch ${e}`);
      const pack = packOf(manifest.packs?.[e], kg);
      if (pack === undefined) {
        out.add(withPrefix(prefix, chainObjectRel(kg, chain[i]!, tag, i === 0)));
        continue;
      }
      let keys = packKeys.get(e);
      if (keys === undefined) packKeys.set(e, (keys = []));
      let k = keys[pack];
      if (k === undefined) keys[pack] = k = withPrefix(prefix, packRel(chain[i]!, tag, pack));
      out.add(k);
    }
  }
  if (manifest.inflight !== null) out.add(withPrefix(prefix, manifest.inflight));
  const keys = [...out];
  referencedMemo.set(manifest, { prefix, keys });
  return keys;
}

/**
 * Check every field of a decoded manifest, so that nothing read from a store reaches the code
 * that builds object keys or folds chains unless it is well formed. A failure is a typed
 * `malformed` SnapshotError naming the object (the checkpoint is then unusable, not a crash).
 */
export function validateManifest(store: SnapshotStore, key: string, m: unknown): CheckpointManifest {
  const bad = (why: string): never => {
    throw malformed(store, key, why);
  };
  if (m === null || typeof m !== 'object') bad('not a manifest');
  const o = m as Partial<CheckpointManifest>;
  if (o.format !== 1) bad(`unknown format ${String(o.format)}`);
  if (!Number.isSafeInteger(o.epoch) || o.epoch! < 0) bad('bad epoch');
  if (typeof o.tag !== 'string' || !TAG.test(o.tag)) bad('bad tag');
  if (!Number.isInteger(o.keyGroups) || o.keyGroups! < 1 || o.keyGroups! > KEY_GROUPS_MAX) bad('bad keyGroups');
  if (!Array.isArray(o.chains) || o.chains.length !== o.keyGroups) bad('chains do not cover every key group');
  if (o.tags === null || typeof o.tags !== 'object') bad('bad tags');
  for (const [e, t] of Object.entries(o.tags!)) if (typeof t !== 'string' || !TAG.test(t)) bad(`bad tag of epoch ${e}`);
  for (const chain of o.chains!) {
    if (!Array.isArray(chain)) bad('bad chain');
    let last = -1;
    for (const e of chain) {
      if (!Number.isSafeInteger(e) || typeof o.tags![String(e)] !== 'string') bad(`chain epoch ${String(e)} has no tag`);
      // A chain is a base then the deltas written since, oldest first, none after the checkpoint.
      if (e <= last || e > o.epoch!) bad(`chain epochs out of order or after the checkpoint: ${chain.join(', ')}`);
      last = e;
    }
  }
  if (o.inflight !== null && (typeof o.inflight !== 'string' || !INFLIGHT_REL.test(o.inflight))) bad('bad inflight');
  if (o.meta === null || typeof o.meta !== 'object') bad('bad meta');
  if (o.savepoint !== undefined && typeof o.savepoint !== 'string') bad('bad savepoint');
  if (o.packs !== undefined) {
    if (o.packs === null || typeof o.packs !== 'object') bad('bad packs');
    for (const [e, p] of Object.entries(o.packs)) {
      if (typeof o.tags![e] !== 'string') bad(`packed epoch ${e} has no tag`);
      if (p === null || typeof p !== 'object' || !Array.isArray(p.splits) || !Array.isArray(p.own)) bad(`bad pack index of epoch ${e}`);
      for (const kg of [...p.splits, ...p.own])
        if (!Number.isInteger(kg) || kg < 0 || kg >= o.keyGroups!) bad(`pack index of epoch ${e} names key group ${String(kg)}`);
      for (let i = 1; i < p.splits.length; i++) if (p.splits[i]! <= p.splits[i - 1]!) bad(`pack splits of epoch ${e} are not ascending`);
    }
  }
  return o as CheckpointManifest;
}

/** Read and validate the manifest at `key` (its own checksum only, not the objects it names). */
export async function readManifest(store: SnapshotStore, key: string): Promise<CheckpointManifest> {
  return validateManifest(store, key, decodeObject(store, key, await store.get(key)));
}

/** The epochs of every manifest in the store, newest first. */
export async function listManifestEpochs(store: SnapshotStore, opts: LayoutOptions): Promise<number[]> {
  const dir = manifestsDir(opts);
  const epochs: number[] = [];
  for (const k of await store.list(dir)) {
    const e = manifestEpochOf(dir, k);
    if (e !== undefined) epochs.push(e);
  }
  return epochs.sort((a, b) => b - a);
}
