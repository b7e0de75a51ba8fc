/**
 * Is a worker's LMDB environment the one the last complete checkpoint claims? Checked at start,
 * before any thread opens the environment for writing, against the recovered checkpoint R:
 *
 *   the directory or data.mdb is missing, or data.mdb is 0 bytes    (LMDB would create an empty one)
 *   data.mdb is not an LMDB file (meta pages)                       (LMDB would refuse it)
 *   data.mdb is shorter than its newest meta page says              (LMDB would map it and die of
 *                                                                     SIGBUS at the first page past
 *                                                                     the end: no error, no message)
 *   LMDB cannot open it or read its epoch stamp
 *   its epoch stamp is older than R                                 (an old copy: it lacks R's writes)
 *   its epoch stamp is newer than R + UNDO_EPOCHS                   (its undo records cannot take it
 *                                                                     back to R)
 *
 * Only the last two open LMDB, and only after the file checks passed, so a damaged file never
 * reaches the memory map. What to do about a damaged environment is decided by the caller
 * (env_repair.ts).
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { StateStore, UNDO_EPOCHS } from './state_store.js';

/** Why an environment cannot be used as checkpoint R. */
export type EnvDamage = 'missing' | 'no-data-file' | 'empty' | 'not-lmdb' | 'truncated' | 'unreadable' | 'stale' | 'too-new';

export type EnvCheck =
  /** `stamp` undefined: never stamped (written by a statefn before epoch stamps); it cannot be verified. */
  { ok: true; stamp: number | undefined } | { ok: false; damage: EnvDamage; detail: string };

/**
 * LMDB's meta page as liblmdb lays it out (dependencies/lmdb/libraries/liblmdb/mdb.c in the lmdb
 * package, a 64-bit build; the file is in the machine's byte order, little-endian here):
 *
 *   offset  MDB_page_header (24 bytes)        offset  MDB_meta (after the header)
 *        0  mp_pgno        u64                    24  mm_magic    u32  0xBEEFC0DE
 *        8  mp_txnid       u64                    28  mm_version  u32  (low 16 bits: 2)
 *       16  mp_pad         u16                    32  mm_address  u64
 *       18  mp_flags       u16  P_META = 0x08     40  mm_mapsize  u64
 *       20  mp_lower/upper u16 x 2                48  mm_dbs[2]   2 x MDB_db (48 bytes each);
 *                                                      mm_psize is mm_dbs[0].md_pad (u32 at 48)
 *                                                144  mm_last_pg  u64  last page in use
 *                                                152  mm_txnid    u64  transaction that wrote it
 *
 * Meta page 0 is at offset 0, meta page 1 at offset psize; LMDB uses the one with the higher txnid.
 */
const PAGE_FLAGS_AT = 18;
const P_META = 0x08;
const META_MAGIC_AT = 24;
const META_VERSION_AT = 28;
const META_PSIZE_AT = 48;
const META_LAST_PG_AT = 144;
const META_TXNID_AT = 152;
/** Bytes of a meta page this check reads. */
const META_BYTES = 160;
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 2;
/** LMDB's page sizes: powers of two from 512 bytes (the smallest it supports) to 64 KiB. */
const PSIZE_MIN = 512;
const PSIZE_MAX = 65536;

/** What the newest meta page of a data file says. */
export interface LmdbMeta {
  pageSize: number;
  lastPage: number;
  txnid: number;
}

/** The newest meta page of `file` (`size` bytes), or why it has none. */
export function readLmdbMeta(file: string, size: number): LmdbMeta | { damage: EnvDamage; detail: string } {
  if (endianness() !== 'LE') return { damage: 'unreadable', detail: 'the meta page check supports little-endian machines only' };
  if (size < META_BYTES) return { damage: 'truncated', detail: `data.mdb is ${size} bytes, shorter than LMDB's first meta page` };
  const fd = openSync(file, 'r');
  try {
    const page = (at: number): Buffer => {
      const b = Buffer.alloc(META_BYTES);
      readSync(fd, b, 0, META_BYTES, at);
      return b;
    };
    const m0 = page(0);
    const bad0 = badMeta(m0);
    if (bad0 !== undefined) return { damage: 'not-lmdb', detail: `data.mdb is not an LMDB file (meta page 0: ${bad0})` };
    const pageSize = m0.readUInt32LE(META_PSIZE_AT);
    if (pageSize < PSIZE_MIN || pageSize > PSIZE_MAX || (pageSize & (pageSize - 1)) !== 0) {
      return { damage: 'not-lmdb', detail: `data.mdb is not an LMDB file (meta page 0 gives page size ${pageSize})` };
    }
    if (size < pageSize + META_BYTES) {
      return { damage: 'truncated', detail: `data.mdb is ${size} bytes, shorter than LMDB's two meta pages of ${pageSize} bytes` };
    }
    const m1 = page(pageSize);
    const bad1 = badMeta(m1);
    if (bad1 !== undefined) return { damage: 'not-lmdb', detail: `data.mdb is not an LMDB file (meta page 1: ${bad1})` };
    const newest = m1.readBigUInt64LE(META_TXNID_AT) > m0.readBigUInt64LE(META_TXNID_AT) ? m1 : m0;
    return {
      pageSize,
      lastPage: Number(newest.readBigUInt64LE(META_LAST_PG_AT)),
      txnid: Number(newest.readBigUInt64LE(META_TXNID_AT)),
    };
  } finally {
    closeSync(fd);
  }
}

function badMeta(b: Buffer): string | undefined {
  if ((b.readUInt16LE(PAGE_FLAGS_AT) & P_META) === 0) return 'not a meta page';
  if (b.readUInt32LE(META_MAGIC_AT) !== MDB_MAGIC) return `magic 0x${b.readUInt32LE(META_MAGIC_AT).toString(16)}`;
  if ((b.readUInt32LE(META_VERSION_AT) & 0xffff) !== MDB_DATA_VERSION) return `data version ${b.readUInt32LE(META_VERSION_AT) & 0xffff}`;
  return undefined;
}

/**
 * The checks that need no LMDB: the directory, data.mdb, its meta pages and its length. Undefined
 * when LMDB can safely open the environment.
 */
export function checkEnvFiles(dir: string): { damage: EnvDamage; detail: string } | undefined {
  if (!existsSync(dir)) return { damage: 'missing', detail: 'the directory is missing' };
  if (!statSync(dir).isDirectory()) return { damage: 'unreadable', detail: 'it is not a directory' };
  const file = join(dir, 'data.mdb');
  if (!existsSync(file)) return { damage: 'no-data-file', detail: 'data.mdb is missing' };
  const size = statSync(file).size;
  if (size === 0) return { damage: 'empty', detail: 'data.mdb is 0 bytes' };
  const meta = readLmdbMeta(file, size);
  if ('damage' in meta) return meta;
  // The file holds every page up to the last one in use (LMDB writes each page it allocates at
  // commit); shorter means it was truncated, and LMDB would fault on the missing pages.
  const needed = (meta.lastPage + 1) * meta.pageSize;
  if (size < needed) {
    return {
      damage: 'truncated',
      detail: `data.mdb is truncated: ${size} bytes, but its meta page (transaction ${meta.txnid}) uses ${meta.lastPage + 1} pages of ${meta.pageSize} bytes (${needed} bytes)`,
    };
  }
  return undefined;
}

/** Check the environment in `dir` against the recovered checkpoint `recoverEpoch` (see the file comment). */
export async function checkEnv(dir: string, recoverEpoch: number): Promise<EnvCheck> {
  const files = checkEnvFiles(dir);
  if (files !== undefined) return { ok: false, ...files };
  let stamp: number | undefined;
  try {
    stamp = await StateStore.readEpochStamp(dir);
  } catch (e) {
    return { ok: false, damage: 'unreadable', detail: `LMDB cannot read it: ${(e as Error).message}` };
  }
  if (stamp === undefined) return { ok: true, stamp };
  if (stamp < recoverEpoch) {
    return {
      ok: false,
      damage: 'stale',
      detail: `its epoch stamp ${stamp} is older than the last complete checkpoint ${recoverEpoch} (an old copy)`,
    };
  }
  if (stamp > recoverEpoch + UNDO_EPOCHS) {
    return {
      ok: false,
      damage: 'too-new',
      detail:
        `its epoch stamp ${stamp} is more than ${UNDO_EPOCHS} epochs after the last complete checkpoint ` +
        `${recoverEpoch}: its undo records cannot take it back`,
    };
  }
  return { ok: true, stamp };
}
