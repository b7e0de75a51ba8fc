/**
 * The in-memory state of one address (one virtual function instance); the cache of them is
 * state_cache.ts. The persisted record is msgpack: `[[name, typename, bytes, expiresAtMs], ...]`
 * for non-empty values.
 *
 * Isolation: nothing a handler can hold a reference to is ever part of the cached state. A value
 * is cached as its serialized bytes (`Type.serialize`, as it is persisted), plus, when it is an
 * immutable JS value (number, string, boolean, bigint, null), the value itself. An object is
 * decoded afresh for each invocation that reads it (invocation.ts) and serialized again only
 * when an invocation that assigned it returns (effects.ts), so a handler that mutates what it
 * read, throws after a write, or mutates a kept reference after returning changes nothing; and
 * the slots can be copied shallowly (copy-on-write for the checkpoint under way, below).
 */
import type { Packr } from 'msgpackr';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { ValueSpec } from '../api/function_api.js';

/** The slots of an address's values as a checkpoint encodes them (see `AddressState`). */
export interface StateSlots {
  /** Serialized value by spec index; undefined when absent or held only in `values`. */
  bytes: (Uint8Array | undefined)[];
  /**
   * Decoded value by spec index when it is immutable (`isImmutable`); undefined otherwise. A slot
   * is present when either array holds it; when both do, they agree. A native (built-in) type's
   * value written by a handler is held here only, serialized when a checkpoint writes it.
   */
  values: unknown[];
  /** Expiry per spec index in clock ms (0 = none). */
  expires: number[];
}

export interface AddressState extends StateSlots {
  readonly fnType: string;
  readonly id: string;
  readonly kg: number;
  /** Entries for names the function no longer declares: kept as is, never lost silently. */
  orphans: unknown[][] | undefined;
  dirty: boolean;
  /** The record as LMDB holds it (the undo value when this state is next written). */
  persisted: Buffer | undefined;
  /** Captured by the checkpoint under way and not written yet (see WorkerCheckpoint). */
  capture: boolean;
  /** The slots as they were when the checkpoint under way captured this state, if changed since. */
  snap: StateSlots | null;
}

type Rec = [string, string, Uint8Array, number];

/** True for values no handler can change in place: they are cached and handed out as they are. */
export function isImmutable(v: unknown): boolean {
  return v === null || (typeof v !== 'object' && typeof v !== 'function');
}

export function decodeState(
  codec: Packr,
  bytes: Uint8Array | undefined,
  specs: readonly ValueSpec[],
  specIndex: ReadonlyMap<string, number>,
  fnType: string,
  id: string,
  kg: number,
): AddressState {
  const n = specs.length;
  const st: AddressState = {
    fnType,
    id,
    kg,
    bytes: new Array<Uint8Array | undefined>(n),
    values: new Array<unknown>(n),
    expires: new Array<number>(n).fill(0),
    orphans: undefined,
    dirty: false,
    capture: false,
    snap: null,
    persisted: bytes === undefined ? undefined : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  };
  if (bytes === undefined) return st;
  let recs: Rec[];
  try {
    recs = codec.unpack(bytes) as Rec[];
    if (!Array.isArray(recs)) throw new Error('not an array');
  } catch (e) {
    throw new StatefnError(ErrorCode.STATE_INVALID, `state of ${fnType}/${id} is unreadable: ${(e as Error).message}`, { cause: e });
  }
  for (const rec of recs) {
    const i = specIndex.get(rec[0]);
    if (i === undefined) {
      (st.orphans ??= []).push(rec);
      continue;
    }
    const spec = specs[i]!;
    if (rec[1] !== spec.type.typename) {
      throw new StatefnError(
        ErrorCode.STATE_INVALID,
        `state '${rec[0]}' of ${fnType}/${id} is stored as ${rec[1]} but declared as ${spec.type.typename}; ` +
          'declare it with its stored type, or under a new name',
      );
    }
    // The record's bytes are the codec's own copy (copyBuffers), referenced by nothing else.
    st.bytes[i] = rec[2];
    // Built-in types decode to a number, string or boolean: once, here. Other types are decoded
    // per invocation that reads them (`decodeValue`).
    if (spec.type.native) st.values[i] = spec.type.deserialize(rec[2]);
    st.expires[i] = rec[3];
  }
  return st;
}

/**
 * Decode the cached bytes of value `i` (a fresh object each call). A decoded immutable value is
 * kept in the slot, so it is decoded once. The type's deserializer gets a copy of the bytes: it
 * may return views into its input (raw types do, protobuf decoders do for bytes fields), and the
 * cached bytes must stay out of handlers' reach.
 */
export function decodeValue(st: AddressState, spec: ValueSpec, i: number, bytes: Uint8Array): unknown {
  let v: unknown;
  try {
    v = spec.type.deserialize(Uint8Array.prototype.slice.call(bytes));
  } catch (e) {
    throw new StatefnError(
      ErrorCode.STATE_INVALID,
      `state '${spec.name}' of ${st.fnType}/${st.id} does not decode as ${spec.type.typename}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (isImmutable(v)) st.values[i] = v;
  return v;
}

/** The current value `i` of `st`, decoded (not checking expiry); undefined when absent. */
export function readValue(st: AddressState, specs: readonly ValueSpec[], i: number): unknown {
  const v = st.values[i];
  if (v !== undefined) return v;
  const b = st.bytes[i];
  return b === undefined ? undefined : decodeValue(st, specs[i]!, i, b);
}

/**
 * The bytes to cache for a value a handler wrote (when its invocation returned). A copy when the
 * serializer's output may be the handler's: a raw type returns the value itself, and a custom
 * serializer may return a buffer the value keeps.
 */
export function serializeValue(where: string, spec: ValueSpec, v: unknown): Uint8Array {
  let b: unknown;
  try {
    b = spec.type.serialize(v);
  } catch (e) {
    throw new StatefnError(
      ErrorCode.TYPE_MISMATCH,
      `${where}: state '${spec.name}' could not be serialized as ${spec.type.typename}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!(b instanceof Uint8Array)) {
    throw new StatefnError(
      ErrorCode.TYPE_MISMATCH,
      `${where}: the serializer of ${spec.type.typename} (state '${spec.name}') did not return a Uint8Array`,
    );
  }
  return Uint8Array.prototype.slice.call(b);
}

/** Serialize for LMDB; undefined when the address holds nothing (the key is deleted). */
export function encodeState(
  codec: Packr,
  st: StateSlots & Pick<AddressState, 'orphans'>,
  specs: readonly ValueSpec[],
  now: number,
): Buffer | undefined {
  const recs: unknown[] = [];
  for (let i = 0; i < specs.length; i++) {
    const b = st.bytes[i];
    const v = st.values[i];
    if (b === undefined && v === undefined) continue;
    const exp = st.expires[i]!;
    if (exp !== 0 && exp <= now) {
      st.bytes[i] = undefined;
      st.values[i] = undefined;
      st.expires[i] = 0;
      continue;
    }
    const spec = specs[i]!;
    recs.push([spec.name, spec.type.typename, b ?? spec.type.serialize(v), exp]);
  }
  if (st.orphans) recs.push(...st.orphans);
  if (recs.length === 0) return undefined;
  return Buffer.from(codec.pack(recs));
}

/** True when the address holds no value (so it can be dropped from the cache once clean). */
export function isEmptyState(st: AddressState): boolean {
  if (st.orphans) return false;
  for (const v of st.values) if (v !== undefined) return false;
  for (const b of st.bytes) if (b !== undefined) return false;
  return true;
}

/**
 * An invocation is about to change a state the checkpoint under way has not encoded yet: keep
 * its slots as they were (copy-on-write; the checkpoint encodes the copy). A shallow copy is
 * enough: the slots hold only bytes and immutable values, which nothing changes in place.
 */
export function snapshotCaptured(st: AddressState): void {
  st.capture = false;
  st.snap = { bytes: st.bytes.slice(), values: st.values.slice(), expires: st.expires.slice() };
}
