/**
 * The LMDB key layout. Every key starts with its key group (u16, big-endian) so a range of key
 * groups can be scanned, snapshotted, migrated and restored on its own.
 *
 *   state    kg | fnType utf8 | 0x00 | id utf8                        -> state record
 *   timers   kg | fireAt u64be | uniq (12 bytes)                      -> timer record
 *   tokens   kg | senderType utf8 | 0x00 | senderId utf8 | 0x00 | token -> timer key
 *   ckpt     kg | epoch u32be | seq u32be                              -> message recorded in a checkpoint
 *   undo     kg | epoch u32be | db u8 | key                            -> value before that epoch
 *   meta     'epoch'                                                   -> epoch stamp u32be (the one key
 *                                                                         without a key group)
 *
 * Type names never contain NUL (validated), and the id is the last component of a state key, so
 * keys are unambiguous. This layout is on disk: existing state directories are read by it, so it
 * never changes. Writers assert their inputs fit it; parsers raise a typed error
 * (STATEFN_STATE_INVALID) for a key that does not, since that means a damaged environment.
 */
import { assert, ErrorCode, StatefnError } from '../shared/errors.js';

const ZERO = Buffer.from([0]);
/** Largest value of a u32 field (epochs and sequence numbers in keys). */
const U32_MAX = 0xffffffff;
/** Bytes of the key group prefix of every key. */
const KG_BYTES = 2;
/** Bytes of an undo key before the database's own key: kg | epoch u32 | db u8. */
const UNDO_HEADER_BYTES = 7;

function asBuffer(key: Uint8Array): Buffer {
  return Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
}

/** The typed error for a key read from LMDB that does not have the layout above. */
function corruptKey(what: string, key: Uint8Array, why: string): StatefnError {
  return new StatefnError(
    ErrorCode.STATE_INVALID,
    `corrupt ${what} key ${asBuffer(key).toString('hex').slice(0, 64)} in the state directory (${why}); restore the state ` +
      `from a checkpoint`,
  );
}

export function stateKey(kg: number, fnType: string, id: string): Buffer {
  assert(!fnType.includes('\0'), 'a function type in a state key contains NUL'); // constant messages: a hot path
  const t = Buffer.byteLength(fnType);
  const i = Buffer.byteLength(id);
  const b = Buffer.allocUnsafe(2 + t + 1 + i);
  b.writeUInt16BE(kg, 0);
  b.write(fnType, 2, 'utf8');
  b[2 + t] = 0;
  b.write(id, 3 + t, 'utf8');
  return b;
}

export function parseStateKey(key: Uint8Array): { kg: number; fnType: string; id: string } {
  const b = asBuffer(key);
  if (b.length < KG_BYTES + 1) throw corruptKey('state', key, `${b.length} bytes`);
  const kg = b.readUInt16BE(0);
  const z = b.indexOf(0, KG_BYTES);
  if (z < 0) throw corruptKey('state', key, 'no NUL after the function type');
  return { kg, fnType: b.toString('utf8', 2, z), id: b.toString('utf8', z + 1) };
}

export function timerKey(kg: number, fireAt: number, uniq: Buffer): Buffer {
  const b = Buffer.allocUnsafe(2 + 8 + uniq.length);
  b.writeUInt16BE(kg, 0);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(fireAt))), 2);
  uniq.copy(b, 10);
  return b;
}

export function timerKeyFireAt(key: Uint8Array): number {
  const b = asBuffer(key);
  if (b.length < KG_BYTES + 8) throw corruptKey('timer', key, `${b.length} bytes`);
  return Number(b.readBigUInt64BE(2));
}

export function tokenKey(kg: number, senderType: string, senderId: string, token: string): Buffer {
  return Buffer.concat([kgPrefix(kg), Buffer.from(senderType), ZERO, Buffer.from(senderId), ZERO, Buffer.from(token)]);
}

export function kgPrefix(kg: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(kg, 0);
  return b;
}

/** The first key of key group `kg` and the first key past it (for range scans). */
export function kgBounds(kg: number): { start: Buffer; end: Buffer } {
  return { start: kgPrefix(kg), end: kgPrefix(kg + 1) };
}

export function kgOfKey(key: Uint8Array): number {
  assert(key.length >= KG_BYTES, 'a key shorter than its key group prefix');
  return (key[0]! << 8) | key[1]!;
}

/** Database index in undo keys. */
export const UNDO_DB = ['state', 'timers', 'tokens'] as const;
export type UndoDb = (typeof UNDO_DB)[number];

/**
 * Undo record of epoch `epoch` for `key` of database `db`: kg | epoch u32 BE | db u8 | key. The
 * value is 0x00 (the key was absent before the epoch) or 0x01 followed by its previous value.
 * Key-group-prefixed, so undo records move with their key group when workers are rescaled.
 */
export function undoKey(kg: number, epoch: number, db: UndoDb, key: Buffer): Buffer {
  assert(epoch >= 0 && epoch <= U32_MAX, 'undo record epoch outside u32');
  const b = Buffer.allocUnsafe(UNDO_HEADER_BYTES + key.length);
  b.writeUInt16BE(kg, 0);
  b.writeUInt32BE(epoch >>> 0, 2);
  b[6] = UNDO_DB.indexOf(db);
  key.copy(b, UNDO_HEADER_BYTES);
  return b;
}

export function parseUndoKey(k: Uint8Array): { kg: number; epoch: number; db: UndoDb; key: Buffer } {
  const b = asBuffer(k);
  if (b.length < UNDO_HEADER_BYTES) throw corruptKey('undo', k, `${b.length} bytes`);
  const db = UNDO_DB[b[6]!];
  if (db === undefined) throw corruptKey('undo', k, `database index ${b[6]!}`);
  return { kg: b.readUInt16BE(0), epoch: b.readUInt32BE(2), db, key: Buffer.from(b.subarray(UNDO_HEADER_BYTES)) };
}

/** A message recorded in checkpoint `epoch`, stored under its target's key group: kg | epoch | seq. */
export function ckptKey(kg: number, epoch: number, seq: number): Buffer {
  assert(epoch >= 0 && epoch <= U32_MAX && seq >= 0 && seq <= U32_MAX, 'checkpoint message epoch or sequence outside u32');
  const b = Buffer.allocUnsafe(10);
  b.writeUInt16BE(kg, 0);
  b.writeUInt32BE(epoch >>> 0, 2);
  b.writeUInt32BE(seq >>> 0, 6);
  return b;
}

/** The first key of key group `kg` at `epoch` in the undo and ckpt databases. */
export function kgEpochBound(kg: number, epoch: number): Buffer {
  const b = Buffer.allocUnsafe(6);
  b.writeUInt16BE(kg, 0);
  // `epoch + 1` bounds a scan of the last epoch, so clamp rather than assert.
  b.writeUInt32BE(Math.min(epoch, U32_MAX) >>> 0, 2);
  return b;
}

/**
 * The epoch stamp, in the `meta` database (not key-group-prefixed: it describes the environment
 * as a whole): the epoch whose checkpoint write, or whose recovery, the environment last holds.
 * Written in the same transaction as the worker's part of each checkpoint, so an environment that
 * says epoch n holds all of epoch n and nothing of epoch n+1. Value: the epoch as u32 BE.
 */
export const EPOCH_STAMP_KEY = Buffer.from('epoch');
const EPOCH_STAMP_BYTES = 4;

export function epochStampValue(epoch: number): Buffer {
  assert(Number.isInteger(epoch) && epoch >= 0 && epoch <= U32_MAX, () => `epoch stamp ${epoch} outside u32`);
  const b = Buffer.allocUnsafe(EPOCH_STAMP_BYTES);
  b.writeUInt32BE(epoch, 0);
  return b;
}

export function parseEpochStamp(value: Uint8Array): number {
  const b = asBuffer(value);
  if (b.length !== EPOCH_STAMP_BYTES) {
    throw new StatefnError(
      ErrorCode.STATE_INVALID,
      `corrupt epoch stamp ${b.toString('hex').slice(0, 64)} in the state directory (${b.length} bytes, expected ` +
        `${EPOCH_STAMP_BYTES}); restore the state from a checkpoint`,
    );
  }
  return b.readUInt32BE(0);
}
