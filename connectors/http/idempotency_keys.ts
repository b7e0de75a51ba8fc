/**
 * The Idempotency-Keys an HTTP ingress remembers, kept durable with the checkpoint through the
 * ingress's position (`IngressConnector.position` / `seek`).
 *
 * Why the position: the engine takes every ingress's position at a checkpoint's barrier, records
 * it with the checkpoint (checkpoint.json and the manifest in the snapshot store) and seeks it
 * when it recovers that checkpoint. A key is added synchronously right before its request's
 * `submit`, so a key is in the position of checkpoint n exactly when its message is in checkpoint
 * n. A retry after any restart (clean stop, SIGKILL, a worker's death, a restore from the snapshot
 * store) finds the keys of the messages that survived, and only those.
 *
 * What is kept per key: 16 bytes, never the key or the body.
 *
 *   offset  size  field
 *   0       8     key hash       SHA-256(key), first 8 bytes: a new key collides with one of
 *                                n kept keys with probability n / 2^64
 *   8       4     request hash   SHA-256(target type, id, message type, body), first 4 bytes:
 *                                a reused key with another request gets 422 (missed 1 in 2^32)
 *   12      4     seconds        when the key was first seen, s since the Unix epoch, rounded up
 *
 * The records sit in one Buffer in arrival order, a log: appended at the tail, forgotten at the
 * head (oldest first, by count and by age), compacted or grown when the tail reaches the end. So
 * a checkpoint's position is one base64 of a contiguous range (no per-key work at a barrier), and
 * a Map finds a key's record by its sequence number.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, StatefnError, assert } from '../../shared/errors.js';

/** Bytes of one record (layout above). */
export const KEY_RECORD_BYTES = 16;
const KEY_HASH_BYTES = 8;
const REQUEST_HASH_AT = 8;
const SECONDS_AT = 12;
/** Records the log starts with; it doubles up to about twice the count bound. */
const INITIAL_RECORDS = 1024;
/** Version of the position's format. */
const POSITION_VERSION = 1;

/** The position the ingress reports: its remembered keys, records in arrival order, base64. */
export interface IdempotencyPosition {
  v: typeof POSITION_VERSION;
  keys: string;
}

/** The key's hash as the log and the Map hold it: 16 hex digits. */
export function keyHash(key: string): string {
  return createHash('sha256')
    .update(key, 'utf8')
    .digest('hex')
    .slice(0, KEY_HASH_BYTES * 2);
}

/** What a reused key must match: the target, the message type and the body. */
export function requestHash(targetType: string, targetId: string, typename: string, body: Uint8Array): number {
  const h = createHash('sha256');
  // Each string after its length: no two different (type, id, typename) triples hash the same
  // bytes, whatever characters they hold.
  h.update(`${targetType.length}:${targetType}${targetId.length}:${targetId}${typename.length}:${typename}`, 'utf8');
  h.update(body);
  return h.digest().readUInt32LE(0);
}

export class IdempotencyKeys {
  private log = Buffer.alloc(0);
  /** Record index of the oldest kept record, and the one after the newest. */
  private head = 0;
  private tail = 0;
  /** Sequence number of the record at `head` (sequence numbers only grow). */
  private headSeq = 0;
  /** Key hash -> sequence number of its record. */
  private readonly bySeq = new Map<string, number>();
  /** The position last reported, until a key is added or forgotten. */
  private cached: IdempotencyPosition | undefined;

  /**
   * @param countMax keys kept at most (0: none, idempotency is off)
   * @param ageMs    a key is forgotten once older than this
   */
  constructor(
    private readonly countMax: number,
    private readonly ageMs: number,
  ) {}

  /** False when countMax is 0: idempotency is off. */
  get enabled(): boolean {
    return this.countMax > 0;
  }

  /** Keys kept now (some may be past their age until the next lookup or add forgets them). */
  get size(): number {
    return this.tail - this.head;
  }

  /** The request hash of a remembered key, or undefined when it is unknown or was forgotten. */
  lookup(hash: string, nowMs: number): number | undefined {
    this.forgetOld(nowMs);
    const seq = this.bySeq.get(hash);
    if (seq === undefined) return undefined;
    const at = this.offsetOf(seq);
    // A clock that went back can leave an old record behind a younger head: check its age too.
    if (this.expired(this.log.readUInt32LE(at + SECONDS_AT), nowMs)) return undefined;
    return this.log.readUInt32LE(at + REQUEST_HASH_AT);
  }

  /** Remember `hash` for a request just submitted. */
  add(hash: string, request: number, nowMs: number): void {
    if (this.countMax === 0) return;
    this.forgetOld(nowMs);
    this.append(hash, request >>> 0, Math.max(0, Math.min(0xffffffff, Math.ceil(nowMs / 1000))));
    while (this.size > this.countMax) this.dropHead();
  }

  /** The keys as a JSON-serializable position (cached until the keys change). */
  position(): IdempotencyPosition {
    this.cached ??= { v: POSITION_VERSION, keys: this.log.toString('base64', this.head * KEY_RECORD_BYTES, this.tail * KEY_RECORD_BYTES) };
    return this.cached;
  }

  /**
   * Continue with the keys of a position `position()` returned (before the first request). Of
   * more keys than `countMax` the newest are kept; keys past their age go at the first request.
   * `where` names the ingress in the error for a position that is not one.
   */
  seek(position: unknown, where: string): void {
    const p = position as Partial<IdempotencyPosition> | null;
    const bytes =
      p !== null && typeof p === 'object' && p.v === POSITION_VERSION && typeof p.keys === 'string'
        ? Buffer.from(p.keys, 'base64')
        : undefined;
    if (bytes === undefined || bytes.length % KEY_RECORD_BYTES !== 0) {
      throw new StatefnError(
        ErrorCode.STATE_DIR_INVALID,
        `${where}: the position recorded with the checkpoint is not this ingress's idempotency keys ` +
          `({v: ${POSITION_VERSION}, keys: <base64 of ${KEY_RECORD_BYTES}-byte records>}, got ${describe(position)}); was the ` +
          `checkpoint written by another connector with the same id? Give the ingress another id, or restore the checkpoint ` +
          `record from a backup`,
      );
    }
    this.bySeq.clear();
    this.log = Buffer.alloc(0);
    this.head = this.tail = this.headSeq = 0;
    this.cached = undefined;
    if (this.countMax === 0) return;
    const records = bytes.length / KEY_RECORD_BYTES;
    for (let r = Math.max(0, records - this.countMax); r < records; r++) {
      const at = r * KEY_RECORD_BYTES;
      this.append(
        bytes.toString('hex', at, at + KEY_HASH_BYTES),
        bytes.readUInt32LE(at + REQUEST_HASH_AT),
        bytes.readUInt32LE(at + SECONDS_AT),
      );
    }
  }

  private expired(seconds: number, nowMs: number): boolean {
    return nowMs - seconds * 1000 > this.ageMs;
  }

  /** Forget keys from the oldest on while they are past their age. */
  private forgetOld(nowMs: number): void {
    while (this.size > 0 && this.expired(this.log.readUInt32LE(this.head * KEY_RECORD_BYTES + SECONDS_AT), nowMs)) this.dropHead();
  }

  private append(hash: string, request: number, seconds: number): void {
    if (this.tail * KEY_RECORD_BYTES === this.log.length) this.makeRoom();
    const at = this.tail * KEY_RECORD_BYTES;
    const written = this.log.write(hash, at, KEY_HASH_BYTES, 'hex');
    assert(written === KEY_HASH_BYTES, () => `idempotency key hash '${hash}' is not ${KEY_HASH_BYTES} bytes of hex`);
    this.log.writeUInt32LE(request, at + REQUEST_HASH_AT);
    this.log.writeUInt32LE(seconds, at + SECONDS_AT);
    // A key seen again after it was forgotten gets a new record; its old one (if still in the
    // log) is skipped when it reaches the head.
    this.bySeq.set(hash, this.headSeq + (this.tail - this.head));
    this.tail++;
    this.cached = undefined;
  }

  private dropHead(): void {
    const hash = this.log.toString('hex', this.head * KEY_RECORD_BYTES, this.head * KEY_RECORD_BYTES + KEY_HASH_BYTES);
    if (this.bySeq.get(hash) === this.headSeq) this.bySeq.delete(hash);
    this.head++;
    this.headSeq++;
    this.cached = undefined;
  }

  /** The tail reached the end: move the kept records to the front, or double the log. */
  private makeRoom(): void {
    const records = this.log.length / KEY_RECORD_BYTES;
    if (this.head > 0 && this.size <= records / 2) {
      this.log.copyWithin(0, this.head * KEY_RECORD_BYTES, this.tail * KEY_RECORD_BYTES);
      this.tail -= this.head;
      this.head = 0;
      return;
    }
    const grown = Buffer.alloc(Math.max(INITIAL_RECORDS, records * 2) * KEY_RECORD_BYTES);
    this.log.copy(grown, 0, this.head * KEY_RECORD_BYTES, this.tail * KEY_RECORD_BYTES);
    this.log = grown;
    this.tail -= this.head;
    this.head = 0;
  }

  private offsetOf(seq: number): number {
    const r = this.head + (seq - this.headSeq);
    assert(
      r >= this.head && r < this.tail,
      () => `idempotency key record ${seq} is not in the log [${this.headSeq}, ${this.headSeq + this.size})`,
    );
    return r * KEY_RECORD_BYTES;
  }
}

function describe(v: unknown): string {
  try {
    const s = JSON.stringify(v) ?? String(v);
    return s.length > 80 ? `${s.slice(0, 80)}...` : s;
  } catch {
    return Object.prototype.toString.call(v);
  }
}
