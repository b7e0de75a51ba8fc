/**
 * A worker's LMDB environment: the only place its durable state lives. One environment per
 * worker (the worker is its only writer), named databases for state, timers, cancellation
 * tokens, the messages each checkpoint recorded (`ckpt`: in flight across its barriers, or not
 * yet handled at a clean stop), undo records (`undo0`/`undo1`) and the epoch stamp (`meta`).
 * Opened with noSync, so a commit costs no fsync: the environment is synced explicitly (`sync`)
 * once per checkpoint, after the worker's part of it and before the worker acknowledges it, and
 * when it is closed. So the checkpoint record never names an epoch whose LMDB data is not on disk.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { existsSync } from 'node:fs';
import { stateCopyBatchOpsMax } from '../shared/limits.js';
import { EPOCH_STAMP_KEY, epochStampValue, kgBounds, kgOfKey, parseEpochStamp } from './state_keys.js';

export type Bytes = Buffer | Uint8Array;

/** One write to queue on an environment. */
export interface WriteOp {
  db: DbName;
  key: Buffer;
  /** undefined = delete */
  value: Bytes | undefined;
}

/**
 * Undo records alternate between two databases by epoch parity: epoch n's go to `undo<n % 2>`,
 * which is cleared first (it holds epoch n-2's, whose checkpoint is complete since epoch n can
 * only start after n-1 completed). Clearing a database frees its pages wholesale, instead of a
 * B-tree delete per undo record.
 */
export const DB_NAMES = ['state', 'timers', 'tokens', 'ckpt', 'undo0', 'undo1'] as const;
/**
 * The database of the epoch stamp. Not in DB_NAMES: those hold key-group-prefixed keys only
 * (scanned, migrated and restored by key group); the stamp belongs to the environment.
 */
export const META_DB = 'meta';
export type DbName = (typeof DB_NAMES)[number] | typeof META_DB;

export function undoDbOf(epoch: number): 'undo0' | 'undo1' {
  return epoch % 2 === 0 ? 'undo0' : 'undo1';
}

/**
 * How many epochs past a checkpoint an environment can be rolled back: epoch n's undo records
 * survive until epoch n+2 clears their database, so an environment stamped s holds the undo
 * records of s and s-1 and can return to any checkpoint r with s - r <= UNDO_EPOCHS.
 */
export const UNDO_EPOCHS = 2;

/** The write that stamps an environment with `epoch` (queue it with the epoch's other writes). */
export function epochStampOp(epoch: number): WriteOp {
  return { db: META_DB, key: EPOCH_STAMP_KEY, value: epochStampValue(epoch) };
}

/** Options every opening of an environment shares (the upload thread opens them too). */
const ENV_OPTIONS = { noSync: true, compression: false, maxDbs: 8 } as const;

/**
 * Sort ops by database, then key bytes, in place. Each op gets one sort key, `db \0 latin1(key)`:
 * latin1 maps every byte to the code unit of the same value, so comparing these strings in JS
 * orders keys exactly as `Buffer.compare` does, and database names (none a prefix of another)
 * group first. About twice as fast as a comparator calling the native `Buffer.compare` n log n
 * times (100,000 state keys: ~60 ms instead of ~140 ms on the reference machine), and it runs
 * on the worker's thread at every checkpoint.
 */
function sortOps(ops: WriteOp[]): void {
  const keyed = new Array<{ k: string; op: WriteOp }>(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    keyed[i] = { k: `${op.db}\0${op.key.toString('latin1')}`, op };
  }
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  for (let i = 0; i < keyed.length; i++) ops[i] = keyed[i]!.op;
}

/** A worker's LMDB environment and its named databases. */
export class StateStore {
  private readonly env: RootDatabase;
  private readonly dbs: Record<DbName, Database<Buffer, Buffer>>;

  constructor(
    readonly dir: string,
    private readonly readOnly = false,
  ) {
    this.env = open({ path: dir, ...ENV_OPTIONS, readOnly });
    const dbs = {} as Record<DbName, Database<Buffer, Buffer>>;
    for (const name of [...DB_NAMES, META_DB] as const) {
      dbs[name] = this.env.openDB({ name, keyEncoding: 'binary', encoding: 'binary' }) as unknown as Database<Buffer, Buffer>;
    }
    this.dbs = dbs;
  }

  static exists(dir: string): boolean {
    return existsSync(dir);
  }

  /**
   * The epoch stamp of the environment in `dir`, read without writing anything (undefined: never
   * stamped, e.g. written by a statefn before stamps). Throws when LMDB cannot open it. The
   * caller checks the data file first (env_check.ts): LMDB maps a truncated file and dies of
   * SIGBUS on the first page past its end.
   */
  static async readEpochStamp(dir: string): Promise<number | undefined> {
    const env = open({ path: dir, ...ENV_OPTIONS, readOnly: true });
    try {
      // Read-only, a database that was never created is not there (undefined), not created.
      const meta = env.openDB({ name: META_DB, keyEncoding: 'binary', encoding: 'binary' }) as Database<Buffer, Buffer> | undefined;
      const v = meta?.getBinary(EPOCH_STAMP_KEY);
      return v === undefined || v === null ? undefined : parseEpochStamp(v);
    } finally {
      await env.close();
    }
  }

  /** This environment's epoch stamp (undefined: never stamped). */
  epochStamp(): number | undefined {
    // Opened read-only, an environment never stamped has no meta database at all.
    const v = (this.dbs.meta as Database<Buffer, Buffer> | undefined)?.getBinary(EPOCH_STAMP_KEY);
    return v === undefined || v === null ? undefined : parseEpochStamp(v);
  }

  /** A copy of the state record at `key`, or undefined. */
  getState(key: Buffer): Buffer | undefined {
    return this.dbs.state.getBinary(key) ?? undefined;
  }

  get(db: DbName, key: Buffer): Buffer | undefined {
    return this.dbs[db].getBinary(key) ?? undefined;
  }

  /**
   * Queue writes on lmdb-js's write thread, in order (sorted by key first: LMDB's B-tree is much
   * faster with sorted keys). The calling thread only encodes the operations (well under a
   * microsecond each); the B-tree work happens off it. Writes queued in one event-loop turn
   * commit in one transaction. The promise resolves when the last of them has committed.
   */
  write(ops: WriteOp[]): Promise<unknown> {
    sortOps(ops);
    const dbs = this.dbs;
    let last: Promise<unknown> = Promise.resolve(true);
    for (const op of ops) {
      last = op.value === undefined ? dbs[op.db].remove(op.key) : dbs[op.db].put(op.key, op.value as Buffer);
    }
    return last;
  }

  /** Remove every entry of `db`, queued in order with the writes around it. */
  clear(db: DbName): Promise<void> {
    return this.dbs[db].clearAsync();
  }

  /** Entries of `db` in key groups [kgStart, kgEnd), optionally bounded within each key group. */
  *scan(db: DbName, kgStart: number, kgEnd: number): Generator<{ key: Buffer; value: Buffer }> {
    if (kgStart >= kgEnd) return;
    const start = kgBounds(kgStart).start;
    const end = kgBounds(kgEnd - 1).end;
    for (const { key, value } of this.dbs[db].getRange({ start, end })) yield { key, value };
  }

  /** Entries of `db` with start <= key < end. */
  *range(db: DbName, start: Buffer, end: Buffer): Generator<{ key: Buffer; value: Buffer }> {
    for (const { key, value } of this.dbs[db].getRange({ start, end })) yield { key, value };
  }

  /** Count the entries per database (for tests and stats). */
  count(db: DbName): number {
    return this.dbs[db].getCount();
  }

  /**
   * Copy every entry of key groups [kgStart, kgEnd) from another environment (rescaling: the
   * other environment belonged to a previous worker layout).
   */
  async copyFrom(other: StateStore, kgStart: number, kgEnd: number): Promise<number> {
    let n = 0;
    let ops: WriteOp[] = [];
    for (const db of DB_NAMES) {
      for (const { key, value } of other.scan(db, kgStart, kgEnd)) {
        const kg = kgOfKey(key);
        if (kg < kgStart || kg >= kgEnd) continue;
        ops.push({ db, key: Buffer.from(key), value: Buffer.from(value) });
        n++;
        // Batches bound the memory a large copy holds before its writes are queued.
        if (ops.length >= stateCopyBatchOpsMax) {
          await this.write(ops);
          ops = [];
        }
      }
    }
    if (ops.length > 0) await this.write(ops);
    return n;
  }

  /**
   * Wait until every write queued so far has committed, then flush the environment to disk
   * (fdatasync of data.mdb, on a libuv thread: the worker's loop goes on meanwhile). Under noSync
   * `flushed` only means committed, so this is the one place durability comes from.
   */
  async sync(): Promise<void> {
    await this.env.flushed;
    // lmdb-js's RootDatabase.sync(callback) runs mdb_env_sync(env, force = 1), which syncs even
    // under noSync; its typings omit it.
    const env = this.env as unknown as { sync(done: (e?: Error) => void): void };
    await new Promise<void>((resolve, reject) => env.sync((e) => (e ? reject(e) : resolve())));
  }

  /** Wait for all writes, sync to disk (unless opened read-only), and close. */
  async close(): Promise<void> {
    if (!this.readOnly) await this.sync();
    await this.env.close();
  }
}
