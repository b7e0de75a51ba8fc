/**
 * The in-memory state of one address (one virtual function instance). Values are held decoded
 * (JS values) and serialized only when a checkpoint writes them (the cache of them is
 * state_cache.ts). The persisted record is msgpack: `[[name, typename, bytes, expiresAtMs], ...]`
 * for non-empty values.
 */
import type { Packr } from 'msgpackr';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { ValueSpec } from '../api/function_api.js';

export interface AddressState {
  readonly fnType: string;
  readonly id: string;
  readonly kg: number;
  /** Decoded values by spec index (undefined = absent). */
  values: unknown[];
  /** Expiry per spec index in clock ms (0 = none). */
  expires: number[];
  /** Entries for names the function no longer declares: kept as is, never lost silently. */
  orphans: unknown[][] | undefined;
  dirty: boolean;
  /** The record as LMDB holds it (the undo value when this state is next written). */
  persisted: Buffer | undefined;
  /** Captured by the checkpoint under way and not written yet (see WorkerCheckpoint). */
  capture: boolean;
  /** Values as they were when the checkpoint under way captured this state, if changed since. */
  snap: { values: unknown[]; expires: number[] } | null;
}

type Rec = [string, string, Uint8Array, number];

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
    st.values[i] = spec.type.deserialize(rec[2]);
    st.expires[i] = rec[3];
  }
  return st;
}

/** Serialize for LMDB; undefined when the address holds nothing (the key is deleted). */
export function encodeState(codec: Packr, st: AddressState, specs: readonly ValueSpec[], now: number): Buffer | undefined {
  const recs: unknown[] = [];
  for (let i = 0; i < specs.length; i++) {
    const v = st.values[i];
    if (v === undefined) continue;
    const exp = st.expires[i]!;
    if (exp !== 0 && exp <= now) {
      st.values[i] = undefined;
      st.expires[i] = 0;
      continue;
    }
    const spec = specs[i]!;
    recs.push([spec.name, spec.type.typename, spec.type.serialize(v), exp]);
  }
  if (st.orphans) recs.push(...st.orphans);
  if (recs.length === 0) return undefined;
  return Buffer.from(codec.pack(recs));
}

/** True when the address holds no value (so it can be dropped from the cache once clean). */
export function isEmptyState(st: AddressState): boolean {
  if (st.orphans) return false;
  for (const v of st.values) if (v !== undefined) return false;
  return true;
}

/**
 * A handler is about to change a state the checkpoint under way has not encoded yet: keep a copy
 * of its values as they were (copy-on-write; the checkpoint encodes the copy).
 */
export function snapshotCaptured(st: AddressState): void {
  st.capture = false;
  st.snap = { values: st.values.slice(), expires: st.expires.slice() };
}
