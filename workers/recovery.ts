/**
 * Local recovery: bring a worker's LMDB environment back to checkpoint `epoch`.
 *
 * Every epoch's write also stored undo records (the previous value of each key it changed).
 * After a crash, epochs newer than the last complete checkpoint are undone, newest first, so the
 * cost follows the change since that checkpoint, not the size of the state. Messages recorded
 * by newer epochs are dropped. Runs before the runtime reads anything. The environment is then
 * stamped with the checkpoint's epoch (in the same transaction), so that the next start checks
 * it against what it now holds (state/env_check.ts).
 */
import { UNDO_DB, ckptKey, kgEpochBound, parseUndoKey } from '../state/state_keys.js';
import { readInflight, readManifest, restoreKeyGroups } from '../snapshot/checkpoint_layout.js';
import { openSnapshotStore, type SnapshotStoreConfig } from '../snapshot/store_config.js';
import { epochStampOp, type StateStore, type WriteOp } from '../state/state_store.js';
import { restoreWriteBatchOps } from '../shared/limits.js';

export interface RollbackResult {
  undone: number;
  epochs: number[];
}

export async function rollbackTo(store: StateStore, kgStart: number, kgEnd: number, epoch: number): Promise<RollbackResult> {
  const undo: { epoch: number; op: WriteOp; undoKey: Buffer; undoDb: 'undo0' | 'undo1' }[] = [];
  const drop: WriteOp[] = [];
  for (let kg = kgStart; kg < kgEnd; kg++) {
    const from = kgEpochBound(kg, epoch + 1);
    const to = kgEpochBound(kg + 1, 0);
    for (const undoDb of ['undo0', 'undo1'] as const) {
      for (const { key, value } of store.range(undoDb, from, to)) {
        const u = parseUndoKey(key);
        const old = value[0] === 1 ? Buffer.from(value.subarray(1)) : undefined;
        undo.push({ epoch: u.epoch, op: { db: u.db, key: u.key, value: old }, undoKey: Buffer.from(key), undoDb });
      }
    }
    for (const { key } of store.range('ckpt', from, to)) drop.push({ db: 'ckpt', key: Buffer.from(key), value: undefined });
  }
  // Newest epoch first; for a key changed in several epochs the oldest epoch's undo is applied
  // last (the write sort is stable), which restores the value before all of them.
  undo.sort((a, b) => b.epoch - a.epoch);
  const ops: WriteOp[] = [];
  for (const u of undo) {
    ops.push(u.op);
    ops.push({ db: u.undoDb, key: u.undoKey, value: undefined });
  }
  for (const d of drop) ops.push(d);
  ops.push(epochStampOp(epoch));
  await store.write(ops);
  return { undone: undo.length, epochs: [...new Set(undo.map((u) => u.epoch))] };
}

/**
 * Checkpoint `epoch` is complete: delete the messages recorded by earlier epochs. (Undo records
 * are not deleted one by one: their database is cleared when its parity comes round again.)
 */
export function pruneCommitted(store: StateStore, kgStart: number, kgEnd: number, epoch: number): Promise<unknown> {
  const ops: WriteOp[] = [];
  for (let kg = kgStart; kg < kgEnd; kg++) {
    for (const { key } of store.range('ckpt', kgEpochBound(kg, 0), kgEpochBound(kg, epoch)))
      ops.push({ db: 'ckpt', key: Buffer.from(key), value: undefined });
  }
  return ops.length > 0 ? store.write(ops) : Promise.resolve();
}

/**
 * Fill an empty environment with key groups [kgStart, kgEnd) of checkpoint `epoch` from the
 * snapshot store (checksums verified on the way), and its recorded messages.
 */
export async function restoreFromStore(
  store: StateStore,
  kgStart: number,
  kgEnd: number,
  config: SnapshotStoreConfig,
  epoch: number,
  key: string,
): Promise<number> {
  const snapshots = openSnapshotStore(config);
  const manifest = await readManifest(snapshots, key);
  let ops: WriteOp[] = [];
  let n = 0;
  const writeBatch = async (): Promise<void> => {
    const batch = ops;
    ops = [];
    if (batch.length > 0) await store.write(batch);
  };
  const pendingWrites: Promise<void>[] = [];
  await restoreKeyGroups(snapshots, manifest, kgStart, kgEnd, (key, value) => {
    const db = UNDO_DB[key[0]!]!;
    ops.push({ db, key: Buffer.from(key.subarray(1)), value: Buffer.from(value) });
    n++;
    if (ops.length >= restoreWriteBatchOps) pendingWrites.push(writeBatch());
  });
  const seq = new Map<number, number>();
  await readInflight(snapshots, manifest, kgStart, kgEnd, (kg, message) => {
    const s = seq.get(kg) ?? 0;
    seq.set(kg, s + 1);
    ops.push({ db: 'ckpt', key: ckptKey(kg, epoch, s), value: Buffer.from(message) });
  });
  await Promise.all(pendingWrites);
  await writeBatch();
  return n;
}
