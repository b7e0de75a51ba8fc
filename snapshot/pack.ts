/**
 * Packs: the deltas of one checkpoint written together, a sorted run of key groups per object
 * (`packs/delta-<epoch>-<tag>-<n>`), instead of one object per key group. Holds the pack object's
 * format, how a checkpoint's changed key groups are split into packs, reading a pack back, and the
 * cache of packs shared by the key groups (and checkpoints) that fold them.
 */
import { assert } from '../shared/errors.js';
import { packCacheBytesMax, packCachePacksMax } from '../shared/limits.js';
import { decodeObject, malformed } from './checkpoint_objects.js';
import type { PackIndex } from './manifest.js';
import type { SnapshotStore } from './snapshot_store.js';

/** Changes of one key group in one epoch. Each key appears at most once per part. */
export interface KeyGroupChanges {
  puts: [key: Uint8Array, value: Uint8Array][];
  deletes: Uint8Array[];
}

/** Packed deltas of one epoch: `g` = [kg, flat puts, deletes][], ascending key groups. */
export interface PackObject {
  f: 1;
  e: number;
  g: [number, Uint8Array[], Uint8Array[]][];
}

/** Estimated msgpack overhead of a pack entry, of a put and of a delete, in bytes (for splitting only). */
const ENTRY_OVERHEAD_BYTES = 16;
const PUT_OVERHEAD_BYTES = 8;
const DELETE_OVERHEAD_BYTES = 4;

/** How the changed key groups of one epoch are packed: the manifest's index and each pack's key groups. */
export interface PackPlan {
  index: PackIndex;
  /** Pack n holds runs[n], ascending key groups. */
  runs: number[][];
}

/**
 * Split the key groups `packed` (each with changes in `parts`) into sorted runs of about
 * `bytesMax` bytes each; `own` are the key groups of this epoch written as objects of their own.
 * Returns undefined when nothing is packed.
 */
export function planPacks(
  packed: number[],
  parts: ReadonlyMap<number, KeyGroupChanges>,
  own: number[],
  bytesMax: number,
): PackPlan | undefined {
  if (packed.length === 0) return undefined;
  const sorted = [...packed].sort((a, b) => a - b);
  const index: PackIndex = { splits: [], own: [...own].sort((a, b) => a - b) };
  const runs: number[][] = [];
  let run: number[] = [];
  let bytes = 0;
  for (const kg of sorted) {
    const part = parts.get(kg);
    assert(part !== undefined, () => `packed key group ${kg} has no changes`);
    let b = ENTRY_OVERHEAD_BYTES;
    for (const [k, v] of part.puts) b += k.byteLength + v.byteLength + PUT_OVERHEAD_BYTES;
    for (const k of part.deletes) b += k.byteLength + DELETE_OVERHEAD_BYTES;
    if (run.length > 0 && bytes + b > bytesMax) {
      runs.push(run);
      index.splits.push(kg);
      run = [];
      bytes = 0;
    }
    run.push(kg);
    bytes += b;
  }
  runs.push(run);
  assert(runs.length === index.splits.length + 1, 'one more pack than splits');
  return { index, runs };
}

/** The pack object holding the changes of key groups `kgs` (ascending) at `epoch`. */
export function buildPack(epoch: number, kgs: readonly number[], parts: ReadonlyMap<number, KeyGroupChanges>): PackObject {
  const g: PackObject['g'] = [];
  for (const kg of kgs) {
    const part = parts.get(kg);
    assert(part !== undefined, () => `packed key group ${kg} has no changes`);
    assert(g.length === 0 || g[g.length - 1]![0] < kg, 'pack entries ascend by key group');
    const p: Uint8Array[] = [];
    for (const [k, v] of part.puts) p.push(k, v);
    g.push([kg, p, part.deletes]);
  }
  return { f: 1, e: epoch, g };
}

/** Read the pack at `key`, checking its shape. */
export async function readPackObject(store: SnapshotStore, key: string): Promise<PackObject> {
  const o = decodeObject(store, key, await store.get(key)) as Partial<PackObject> | null;
  if (o === null || typeof o !== 'object' || o.f !== 1 || !Array.isArray(o.g)) throw malformed(store, key, 'not a pack object');
  for (const g of o.g) {
    if (!Array.isArray(g) || !Number.isInteger(g[0]) || !Array.isArray(g[1]) || !Array.isArray(g[2]) || g[1].length % 2 !== 0)
      throw malformed(store, key, 'bad pack entry');
  }
  return o as PackObject;
}

/** The changes of key group `kg` in the pack at `key` of `epoch`. */
export function packEntry(
  store: SnapshotStore,
  key: string,
  pack: PackObject,
  kg: number,
  epoch: number,
): { p: Uint8Array[]; d: Uint8Array[] } {
  if (pack.e !== epoch) throw malformed(store, key, `holds epoch ${String(pack.e)}, expected ${epoch}`);
  const g = pack.g.find((x) => x[0] === kg);
  if (g === undefined) throw malformed(store, key, `holds no changes of key group ${kg}`);
  return { p: g[1], d: g[2] };
}

/** Approximate memory of a decoded pack, for the cache's byte bound. */
function packBytes(p: PackObject): number {
  let n = 0;
  for (const [, puts, dels] of p.g) {
    for (const b of puts) n += b.byteLength + 8;
    for (const b of dels) n += b.byteLength + 8;
  }
  return n;
}

/**
 * Pack objects read (or written) while folding key groups: consecutive key groups of a restore
 * share packs, and a checkpoint's compactions fold packs the same writer wrote moments before (the
 * uploader keeps one cache across checkpoints: `WriteOptions.packCache`). Object names are never
 * reused (random tags), so a cached pack never goes stale. FIFO, bounded by count and bytes.
 */
export class PackCache {
  private readonly packs = new Map<string, { pack: Promise<PackObject>; bytes: number }>();
  private bytes = 0;
  constructor(
    private readonly countMax = packCachePacksMax,
    private readonly bytesMax = packCacheBytesMax,
  ) {}

  get(store: SnapshotStore, key: string): Promise<PackObject> {
    const hit = this.packs.get(key);
    if (hit !== undefined) return hit.pack;
    const pack = readPackObject(store, key);
    const entry = { pack, bytes: 0 };
    this.packs.set(key, entry);
    pack.then(
      (p) => {
        if (this.packs.get(key) !== entry) return;
        entry.bytes = packBytes(p);
        this.bytes += entry.bytes;
        this.evict();
      },
      () => {
        if (this.packs.get(key) === entry) this.packs.delete(key);
      },
    );
    this.evict();
    return pack;
  }

  /** A pack this process just wrote. */
  put(key: string, pack: PackObject, bytes: number): void {
    if (this.packs.has(key) || bytes > this.bytesMax / 4) return;
    this.packs.set(key, { pack: Promise.resolve(pack), bytes });
    this.bytes += bytes;
    this.evict();
  }

  private evict(): void {
    while (this.packs.size > this.countMax || (this.bytes > this.bytesMax && this.packs.size > 1)) {
      const [k, e] = this.packs.entries().next().value!;
      this.packs.delete(k);
      this.bytes -= e.bytes;
    }
    assert(this.bytes >= 0, () => `pack cache bytes went negative (${this.bytes})`);
  }
}
