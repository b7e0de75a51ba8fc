/**
 * Frames: what travels on the rings. A frame is one msgpackr-encoded array whose first element is
 * the frame kind. Messages are packed many per frame as flat tuples (no per-message object or
 * array on the wire), so the per-message cost is a handful of msgpack values.
 *
 *   MESSAGES  [1, (targetType, targetId, callerType|null, callerId|null, typename, payload) * n]
 *   EGRESS    [2, (egressId, typename, payload) * n]                          worker -> main
 *   DEAD      [3, deadLetterJson * n]                                          worker -> main
 *   CONTROL   [4, op, ...args]                                                 any direction
 *
 * A payload is a native value (number/string/boolean) for built-in types, else bytes.
 */
import { Packr } from 'msgpackr';
import { ErrorCode, StatefnError } from './errors.js';
import type { Payload } from './types.js';

export const FrameKind = {
  MESSAGES: 1,
  EGRESS: 2,
  DEAD: 3,
  CONTROL: 4,
} as const;

export const MESSAGE_FIELDS = 6;
export const EGRESS_FIELDS = 3;

/** Control operations (second element of a CONTROL frame). */
export const ControlOp = {
  /** main -> worker: write dirty state of epoch `args[0]` to LMDB, then answer FLUSHED. */
  FLUSH: 1,
  /** worker -> main: epoch `args[0]` is flushed; args[1] = stats object. */
  FLUSHED: 2,
  /** main -> worker: stop invoking handlers; keep moving messages; answer QUIESCE_STATS. */
  QUIESCE: 3,
  /** worker -> worker/main: a marker that follows everything a producer sent before quiescing. */
  QUIESCE_MARK: 4,
  /** worker -> main: all input rings delivered their quiesce marks. */
  QUIESCED: 5,
  /** main -> worker: persist pending messages and close. */
  SHUTDOWN: 6,
  /** worker -> main: closed cleanly. */
  SHUTDOWN_DONE: 7,
  /** main -> worker: the manual clock moved; check timers. */
  CLOCK: 8,
} as const;

/**
 * One codec instance per thread (msgpackr's Packr reuses an internal buffer: the bytes `pack`
 * returns stay valid only until the next `pack` call on the same instance).
 */
export function createCodec(): Packr {
  // copyBuffers: byte payloads are copied out of the ring's shared memory while decoding, so
  // the ring can release the frame right after. Plain arrays and maps only: no records, no
  // shared structures, so both ends need no negotiated state.
  return new Packr({ useRecords: false, copyBuffers: true, moreTypes: false, mapsAsObjects: true });
}

export function decodeFrame(codec: Packr, bytes: Uint8Array, from: string): unknown[] {
  let v: unknown;
  try {
    v = codec.unpack(bytes);
  } catch (e) {
    throw new StatefnError(ErrorCode.FRAME_MALFORMED, `frame from ${from} could not be decoded: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(v) || typeof v[0] !== 'number') {
    throw new StatefnError(ErrorCode.FRAME_MALFORMED, `frame from ${from} is not a statefn frame`);
  }
  return v;
}

/** A message in flight between threads, as the runtime holds it. */
export interface Envelope {
  targetType: string;
  targetId: string;
  callerType: string | null;
  callerId: string | null;
  typename: string;
  payload: Payload;
}
