/**
 * The incremental checkpoint format on top of a SnapshotStore.
 *
 *   <prefix>/kg/<kg:5>/base-<epoch:12>-<tag>    full state of one key group as of <epoch> (sorted puts)
 *   <prefix>/kg/<kg:5>/delta-<epoch:12>-<tag>   changes of one key group in <epoch> (puts + deletes)
 *   <prefix>/inflight/<epoch:12>-<tag>          messages recorded in flight at <epoch>, by key group
 *   <prefix>/manifests/<epoch:12>               the commit point of checkpoint <epoch>
 *   <prefix>/savepoints/<name>                  a manifest copy, retained until deleted
 *
 * A manifest lists, for EVERY key group, the chain of objects that make up its full state: a base
 * then the deltas written since, oldest first (an empty chain is an empty key group). Restoring a
 * key group folds its chain: later puts win, deletes remove. Objects are msgpack, sealed with a
 * checksum by the store. The manifest is written last, so a checkpoint is complete iff its
 * manifest exists and verifies; everything written before it is invisible until then.
 *
 * `<tag>` is random per write attempt. Object names are therefore never reused: a retried
 * checkpoint, or an epoch written again after recovery fell back past a corrupt manifest, can
 * never overwrite an object some other manifest or savepoint references. (The brief named objects
 * `delta-<epoch>`; the tag is the one addition, for that reason.) Manifests record, per epoch
 * they reference, the tag of the attempt that wrote it.
 *
 * Packs: the deltas of one checkpoint are written together, in a few objects instead of one per key
 * group (`<prefix>/packs/delta-<epoch:12>-<tag>-<n:3>`, each holding a sorted run of key groups,
 * at most `packBytesMax` bytes each). A checkpoint of a uniform workload touches most key groups,
 * and one object per key group made a small checkpoint cost hundreds of PUTs (S3) or fsyncs (a
 * local directory), which bounded how often checkpoints could run. The manifest's `packs` says,
 * per packed epoch, where each pack's key groups start and which key groups of that epoch have an
 * object of their own (compacted bases). A key group with an empty chain may start with a packed
 * delta: folding starts from the empty state either way. Manifests without `packs` (written
 * before packs, or with `packBytesMax: 0`) name per-key-group objects only.
 *
 * Compaction: when a chain holds more than `compactAfterDeltas` deltas, a later checkpoint folds
 * it (and that checkpoint's changes) into a new `base-<epoch>`; at most
 * `compactKeyGroupsPerCheckpointMax` key groups per checkpoint, longest chains first, so the extra
 * work of any one checkpoint is bounded.
 *
 * Retention: after its manifest is durable, a checkpoint deletes manifests older than the last
 * `retain` complete ones, and the objects they referenced that no retained manifest nor savepoint
 * references. Objects of attempts that never got a manifest (a crash mid-checkpoint) are found by
 * a sweep (`collectGarbage(..., { sweep: true })`, run every `sweepEveryCheckpoints`).
 * Retention is anchored at the checkpoint just written: manifests with a newer epoch are from a
 * timeline recovery abandoned (it fell back past them) and are deleted with their objects.
 *
 * One writer at a time: the checkpoint coordinator serialises writeCheckpoint/collectGarbage.
 */
import { randomBytes } from 'node:crypto';
import { Packr } from 'msgpackr';
import type { Logger } from '../api/connector_api.js';
import { assert } from '../shared/errors.js';
import { SnapshotError, type SnapshotStore } from './snapshot_store.js';

/** Changes of one key group in one epoch. Each key appears at most once per part. */
export interface KeyGroupChanges {
  puts: [key: Uint8Array, value: Uint8Array][];
  deletes: Uint8Array[];
}

export interface CheckpointInput {
  epoch: number;
  keyGroups: number;
  /** Only key groups that changed since the previous checkpoint. */
  parts: Map<number, KeyGroupChanges>;
  /** Messages recorded in flight (Chandy-Lamport channel state), by the key group of their target. */
  inflight: Map<number, Uint8Array[]>;
  /** Ingress positions, egress commit markers... anything msgpack can encode. */
  meta: Record<string, unknown>;
  /**
   * The checkpoint this one builds on. `undefined`: the newest manifest in the store older than
   * `epoch` (its objects are not re-verified). `null`: none, every key group starts empty.
   */
  previous?: CheckpointManifest | null;
}

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
  /** Epochs whose deltas are packed (see the header): absent when none in the chains are. */
  packs?: Record<string, PackIndex>;
}

/** Where an epoch's packed deltas are. */
export interface PackIndex {
  /** The first key group of pack 1, 2, ... (pack 0 starts at key group 0); ascending. */
  splits: number[];
  /** Key groups of this epoch with an object of their own (a compacted base), not in a pack. */
  own: number[];
}

export interface LayoutOptions {
  /** Key prefix inside the store. Default '' (the store's root). */
  prefix?: string;
  logger?: Logger;
}

export interface WriteOptions extends LayoutOptions {
  /** Fold a chain into a new base when it has more deltas than this. Default 8. */
  compactAfterDeltas?: number;
  /** Bound on compactions per checkpoint. Default 8. */
  compactKeyGroupsPerCheckpointMax?: number;
  /** Complete checkpoints to keep. Default 3. */
  retain?: number;
  /** Run an orphan sweep when epoch % this === 0 (0 = never). Default 100. */
  sweepEveryCheckpoints?: number;
  /** Parallel uploads. Default 8. */
  uploadConcurrency?: number;
  /** Pack the deltas of a checkpoint into objects of about this many bytes; 0 = one object per key group. Default 4 MiB. */
  packBytesMax?: number;
  /** A cache kept across checkpoints by one writer: packs written are kept for later compactions. */
  packCache?: PackCache;
  /** Manifests this writer wrote, for retention (see GcOptions.known). */
  known?: Map<number, CheckpointManifest>;
  /** Apply retention after this checkpoint. Default true (a writer of frequent checkpoints may run it less often). */
  retention?: boolean;
  /** Sweep orphans with this retention; default: when epoch % sweepEveryCheckpoints === 0. */
  sweep?: boolean;
}

export interface WrittenObject {
  key: string;
  bytes: number;
}

export interface CheckpointResult {
  manifest: CheckpointManifest;
  /** Every object written, the manifest last. Keys include the layout prefix. */
  written: WrittenObject[];
  /** Key groups folded into a new base by this checkpoint. */
  compacted: number[];
  /** Objects deleted by retention (including manifests). */
  deleted: string[];
  /** Set when retention failed (the checkpoint itself is complete; retention runs again next time). */
  gcError?: Error;
}

const packr = new Packr({ useRecords: false, moreTypes: false });
const EPOCH_DIGITS = 12;
const KG_DIGITS = 5;
const KEY_GROUPS_MAX = 65_536; // keys carry the key group as u16
const SAVEPOINT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const consoleLogger: Logger = {
  info: (m, f) => console.info(m, f ?? ''),
  warn: (m, f) => console.warn(m, f ?? ''),
  error: (m, f) => console.error(m, f ?? ''),
};

// ---------------------------------------------------------------------------------------------
// Names

function pad(n: number, digits: number): string {
  return String(n).padStart(digits, '0');
}

function join(prefix: string | undefined, rel: string): string {
  const p = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return p === '' ? rel : `${p}/${rel}`;
}

export function manifestKey(epoch: number, opts: LayoutOptions = {}): string {
  return join(opts.prefix, `manifests/${pad(epoch, EPOCH_DIGITS)}`);
}

export function savepointKey(name: string, opts: LayoutOptions = {}): string {
  return join(opts.prefix, `savepoints/${name}`);
}

function chainObjectRel(kg: number, epoch: number, tag: string, base: boolean): string {
  return `kg/${pad(kg, KG_DIGITS)}/${base ? 'base' : 'delta'}-${pad(epoch, EPOCH_DIGITS)}-${tag}`;
}

function packRel(epoch: number, tag: string, n: number): string {
  return `packs/delta-${pad(epoch, EPOCH_DIGITS)}-${tag}-${pad(n, 3)}`;
}

/** The pack of `index` that holds key group `kg` (undefined: the key group has an object of its own). */
function packOf(index: PackIndex | undefined, kg: number): number | undefined {
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
    return join(opts.prefix, pack === undefined ? chainObjectRel(kg, e, tag, i === 0) : packRel(e, tag, pack));
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
        out.add(join(prefix, chainObjectRel(kg, chain[i]!, tag, i === 0)));
        continue;
      }
      let keys = packKeys.get(e);
      if (keys === undefined) packKeys.set(e, (keys = []));
      let k = keys[pack];
      if (k === undefined) keys[pack] = k = join(prefix, packRel(chain[i]!, tag, pack));
      out.add(k);
    }
  }
  if (manifest.inflight !== null) out.add(join(prefix, manifest.inflight));
  const keys = [...out];
  referencedMemo.set(manifest, { prefix, keys });
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Object codecs

interface ChainObject {
  f: 1;
  kg: number;
  e: number;
  /** Flat [key, value, key, value, ...]: no per-entry array header. */
  p: Uint8Array[];
  d: Uint8Array[];
}

/** Packed deltas of one epoch: `g` = [kg, flat puts, deletes][], ascending key groups. */
interface PackObject {
  f: 1;
  e: number;
  g: [number, Uint8Array[], Uint8Array[]][];
}

interface InflightObject {
  f: 1;
  e: number;
  /** [kg, messages][] */
  g: [number, Uint8Array[]][];
}

function malformed(store: SnapshotStore, key: string, why: string): SnapshotError {
  return new SnapshotError(
    'malformed',
    store.describe(),
    key,
    `snapshot object ${key} in ${store.describe()} verified but is not a valid checkpoint object (${why}); restore from an older checkpoint or savepoint`,
  );
}

function decode(store: SnapshotStore, key: string, body: Uint8Array): unknown {
  try {
    return packr.unpack(body);
  } catch (e) {
    throw malformed(store, key, `msgpack: ${(e as Error).message}`);
  }
}

async function readChainObject(store: SnapshotStore, key: string, kg: number): Promise<ChainObject> {
  const o = decode(store, key, await store.get(key)) as Partial<ChainObject> | null;
  if (o === null || typeof o !== 'object' || o.f !== 1 || !Array.isArray(o.p) || !Array.isArray(o.d) || o.p.length % 2 !== 0) {
    throw malformed(store, key, 'not a chain object');
  }
  if (o.kg !== kg) throw malformed(store, key, `holds key group ${String(o.kg)}, expected ${kg}`);
  return o as ChainObject;
}

async function readPackObject(store: SnapshotStore, key: string): Promise<PackObject> {
  const o = decode(store, key, await store.get(key)) as Partial<PackObject> | null;
  if (o === null || typeof o !== 'object' || o.f !== 1 || !Array.isArray(o.g)) throw malformed(store, key, 'not a pack object');
  for (const g of o.g) {
    if (!Array.isArray(g) || !Number.isInteger(g[0]) || !Array.isArray(g[1]) || !Array.isArray(g[2]) || g[1].length % 2 !== 0) throw malformed(store, key, 'bad pack entry');
  }
  return o as PackObject;
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
  constructor(private readonly countMax = 64, private readonly bytesMax = 64 << 20) {}

  get(store: SnapshotStore, key: string): Promise<PackObject> {
    const hit = this.packs.get(key);
    if (hit !== undefined) return hit.pack;
    const pack = readPackObject(store, key);
    const entry = { pack, bytes: 0 };
    this.packs.set(key, entry);
    pack.then((p) => {
      if (this.packs.get(key) !== entry) return;
      entry.bytes = packBytes(p);
      this.bytes += entry.bytes;
      this.evict();
    }, () => {
      if (this.packs.get(key) === entry) this.packs.delete(key);
    });
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
  }
}

function packBytes(p: PackObject): number {
  let n = 0;
  for (const [, puts, dels] of p.g) {
    for (const b of puts) n += b.byteLength + 8;
    for (const b of dels) n += b.byteLength + 8;
  }
  return n;
}

function validateManifest(store: SnapshotStore, key: string, m: unknown): CheckpointManifest {
  const bad = (why: string): never => {
    throw malformed(store, key, why);
  };
  if (m === null || typeof m !== 'object') bad('not a manifest');
  const o = m as Partial<CheckpointManifest>;
  if (o.format !== 1) bad(`unknown format ${String(o.format)}`);
  if (!Number.isSafeInteger(o.epoch) || o.epoch! < 0) bad('bad epoch');
  if (typeof o.tag !== 'string') bad('bad tag');
  if (!Number.isInteger(o.keyGroups) || o.keyGroups! < 1 || o.keyGroups! > KEY_GROUPS_MAX) bad('bad keyGroups');
  if (!Array.isArray(o.chains) || o.chains.length !== o.keyGroups) bad('chains do not cover every key group');
  if (o.tags === null || typeof o.tags !== 'object') bad('bad tags');
  for (const chain of o.chains!) {
    if (!Array.isArray(chain)) bad('bad chain');
    for (const e of chain) if (!Number.isSafeInteger(e) || typeof o.tags![String(e)] !== 'string') bad(`chain epoch ${String(e)} has no tag`);
  }
  if (o.inflight !== null && typeof o.inflight !== 'string') bad('bad inflight');
  if (o.meta === null || typeof o.meta !== 'object') bad('bad meta');
  if (o.packs !== undefined) {
    if (o.packs === null || typeof o.packs !== 'object') bad('bad packs');
    for (const [e, p] of Object.entries(o.packs!)) {
      if (typeof o.tags![e] !== 'string') bad(`packed epoch ${e} has no tag`);
      if (p === null || typeof p !== 'object' || !Array.isArray(p.splits) || !Array.isArray(p.own)) bad(`bad pack index of epoch ${e}`);
      for (const kg of [...p.splits, ...p.own]) if (!Number.isInteger(kg) || kg < 0 || kg >= o.keyGroups!) bad(`pack index of epoch ${e} names key group ${String(kg)}`);
    }
  }
  return o as CheckpointManifest;
}

/** Read and validate the manifest at `key` (its own checksum only, not the objects it names). */
export async function readManifest(store: SnapshotStore, key: string): Promise<CheckpointManifest> {
  return validateManifest(store, key, decode(store, key, await store.get(key)));
}

// ---------------------------------------------------------------------------------------------
// Folding

/** Key bytes as a latin1 string: a Map key that sorts exactly like Buffer.compare. */
function keyString(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
}

function applyChanges(state: Map<string, Uint8Array>, puts: Iterable<readonly [Uint8Array, Uint8Array]>, deletes: Iterable<Uint8Array>): void {
  for (const [k, v] of puts) state.set(keyString(k), v);
  for (const k of deletes) state.delete(keyString(k));
}

function* pairs(flat: Uint8Array[]): Generator<[Uint8Array, Uint8Array]> {
  for (let i = 0; i < flat.length; i += 2) yield [flat[i]!, flat[i + 1]!];
}

/** Fold the objects of one key group, in order, into a map of its full state. */
async function foldKeyGroup(store: SnapshotStore, manifest: CheckpointManifest, kg: number, opts: LayoutOptions, packs: PackCache): Promise<Map<string, Uint8Array>> {
  const chain = manifest.chains[kg]!;
  const keys = chainKeys(manifest, kg, opts);
  const parts = await Promise.all(keys.map(async (k, i): Promise<{ p: Uint8Array[]; d: Uint8Array[] }> => {
    if (packOf(manifest.packs?.[String(chain[i])], kg) === undefined) return readChainObject(store, k, kg);
    const pack = await packs.get(store, k);
    const g = pack.g.find((x) => x[0] === kg);
    if (g === undefined) throw malformed(store, k, `holds no changes of key group ${kg}`);
    return { p: g[1], d: g[2] };
  }));
  const state = new Map<string, Uint8Array>();
  for (const o of parts) applyChanges(state, pairs(o.p), o.d);
  return state;
}

function sortedEntries(state: Map<string, Uint8Array>): [string, Uint8Array][] {
  return [...state.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Writing

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}

function emptyManifestChains(keyGroups: number): number[][] {
  return Array.from({ length: keyGroups }, () => []);
}

/**
 * Write checkpoint `input.epoch`: one object per changed key group (a delta, or a new base when
 * the key group is empty or compacted), the in-flight messages, then the manifest. Resolves once
 * the manifest is durable; then applies retention (whose failure is logged and returned, not
 * thrown, since the checkpoint is complete by then).
 */
export async function writeCheckpoint(store: SnapshotStore, input: CheckpointInput, opts: WriteOptions = {}): Promise<CheckpointResult> {
  const logger = opts.logger ?? consoleLogger;
  const compactAfter = opts.compactAfterDeltas ?? 8;
  const compactMax = opts.compactKeyGroupsPerCheckpointMax ?? 8;
  const concurrency = opts.uploadConcurrency ?? 8;
  const { epoch, keyGroups } = input;
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`checkpoint epoch must be a non-negative integer, got ${epoch}`);
  if (!Number.isInteger(keyGroups) || keyGroups < 1 || keyGroups > KEY_GROUPS_MAX) throw new RangeError(`keyGroups must be in [1, ${KEY_GROUPS_MAX}], got ${keyGroups}`);
  for (const kg of [...input.parts.keys(), ...input.inflight.keys()]) {
    if (!Number.isInteger(kg) || kg < 0 || kg >= keyGroups) throw new RangeError(`key group ${kg} outside [0, ${keyGroups})`);
  }

  const previous = input.previous === undefined ? await latestCheckpoint(store, { ...opts, verify: 'manifest', beforeEpoch: epoch }) : input.previous;
  if (previous !== null) {
    if (previous.epoch >= epoch) throw new RangeError(`checkpoint ${epoch} must come after the one it builds on (${previous.epoch})`);
    if (previous.keyGroups !== keyGroups) {
      throw new RangeError(`checkpoint ${epoch} has ${keyGroups} key groups but checkpoint ${previous.epoch} has ${previous.keyGroups}: the number of key groups is fixed for the life of an application's state`);
    }
  }
  const prevChains = previous?.chains ?? emptyManifestChains(keyGroups);
  const tag = randomBytes(4).toString('hex');
  const chains = prevChains.map((c) => [...c]);
  const tags: Record<string, string> = {};

  // Which key groups to compact: chains that would exceed the bound, longest first, bounded.
  const candidates: number[] = [];
  for (let kg = 0; kg < keyGroups; kg++) {
    const len = prevChains[kg]!.length + (input.parts.has(kg) ? 1 : 0);
    if (len - 1 > compactAfter) candidates.push(kg);
  }
  candidates.sort((a, b) => prevChains[b]!.length - prevChains[a]!.length || a - b);
  const compact = new Set(candidates.slice(0, compactMax));

  const packBytesMax = opts.packBytesMax ?? 4 << 20;
  const packCache = opts.packCache ?? new PackCache();
  type Job = { kg: number; base: boolean } | { pack: number; kgs: number[] };
  const jobs: Job[] = [];
  const packed: number[] = [];
  for (const kg of input.parts.keys()) {
    if (compact.has(kg)) continue;
    if (packBytesMax > 0) packed.push(kg);
    else jobs.push({ kg, base: prevChains[kg]!.length === 0 });
  }
  for (const kg of compact) jobs.push({ kg, base: true });
  jobs.sort((a, b) => ('kg' in a ? a.kg : 0) - ('kg' in b ? b.kg : 0));
  // Packs: sorted runs of key groups of about packBytesMax bytes each.
  let packIndex: PackIndex | undefined;
  if (packed.length > 0) {
    packed.sort((a, b) => a - b);
    packIndex = { splits: [], own: [...compact].sort((a, b) => a - b) };
    let run: number[] = [];
    let bytes = 0;
    for (const kg of packed) {
      const part = input.parts.get(kg)!;
      let b = 16;
      for (const [k, v] of part.puts) b += k.byteLength + v.byteLength + 8;
      for (const k of part.deletes) b += k.byteLength + 4;
      if (run.length > 0 && bytes + b > packBytesMax) {
        jobs.push({ pack: packIndex.splits.length, kgs: run });
        packIndex.splits.push(kg);
        run = [];
        bytes = 0;
      }
      run.push(kg);
      bytes += b;
    }
    jobs.push({ pack: packIndex.splits.length, kgs: run });
  }

  const written = await mapLimit(jobs, concurrency, async (job): Promise<WrittenObject> => {
    if ('pack' in job) {
      const g: PackObject['g'] = [];
      for (const kg of job.kgs) {
        const part = input.parts.get(kg)!;
        const p: Uint8Array[] = [];
        for (const [k, v] of part.puts) p.push(k, v);
        g.push([kg, p, part.deletes]);
      }
      const key = join(opts.prefix, packRel(epoch, tag, job.pack));
      const pack: PackObject = { f: 1, e: epoch, g };
      const body = packr.pack(pack);
      await store.put(key, body);
      packCache.put(key, pack, body.byteLength);
      for (const kg of job.kgs) chains[kg] = [...prevChains[kg]!, epoch];
      return { key, bytes: body.byteLength };
    }
    const { kg, base } = job;
    const part = input.parts.get(kg);
    let obj: ChainObject;
    if (base) {
      // A new base: the previous chain (empty unless compacting) folded with this epoch's changes.
      const state = previous !== null && prevChains[kg]!.length > 0 ? await foldKeyGroup(store, previous, kg, opts, packCache) : new Map<string, Uint8Array>();
      if (part !== undefined) applyChanges(state, part.puts, part.deletes);
      const p: Uint8Array[] = [];
      for (const [k, v] of sortedEntries(state)) p.push(Buffer.from(k, 'latin1'), v);
      obj = { f: 1, kg, e: epoch, p, d: [] };
    } else {
      assert(part !== undefined, `delta job without changes for key group ${kg}`);
      const p: Uint8Array[] = [];
      for (const [k, v] of part.puts) p.push(k, v);
      obj = { f: 1, kg, e: epoch, p, d: part.deletes };
    }
    const key = join(opts.prefix, chainObjectRel(kg, epoch, tag, base));
    const body = packr.pack(obj);
    await store.put(key, body);
    chains[kg] = base ? [epoch] : [...prevChains[kg]!, epoch];
    return { key, bytes: body.byteLength };
  });

  let inflightRel: string | null = null;
  if ([...input.inflight.values()].some((msgs) => msgs.length > 0)) {
    inflightRel = `inflight/${pad(epoch, EPOCH_DIGITS)}-${tag}`;
    const g: [number, Uint8Array[]][] = [...input.inflight.entries()].filter(([, m]) => m.length > 0).sort((a, b) => a[0] - b[0]);
    const body = packr.pack({ f: 1, e: epoch, g } satisfies InflightObject);
    const key = join(opts.prefix, inflightRel);
    await store.put(key, body);
    written.push({ key, bytes: body.byteLength });
  }

  for (const chain of chains) {
    for (const e of chain) {
      if (tags[String(e)] !== undefined) continue;
      const t = e === epoch ? tag : previous?.tags[String(e)];
      assert(t !== undefined, `no tag for epoch ${e} in the chain of checkpoint ${epoch}`);
      tags[String(e)] = t;
    }
  }
  // Pack indexes of the epochs the chains still reference.
  const packs: Record<string, PackIndex> = {};
  for (const e of Object.keys(tags)) {
    const index = Number(e) === epoch ? packIndex : previous?.packs?.[e];
    if (index !== undefined) packs[e] = index;
  }
  const manifest: CheckpointManifest = {
    format: 1, epoch, tag, keyGroups, chains, tags, inflight: inflightRel, meta: input.meta,
    ...(Object.keys(packs).length > 0 ? { packs } : {}),
  };
  const mKey = manifestKey(epoch, opts);
  const mBody = packr.pack(manifest);
  // The commit point: the checkpoint is complete once this put resolves.
  await store.put(mKey, mBody);
  written.push({ key: mKey, bytes: mBody.byteLength });

  const result: CheckpointResult = { manifest, written, compacted: [...compact].sort((a, b) => a - b), deleted: [] };
  if (opts.retention === false) return result;
  try {
    const sweepEvery = opts.sweepEveryCheckpoints ?? 100;
    result.deleted = await collectGarbage(store, { ...opts, current: manifest, sweep: opts.sweep ?? (sweepEvery > 0 && epoch % sweepEvery === 0) });
  } catch (e) {
    result.gcError = e as Error;
    logger.warn(`snapshot retention after checkpoint ${epoch} failed; it runs again after the next checkpoint`, { store: store.describe(), error: (e as Error).message });
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Finding and restoring

export interface LatestOptions extends LayoutOptions {
  /**
   * `objects` (default): read every object the manifest references and verify its checksum, so
   * the checkpoint returned is known to be restorable. `manifest`: only the manifest itself.
   */
  verify?: 'objects' | 'manifest';
  /** Only consider checkpoints with an epoch below this. */
  beforeEpoch?: number;
  /** Parallel reads while verifying. Default 8. */
  readConcurrency?: number;
}

function isDamage(e: unknown): e is SnapshotError {
  return e instanceof SnapshotError && (e.reason === 'missing' || e.reason === 'corrupt' || e.reason === 'malformed');
}

async function listManifestEpochs(store: SnapshotStore, opts: LayoutOptions): Promise<number[]> {
  const dir = join(opts.prefix, 'manifests/');
  const epochs: number[] = [];
  for (const k of await store.list(dir)) {
    const name = k.slice(dir.length);
    if (/^\d+$/.test(name)) epochs.push(Number(name));
  }
  return epochs.sort((a, b) => b - a);
}

async function verifyObjects(store: SnapshotStore, manifest: CheckpointManifest, opts: LatestOptions): Promise<void> {
  await mapLimit(referencedKeys(manifest, opts), opts.readConcurrency ?? 8, (k) => store.get(k));
}

/**
 * The newest complete checkpoint, or null when there is none. A manifest that is corrupt, or
 * (with `verify: 'objects'`) references a missing or corrupt object, is skipped with a warning
 * naming the object, and the previous one is tried. A store that is unreachable throws
 * (retriable): falling back because of a network hiccup would silently lose progress.
 */
export async function latestCheckpoint(store: SnapshotStore, opts: LatestOptions = {}): Promise<CheckpointManifest | null> {
  const logger = opts.logger ?? consoleLogger;
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
      sink(Buffer.from(k, 'latin1'), v);
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
  const key = join(opts.prefix, manifest.inflight);
  const o = decode(store, key, await store.get(key)) as Partial<InflightObject> | null;
  if (o === null || typeof o !== 'object' || o.f !== 1 || !Array.isArray(o.g)) throw malformed(store, key, 'not an in-flight object');
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

// ---------------------------------------------------------------------------------------------
// Savepoints

function checkSavepointName(store: SnapshotStore, name: string): void {
  if (!SAVEPOINT_NAME.test(name)) {
    throw new SnapshotError('invalid-key', store.describe(), `savepoints/${name}`, `savepoint name ${JSON.stringify(name)} is invalid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
}

/** Keep `manifest` as savepoint `name`: its objects are never deleted while the savepoint exists. */
export async function writeSavepoint(store: SnapshotStore, name: string, manifest: CheckpointManifest, opts: LayoutOptions = {}): Promise<void> {
  checkSavepointName(store, name);
  await store.put(savepointKey(name, opts), packr.pack({ ...manifest, savepoint: name }));
}

/** Read savepoint `name` and verify every object it references (no fallback: the user named it). */
export async function readSavepoint(store: SnapshotStore, name: string, opts: LatestOptions = {}): Promise<CheckpointManifest> {
  checkSavepointName(store, name);
  const m = await readManifest(store, savepointKey(name, opts));
  if ((opts.verify ?? 'objects') === 'objects') await verifyObjects(store, m, opts);
  return m;
}

export async function listSavepoints(store: SnapshotStore, opts: LayoutOptions = {}): Promise<string[]> {
  const dir = join(opts.prefix, 'savepoints/');
  return (await store.list(dir)).map((k) => k.slice(dir.length));
}

/** Delete a savepoint; its objects go at the next retention that no longer needs them. */
export async function deleteSavepoint(store: SnapshotStore, name: string, opts: LayoutOptions = {}): Promise<void> {
  checkSavepointName(store, name);
  await store.delete([savepointKey(name, opts)]);
}

// ---------------------------------------------------------------------------------------------
// Retention

export interface GcOptions extends LayoutOptions {
  retain?: number;
  /**
   * The checkpoint just written, which is always retained. Manifests with a newer epoch belong to
   * a timeline that recovery abandoned (it fell back past them, or restored a savepoint) and are
   * deleted: left in place, a later `latestCheckpoint` would resurrect them.
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

/** Names this layout writes (anything else under its prefix is left alone). */
const OBJECT_NAME = /(?:(?:kg\/\d+\/(?:base|delta)-|inflight\/)\d+-[0-9a-f]+|packs\/delta-\d+-[0-9a-f]+-\d+)$/;

/**
 * Apply retention: keep the newest `retain` complete checkpoints and every savepoint, delete the
 * other manifests and the objects only they referenced. Returns the deleted keys. Manifests go
 * first: a crash in between leaves orphan objects for the next sweep, never a manifest naming
 * deleted objects.
 */
export async function collectGarbage(store: SnapshotStore, opts: GcOptions = {}): Promise<string[]> {
  const logger = opts.logger ?? consoleLogger;
  const retain = opts.retain ?? 3;
  if (!Number.isInteger(retain) || retain < 1) throw new RangeError(`retain must be a positive integer, got ${retain}`);

  const known = opts.known;
  const read = async (epoch: number, key: string): Promise<CheckpointManifest> => known?.get(epoch) ?? readManifest(store, key);
  const retained: CheckpointManifest[] = [];
  const dropped: CheckpointManifest[] = [];
  const dropKeys: string[] = [];
  const current = opts.current;
  for (const epoch of await listManifestEpochs(store, opts)) {
    const key = manifestKey(epoch, opts);
    if (current !== undefined && epoch > current.epoch) {
      logger.warn(`retention: deleting checkpoint ${epoch} of an abandoned timeline (the current checkpoint ${current.epoch} does not descend from it)`, { object: key });
      dropKeys.push(key);
      try {
        dropped.push(await read(epoch, key));
      } catch (e) {
        if (!isDamage(e)) throw e;
      }
      continue;
    }
    if (current !== undefined && epoch === current.epoch) {
      retained.push(current); // just written: no need to read it back
      continue;
    }
    if (current !== undefined && retained.length === 0) {
      // Cannot happen unless the listing missed the manifest we just wrote (a store that lists
      // stale results): do not delete anything on such a view.
      logger.warn(`retention skipped: the listing of ${store.describe()} does not show checkpoint ${current.epoch} yet`);
      return [];
    }
    if (retained.length >= retain) {
      dropKeys.push(key);
      // Read what it references so those objects can go too (unreadable: the sweep finds them).
      try {
        dropped.push(await read(epoch, key));
      } catch (e) {
        if (!isDamage(e)) throw e;
      }
      continue;
    }
    try {
      retained.push(await read(epoch, key));
    } catch (e) {
      if (!isDamage(e)) throw e;
      // Not a complete checkpoint: it does not count towards `retain`, and it is garbage.
      logger.warn(`retention: deleting unusable manifest: ${e.message}`, { object: e.key, reason: e.reason });
      dropKeys.push(key);
    }
  }
  if (retained.length === 0) return []; // nothing verifiable: never delete in that state

  const keep = new Set<string>();
  for (const m of retained) for (const k of referencedKeys(m, opts)) keep.add(k);
  let savepointsKnown = true;
  for (const name of await listSavepoints(store, opts)) {
    try {
      for (const k of referencedKeys(await readManifest(store, savepointKey(name, opts)), opts)) keep.add(k);
    } catch (e) {
      if (!isDamage(e)) throw e;
      savepointsKnown = false;
      logger.warn(`retention: savepoint ${name} is unreadable, so no snapshot object is deleted until it is repaired or deleted: ${e.message}`, { object: e.key });
    }
  }

  const deleted: string[] = [];
  if (dropKeys.length > 0) {
    await store.delete(dropKeys);
    deleted.push(...dropKeys);
    if (known !== undefined) for (const m of dropped) known.delete(m.epoch);
  }
  if (!savepointsKnown) return deleted;

  const doomed = new Set<string>();
  for (const m of dropped) for (const k of referencedKeys(m, opts)) if (!keep.has(k)) doomed.add(k);
  if (opts.sweep === true) {
    // Orphans of attempts that never wrote a manifest, and of abandoned timelines. Safe because
    // there is one writer and it never runs retention while a checkpoint is being written.
    for (const dir of ['kg/', 'packs/', 'inflight/']) {
      for (const k of await store.list(join(opts.prefix, dir))) {
        if (OBJECT_NAME.test(k) && !keep.has(k)) doomed.add(k);
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
