/**
 * The snapshot store: where checkpoints and savepoints live (a local directory or S3). A store is
 * a flat namespace of immutable-by-convention objects addressed by `/`-separated keys.
 *
 * Integrity: every object is sealed with a small header carrying the SHA-256 of its body, and
 * every `get` verifies it. The checksum travels inside the object (not as store metadata) so the
 * same check works for every store, survives copies between stores, and cannot be lost by a tool
 * that copies bodies without metadata.
 *
 *   offset 0        4                               36
 *          +--------+-------------------------------+----------------------+
 *          | "SFN1" | sha256(body), 32 bytes        | body ...             |
 *          +--------+-------------------------------+----------------------+
 */
import { createHash } from 'node:crypto';
import { ErrorCode, StatefnError } from '../shared/errors.js';

/** A place to keep snapshot objects. Implementations: `LocalDirStore`, `S3Store`. */
export interface SnapshotStore {
  /** Write (or replace) the object at `key`; resolves once it is durable. */
  put(key: string, body: Uint8Array): Promise<void>;
  /**
   * The body of the object at `key`, its checksum verified.
   * Throws `SnapshotError` with reason `missing` or `corrupt` (terminal) or `unavailable` (retriable).
   */
  get(key: string): Promise<Uint8Array>;
  /** Every key that starts with `prefix` (plain string prefix, as S3 does), sorted. */
  list(prefix: string): Promise<string[]>;
  /** Delete these objects; keys that do not exist are ignored. */
  delete(keys: string[]): Promise<void>;
  /**
   * Copy the object at `from` to `to` as stored (its seal is not checked, so a damaged object is
   * copied as it is); resolves once the copy is durable. Throws `missing` when `from` does not exist.
   */
  copy(from: string, to: string): Promise<void>;
  /** Where this store keeps its objects, for messages (`dir:/var/statefn/snap`, `s3://bucket/prefix`). */
  describe(): string;
}

/** Why a snapshot operation failed. */
export type SnapshotErrorReason =
  /** The object does not exist. */
  | 'missing'
  /** The object exists but its checksum does not match, or its framing is not ours. */
  | 'corrupt'
  /** The store itself failed (S3 down, a timeout, an I/O error). Retriable. */
  | 'unavailable'
  /** The key or a name is malformed (a bug in the caller, or a bad savepoint name). */
  | 'invalid-key'
  /** The object verified but its content is not a valid checkpoint object. */
  | 'malformed';

/**
 * A snapshot failure that names the object. Its code is `STATEFN_STATE_INVALID` for now; the
 * codes to add to `ErrorCode` (shared/errors.ts) are `STATEFN_SNAPSHOT_OBJECT_MISSING`,
 * `STATEFN_SNAPSHOT_OBJECT_CORRUPT` and `STATEFN_SNAPSHOT_STORE_UNAVAILABLE`, one per `reason`.
 * Until then match on `reason`.
 */
export class SnapshotError extends StatefnError {
  constructor(
    readonly reason: SnapshotErrorReason,
    /** `describe()` of the store. */
    readonly store: string,
    /** The object's key within the store ('' when the error is not about one object). */
    readonly key: string,
    message: string,
    options: { cause?: unknown; retriable?: boolean } = {},
  ) {
    super(ErrorCode.STATE_INVALID, message, { ...options, retriable: options.retriable ?? reason === 'unavailable' });
    this.name = 'SnapshotError';
  }
}

export function missingObject(store: string, key: string, cause?: unknown): SnapshotError {
  return new SnapshotError(
    'missing',
    store,
    key,
    `snapshot object ${key} is missing from ${store}: it was deleted or never fully written; ` +
      `restore from an older checkpoint or savepoint, and check that nothing else deletes objects under this store's prefix`,
    { cause },
  );
}

export function corruptObject(store: string, key: string, why: string): SnapshotError {
  return new SnapshotError(
    'corrupt',
    store,
    key,
    `snapshot object ${key} in ${store} is corrupt (${why}); do not use it: restore from an older ` +
      `checkpoint or savepoint, and check the store for tampering or a faulty disk`,
  );
}

export function storeUnavailable(store: string, op: string, key: string, cause: unknown): SnapshotError {
  const detail = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  return new SnapshotError(
    'unavailable',
    store,
    key,
    `snapshot store ${store} failed to ${op}${key ? ` ${key}` : ''} (${detail}); this is retried, check that the store is reachable`,
    { cause, retriable: true },
  );
}

const MAGIC = Buffer.from('SFN1', 'latin1');
const HEADER_BYTES = MAGIC.length + 32;

/** The body with its checksum header, ready to store. */
export function sealObject(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.byteLength);
  MAGIC.copy(out, 0);
  createHash('sha256').update(body).digest().copy(out, MAGIC.length);
  out.set(body, HEADER_BYTES);
  return out;
}

/** The hex SHA-256 of a body (what `sealObject` stores), e.g. for object metadata. */
export function sha256Hex(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/** Verify a sealed object read from `store` at `key` and return its body (a view, no copy). */
export function openObject(store: string, key: string, sealed: Uint8Array): Uint8Array {
  const b = Buffer.isBuffer(sealed) ? sealed : Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (b.length < HEADER_BYTES || !b.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw corruptObject(store, key, `no statefn checksum header (${b.length} bytes)`);
  }
  const body = b.subarray(HEADER_BYTES);
  const want = b.subarray(MAGIC.length, HEADER_BYTES);
  const got = createHash('sha256').update(body).digest();
  if (!got.equals(want)) {
    throw corruptObject(
      store,
      key,
      `sha256 mismatch: stored ${want.toString('hex').slice(0, 16)}…, computed ${got.toString('hex').slice(0, 16)}…`,
    );
  }
  return body;
}

/**
 * Validate an object key: `/`-separated segments of printable characters, none empty, none
 * starting with `.` (so `.`/`..` and the local store's temp files can never be addressed), no
 * backslash or NUL, not absolute.
 */
export function validateKey(store: string, key: string): void {
  const bad = (why: string): never => {
    throw new SnapshotError(
      'invalid-key',
      store,
      key,
      `snapshot key ${JSON.stringify(key)} for ${store} is invalid: ${why} (this is a bug in the caller)`,
    );
  };
  if (key.length === 0) bad('empty');
  if (key.length > 900) bad('longer than 900 characters');
  if (key.startsWith('/')) bad('absolute');
  // eslint-disable-next-line no-control-regex
  if (/[\\\x00-\x1f\x7f]/.test(key)) bad('contains a backslash or a control character');
  for (const seg of key.split('/')) {
    if (seg.length === 0) bad('has an empty segment');
    if (seg.startsWith('.')) bad(`segment ${JSON.stringify(seg)} starts with "."`);
  }
}
