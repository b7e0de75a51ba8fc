/**
 * Writing one checkpoint: the changed key groups' deltas (packed, or one object per key group),
 * the compacted bases, the in-flight messages, and last the manifest, its commit point; then
 * retention. One writer at a time: the checkpoint coordinator serialises writeCheckpoint and
 * collectGarbage.
 */
import { randomBytes } from 'node:crypto';
import { assert } from '../shared/errors.js';
import {
  compactAfterDeltas,
  compactKeyGroupsPerCheckpointMax,
  packBytesMax as packBytesMaxDefault,
  snapshotUploadsConcurrentMax,
  sweepEveryCheckpoints,
} from '../shared/limits.js';
import { chainObjectRel, inflightRel, layoutLogger, manifestKey, packRel, withPrefix, type LayoutOptions } from './checkpoint_keys.js';
import { encodeObject, type ChainObject, type InflightObject } from './checkpoint_objects.js';
import { latestCheckpoint } from './checkpoint_restore.js';
import { applyChanges, foldKeyGroup, keyBytes, sortedEntries, type KeyGroupState } from './fold.js';
import { KEY_GROUPS_MAX, type CheckpointManifest, type PackIndex } from './manifest.js';
import { mapLimit } from './map_limit.js';
import { buildPack, PackCache, planPacks, type KeyGroupChanges } from './pack.js';
import { collectGarbage } from './retention.js';
import type { SnapshotStore } from './snapshot_store.js';

/** Bytes of randomness in a write attempt's tag (8 hex digits in object names). */
const TAG_BYTES = 4;

/** What one checkpoint writes. */
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

/** How to write a checkpoint (defaults are in shared/limits.ts). */
export interface WriteOptions extends LayoutOptions {
  /** Fold a chain into a new base when it has more deltas than this. Default `compactAfterDeltas`. */
  compactAfterDeltas?: number;
  /** Bound on compactions per checkpoint. Default `compactKeyGroupsPerCheckpointMax`. */
  compactKeyGroupsPerCheckpointMax?: number;
  /** Complete checkpoints to keep. Default `checkpointsRetained`. */
  retain?: number;
  /** Run an orphan sweep when epoch % this === 0 (0 = never). Default `sweepEveryCheckpoints`. */
  sweepEveryCheckpoints?: number;
  /** Parallel uploads. Default `snapshotUploadsConcurrentMax`. */
  uploadConcurrency?: number;
  /**
   * Pack the deltas of a checkpoint into objects of about this many bytes; 0 = one object per key
   * group. Default `packBytesMax` (4 MiB).
   */
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

/** One object a checkpoint wrote. */
export interface WrittenObject {
  key: string;
  bytes: number;
}

/** What writing a checkpoint did. */
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

/** One object to write: a key group's own object (a delta or a base), or a pack of deltas. */
type Job = { kg: number; base: boolean } | { pack: number; kgs: number[] };

/** Which key groups to compact: chains that would exceed the bound, longest first, bounded. */
export function chooseCompactions(
  prevChains: readonly number[][],
  changed: ReadonlySet<number> | ReadonlyMap<number, unknown>,
  after: number,
  max: number,
): Set<number> {
  const candidates: number[] = [];
  for (let kg = 0; kg < prevChains.length; kg++) {
    const len = prevChains[kg]!.length + (changed.has(kg) ? 1 : 0);
    if (len - 1 > after) candidates.push(kg);
  }
  candidates.sort((a, b) => prevChains[b]!.length - prevChains[a]!.length || a - b);
  return new Set(candidates.slice(0, max));
}

function checkInput(input: CheckpointInput): void {
  const { epoch, keyGroups } = input;
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`checkpoint epoch must be a non-negative integer, got ${epoch}`);
  if (!Number.isInteger(keyGroups) || keyGroups < 1 || keyGroups > KEY_GROUPS_MAX)
    throw new RangeError(`keyGroups must be in [1, ${KEY_GROUPS_MAX}], got ${keyGroups}`);
  for (const kg of [...input.parts.keys(), ...input.inflight.keys()]) {
    if (!Number.isInteger(kg) || kg < 0 || kg >= keyGroups) throw new RangeError(`key group ${kg} outside [0, ${keyGroups})`);
  }
}

function checkPrevious(previous: CheckpointManifest, epoch: number, keyGroups: number): void {
  if (previous.epoch >= epoch) throw new RangeError(`checkpoint ${epoch} must come after the one it builds on (${previous.epoch})`);
  if (previous.keyGroups !== keyGroups) {
    throw new RangeError(
      `checkpoint ${epoch} has ${keyGroups} key groups but checkpoint ${previous.epoch} has ${previous.keyGroups}: the ` +
        `number of key groups is fixed for the life of an application's state`,
    );
  }
}

/** Write the in-flight messages of `epoch`, if any; returns the object's relative key, or null. */
async function writeInflight(
  store: SnapshotStore,
  input: CheckpointInput,
  tag: string,
  opts: LayoutOptions,
  written: WrittenObject[],
): Promise<string | null> {
  if (![...input.inflight.values()].some((msgs) => msgs.length > 0)) return null;
  const rel = inflightRel(input.epoch, tag);
  const g: [number, Uint8Array[]][] = [...input.inflight.entries()].filter(([, m]) => m.length > 0).sort((a, b) => a[0] - b[0]);
  const body = encodeObject({ f: 1, e: input.epoch, g } satisfies InflightObject);
  const key = withPrefix(opts.prefix, rel);
  await store.put(key, body);
  written.push({ key, bytes: body.byteLength });
  return rel;
}

/**
 * Write checkpoint `input.epoch`: one object per changed key group (a delta, or a new base when
 * the key group is empty or compacted), the in-flight messages, then the manifest. Resolves once
 * the manifest is durable; then applies retention (whose failure is logged and returned, not
 * thrown, since the checkpoint is complete by then).
 */
export async function writeCheckpoint(store: SnapshotStore, input: CheckpointInput, opts: WriteOptions = {}): Promise<CheckpointResult> {
  const logger = layoutLogger(opts);
  const concurrency = opts.uploadConcurrency ?? snapshotUploadsConcurrentMax;
  checkInput(input);
  const { epoch, keyGroups } = input;

  const previous =
    input.previous === undefined ? await latestCheckpoint(store, { ...opts, verify: 'manifest', beforeEpoch: epoch }) : input.previous;
  if (previous !== null) checkPrevious(previous, epoch, keyGroups);
  const prevChains = previous?.chains ?? Array.from({ length: keyGroups }, (): number[] => []);
  const tag = randomBytes(TAG_BYTES).toString('hex');
  const chains = prevChains.map((c) => [...c]);

  const compact = chooseCompactions(
    prevChains,
    input.parts,
    opts.compactAfterDeltas ?? compactAfterDeltas,
    opts.compactKeyGroupsPerCheckpointMax ?? compactKeyGroupsPerCheckpointMax,
  );
  const packBytesMax = opts.packBytesMax ?? packBytesMaxDefault;
  const packCache = opts.packCache ?? new PackCache();
  const jobs: Job[] = [];
  const packed: number[] = [];
  for (const kg of input.parts.keys()) {
    if (compact.has(kg)) continue;
    if (packBytesMax > 0) packed.push(kg);
    else jobs.push({ kg, base: prevChains[kg]!.length === 0 });
  }
  for (const kg of compact) jobs.push({ kg, base: true });
  jobs.sort((a, b) => ('kg' in a ? a.kg : 0) - ('kg' in b ? b.kg : 0));
  // Packs: sorted runs of key groups of about packBytesMax bytes each, written after the key
  // groups' own objects.
  const plan = planPacks(packed, input.parts, [...compact], packBytesMax);
  if (plan !== undefined) plan.runs.forEach((kgs, pack) => jobs.push({ pack, kgs }));

  const written = await mapLimit(jobs, concurrency, async (job): Promise<WrittenObject> => {
    if ('pack' in job) {
      const key = withPrefix(opts.prefix, packRel(epoch, tag, job.pack));
      const pack = buildPack(epoch, job.kgs, input.parts);
      const body = encodeObject(pack);
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
      const state: KeyGroupState =
        previous !== null && prevChains[kg]!.length > 0
          ? await foldKeyGroup(store, previous, kg, opts, packCache)
          : new Map<string, Uint8Array>();
      if (part !== undefined) applyChanges(state, part.puts, part.deletes);
      const p: Uint8Array[] = [];
      for (const [k, v] of sortedEntries(state)) p.push(keyBytes(k), v);
      obj = { f: 1, kg, e: epoch, p, d: [] };
    } else {
      assert(part !== undefined, `delta job without changes for key group ${kg}`);
      const p: Uint8Array[] = [];
      for (const [k, v] of part.puts) p.push(k, v);
      obj = { f: 1, kg, e: epoch, p, d: part.deletes };
    }
    const key = withPrefix(opts.prefix, chainObjectRel(kg, epoch, tag, base));
    const body = encodeObject(obj);
    await store.put(key, body);
    chains[kg] = base ? [epoch] : [...prevChains[kg]!, epoch];
    return { key, bytes: body.byteLength };
  });

  const inflight = await writeInflight(store, input, tag, opts, written);
  const manifest = buildManifest(epoch, tag, keyGroups, chains, previous, plan?.index, inflight, input.meta);
  const mKey = manifestKey(epoch, opts);
  const mBody = encodeObject(manifest);
  // The commit point: the checkpoint is complete once this put resolves.
  await store.put(mKey, mBody);
  written.push({ key: mKey, bytes: mBody.byteLength });

  const result: CheckpointResult = { manifest, written, compacted: [...compact].sort((a, b) => a - b), deleted: [] };
  if (opts.retention === false) return result;
  try {
    const sweepEvery = opts.sweepEveryCheckpoints ?? sweepEveryCheckpoints;
    result.deleted = await collectGarbage(store, {
      ...opts,
      current: manifest,
      sweep: opts.sweep ?? (sweepEvery > 0 && epoch % sweepEvery === 0),
    });
  } catch (e) {
    result.gcError = e as Error;
    logger.warn(`snapshot retention after checkpoint ${epoch} failed; it runs again after the next checkpoint`, {
      store: store.describe(),
      error: (e as Error).message,
    });
  }
  return result;
}

/** The manifest of checkpoint `epoch`: its chains, the tag and pack index of every epoch they reference. */
function buildManifest(
  epoch: number,
  tag: string,
  keyGroups: number,
  chains: number[][],
  previous: CheckpointManifest | null,
  packIndex: PackIndex | undefined,
  inflight: string | null,
  meta: Record<string, unknown>,
): CheckpointManifest {
  assert(chains.length === keyGroups, () => `checkpoint ${epoch} has ${chains.length} chains for ${keyGroups} key groups`);
  const tags: Record<string, string> = {};
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
  return {
    format: 1,
    epoch,
    tag,
    keyGroups,
    chains,
    tags,
    inflight,
    meta,
    ...(Object.keys(packs).length > 0 ? { packs } : {}),
  };
}
