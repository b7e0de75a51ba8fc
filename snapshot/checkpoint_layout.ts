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
 *
 * This module is the layout's public face; the parts live in files named for what they hold:
 * checkpoint_keys.ts (object names), manifest.ts (the manifest format), checkpoint_objects.ts
 * (object codecs), pack.ts (packs), fold.ts (folding chains), checkpoint_writer.ts (writing a
 * checkpoint), checkpoint_restore.ts (finding and restoring one), retention.ts (retention and
 * garbage collection) and savepoints.ts.
 */
export { manifestKey, savepointKey, type LayoutOptions } from './checkpoint_keys.js';
export { chainKeys, readManifest, referencedKeys, type CheckpointManifest, type PackIndex } from './manifest.js';
export { PackCache, type KeyGroupChanges } from './pack.js';
export {
  writeCheckpoint,
  type CheckpointInput,
  type CheckpointResult,
  type WriteOptions,
  type WrittenObject,
} from './checkpoint_writer.js';
export { latestCheckpoint, readInflight, restoreKeyGroups, type LatestOptions } from './checkpoint_restore.js';
export { deleteSavepoint, listSavepoints, readSavepoint, writeSavepoint } from './savepoints.js';
export { collectGarbage, type GcOptions } from './retention.js';
