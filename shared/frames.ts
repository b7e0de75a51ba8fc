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
 *
 * Type names repeat from one message to the next (a batch usually targets one function type with
 * one message type), so on the wire a MESSAGES frame sends `targetType`, a non-null `callerType`
 * and `typename` as `REPEAT` (the integer 0, one byte) when they equal the same field of the
 * previous message in the frame. That halves the bytes per message (~57 -> ~20 for an ingress
 * message with a double payload) and, more to the point, leaves one string per message to decode
 * instead of three; the decoder hands the same string instance on, so the runtime's map lookups
 * by type name hit a cached hash. Those fields are never numbers otherwise, so the marker is
 * unambiguous. `OutLink` compresses, `InLink` expands: everything else sees full frames.
 */
import { Packr } from 'msgpackr';
import { ErrorCode, StatefnError } from './errors.js';
import type { Payload } from './payload.js';

export const FrameKind = {
  MESSAGES: 1,
  EGRESS: 2,
  DEAD: 3,
  CONTROL: 4,
} as const;

export const MESSAGE_FIELDS = 6;
export const EGRESS_FIELDS = 3;
/** In a MESSAGES frame on the wire: "same as this field of the previous message". */
export const REPEAT = 0;

/**
 * Replace repeated type names of a MESSAGES frame by `REPEAT`, in place (the first message of a
 * frame always carries them in full). Returns the frame.
 */
export function compressMessages(frame: unknown[]): unknown[] {
  let target: unknown;
  let caller: unknown = null;
  let type: unknown;
  for (let i = 1; i < frame.length; i += MESSAGE_FIELDS) {
    const t = frame[i];
    if (t === target) frame[i] = REPEAT;
    else target = t;
    const c = frame[i + 2];
    if (c !== null) {
      if (c === caller) frame[i + 2] = REPEAT;
      else caller = c;
    }
    const y = frame[i + 4];
    if (y === type) frame[i + 4] = REPEAT;
    else type = y;
  }
  return frame;
}

/**
 * Undo `compressMessages`, in place, checking the frame's shape: a whole number of messages, and
 * no `REPEAT` without a previous value. Throws FRAME_MALFORMED naming `from` otherwise.
 */
export function expandMessages(frame: unknown[], from: string): unknown[] {
  if ((frame.length - 1) % MESSAGE_FIELDS !== 0) {
    throw new StatefnError(
      ErrorCode.FRAME_MALFORMED,
      `MESSAGES frame from ${from} has ${frame.length - 1} fields, not a multiple of ${MESSAGE_FIELDS}`,
    );
  }
  let target: unknown;
  let caller: unknown;
  let type: unknown;
  for (let i = 1; i < frame.length; i += MESSAGE_FIELDS) {
    const t = frame[i];
    if (t === REPEAT) frame[i] = target;
    else target = t;
    const c = frame[i + 2];
    if (c === REPEAT) frame[i + 2] = caller;
    else if (c !== null) caller = c;
    const y = frame[i + 4];
    if (y === REPEAT) frame[i + 4] = type;
    else type = y;
    if (typeof frame[i] !== 'string' || typeof frame[i + 4] !== 'string' || frame[i + 2] === undefined) {
      throw new StatefnError(
        ErrorCode.FRAME_MALFORMED,
        `MESSAGES frame from ${from}: message ${(i - 1) / MESSAGE_FIELDS} has no target or message type`,
      );
    }
  }
  return frame;
}

/** Control operations (second element of a CONTROL frame). */
export const ControlOp = {
  /**
   * main -> worker and worker -> worker: checkpoint barrier of epoch `args[0]`. A worker captures
   * its part of the checkpoint (changed state, messages not handled yet) at the first one,
   * forwards it to every other worker, and records what arrives on each input until that input's
   * barrier (Chandy-Lamport); see docs/checkpoints.md.
   */
  BARRIER: 1,
  /** worker -> main: this worker's part of epoch `args[0]` is written; args[1] writes, args[2] ms. */
  ACK: 2,
  /** main -> worker: stop invoking handlers; keep moving messages; answer QUIESCED when done. */
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
  /** worker -> main: egress records before this mark belong to epoch `args[0]` or earlier. */
  EPOCH_MARK: 9,
  /**
   * main -> worker: checkpoint `args[0]` is complete; delete the messages recorded by older
   * checkpoints (undo records go when their database is cleared by epoch parity).
   */
  COMMIT: 10,
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
