/**
 * The msgpack codec of the checkpoint layout's objects (bases, deltas and in-flight messages;
 * packs are in pack.ts, manifests in manifest.ts), and the typed errors for objects that verified
 * against their checksum but do not hold what the layout expects. The encodings are an on-disk and
 * S3 format: existing snapshot stores are read by them, so they never change.
 */
import { Packr } from 'msgpackr';
import { SnapshotError, type SnapshotStore } from './snapshot_store.js';

/** One codec for every object of the layout: plain maps and arrays, no msgpackr extensions. */
const packr = new Packr({ useRecords: false, moreTypes: false });

/** The msgpack encoding of a layout object (the store seals it with a checksum). */
export function encodeObject(o: unknown): Buffer {
  return packr.pack(o);
}

/** A key group's own object: a base (its full state) or a delta (its changes in epoch `e`). */
export interface ChainObject {
  f: 1;
  kg: number;
  e: number;
  /** Flat [key, value, key, value, ...]: no per-entry array header. */
  p: Uint8Array[];
  d: Uint8Array[];
}

/** The messages recorded in flight at epoch `e`. */
export interface InflightObject {
  f: 1;
  e: number;
  /** [kg, messages][], ascending key groups. */
  g: [number, Uint8Array[]][];
}

/** The typed error for an object that verified but is not a valid checkpoint object. */
export function malformed(store: SnapshotStore, key: string, why: string): SnapshotError {
  return new SnapshotError(
    'malformed',
    store.describe(),
    key,
    `snapshot object ${key} in ${store.describe()} verified but is not a valid checkpoint object (${why}); restore from ` +
      `an older checkpoint or savepoint`,
  );
}

/**
 * True for damage to the store's content (an object missing, corrupt or malformed), as opposed to
 * a store that cannot be reached: damage makes a checkpoint unusable, an outage is retried.
 */
export function isDamage(e: unknown): e is SnapshotError {
  return e instanceof SnapshotError && (e.reason === 'missing' || e.reason === 'corrupt' || e.reason === 'malformed');
}

/** Decode an object's verified body; invalid msgpack is a malformed object. */
export function decodeObject(store: SnapshotStore, key: string, body: Uint8Array): unknown {
  try {
    return packr.unpack(body);
  } catch (e) {
    throw malformed(store, key, `msgpack: ${(e as Error).message}`);
  }
}

/** True for an array of byte strings of even length (flat key, value pairs). */
function isFlatPairs(a: unknown): a is Uint8Array[] {
  return Array.isArray(a) && a.length % 2 === 0 && a.every((b) => b instanceof Uint8Array);
}

function isBytesArray(a: unknown): a is Uint8Array[] {
  return Array.isArray(a) && a.every((b) => b instanceof Uint8Array);
}

/** Read key group `kg`'s own object written at `epoch`, checking it is one. */
export async function readChainObject(store: SnapshotStore, key: string, kg: number, epoch: number): Promise<ChainObject> {
  const o = decodeObject(store, key, await store.get(key)) as Partial<ChainObject> | null;
  if (o === null || typeof o !== 'object' || o.f !== 1 || !isFlatPairs(o.p) || !isBytesArray(o.d)) {
    throw malformed(store, key, 'not a chain object');
  }
  if (o.kg !== kg) throw malformed(store, key, `holds key group ${String(o.kg)}, expected ${kg}`);
  if (o.e !== epoch) throw malformed(store, key, `holds epoch ${String(o.e)}, expected ${epoch}`);
  return o as ChainObject;
}

/** Read the in-flight object at `key`, checking its shape. */
export async function readInflightObject(store: SnapshotStore, key: string): Promise<InflightObject> {
  const o = decodeObject(store, key, await store.get(key)) as Partial<InflightObject> | null;
  if (o === null || typeof o !== 'object' || o.f !== 1 || !Array.isArray(o.g)) throw malformed(store, key, 'not an in-flight object');
  for (const g of o.g as unknown[]) {
    if (!Array.isArray(g) || !Number.isInteger(g[0]) || !isBytesArray(g[1])) throw malformed(store, key, 'bad in-flight entry');
  }
  return o as InflightObject;
}
