/**
 * The request side of the HTTP ingress: the path, content type and body of a request, read and
 * checked within their bounds, each problem as the error reply it gets; and the fan-out that ends
 * waits (a body read, a wait for durability) when the ingress stops.
 */
import type http from 'node:http';
import { ID_LENGTH_MAX, isTypeName, overBytes, type Address } from '../../api/address.js';
import { ErrorCode } from '../../shared/errors.js';
import { builtinType, type Payload } from '../../api/types.js';

const CONTENT_TYPE_PREFIX = 'application/vnd.';

/** A reply with an error body `{"code", "message"}`. */
export type ErrorReply = { status: number; code: string; message: string; headers?: Record<string, string> };

/** Outcomes of reading a body other than the body itself. */
export const TOO_LARGE = Symbol('too large');
export const ABORTED = Symbol('aborted');
export const STOPPED = Symbol('stopped');

/**
 * Waits that end when the ingress or the engine stops. One listener per signal fans out to this
 * set: a listener per waiting request made every add and remove O(requests waiting).
 */
export class StopFanout {
  private readonly waiters = new Set<() => void>();
  private firedFlag = false;

  /** True once `fire` was called. */
  get fired(): boolean {
    return this.firedFlag;
  }

  add(waiter: () => void): void {
    this.waiters.add(waiter);
  }

  delete(waiter: () => void): void {
    this.waiters.delete(waiter);
  }

  /** Call every waiter once; later calls do nothing. */
  fire(): void {
    if (this.firedFlag) return;
    this.firedFlag = true;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }
}

/**
 * Read the body up to bodyBytesMax. Past the bound it stops collecting at once and reports
 * TOO_LARGE (the reply then closes the connection), so at most bodyBytesMax + one chunk is held.
 */
export function readBody(
  req: http.IncomingMessage,
  max: number,
  stop: StopFanout,
  stopped: AbortSignal,
): Promise<Uint8Array | typeof TOO_LARGE | typeof ABORTED | typeof STOPPED> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (v: Uint8Array | typeof TOO_LARGE | typeof ABORTED | typeof STOPPED): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      stop.delete(onStop);
      if (v !== ABORTED && !req.readableEnded) req.pause();
      resolve(v);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) return finish(TOO_LARGE);
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      // Copy into one exactly-sized Uint8Array that owns its memory (not a pooled Buffer
      // slice), so the payload can cross threads and be kept without pinning a pool.
      const body = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        body.set(c, at);
        at += c.length;
      }
      finish(body);
    };
    const onGone = (): void => finish(ABORTED);
    const onStop = (): void => finish(STOPPED);
    if (stop.fired || stopped.aborted) return finish(STOPPED);
    // The client may have gone while the request waited at the gate ('close' already fired).
    if (req.destroyed) return finish(ABORTED);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
    stop.add(onStop);
  });
}

/** `/<namespace>/<type>/<id>` -> the target address, or a 400. */
export function parsePath(path: string): Address | ErrorReply {
  const bad = (why: string): ErrorReply => ({
    status: 400,
    code: ErrorCode.ADDRESS_INVALID,
    message: `path '${path}': ${why}; expected /<namespace>/<type>/<id>, each segment URL-encoded, e.g. /com.example/greeter/alice`,
  });
  const parts = path.split('/');
  if (parts.length !== 4 || parts[0] !== '') return bad(`has ${Math.max(0, parts.length - 1)} segments`);
  const decoded: string[] = [];
  for (const p of parts.slice(1)) {
    if (p.length === 0) return bad('has an empty segment');
    try {
      decoded.push(decodeURIComponent(p));
    } catch {
      return bad(`segment '${p}' is not valid URL encoding`);
    }
  }
  const [namespace, type, id] = decoded as [string, string, string];
  // A slash inside the type would move the namespace/name split (StateFun splits at the last '/').
  if (type.includes('/')) return bad(`type '${type}' contains '/'`);
  const typename = `${namespace}/${type}`;
  if (!isTypeName(typename)) return bad(`'${String(typename)}' is not a valid type name (no whitespace, at most 255 characters)`);
  if (overBytes(id, ID_LENGTH_MAX)) return bad(`id is longer than ${ID_LENGTH_MAX} UTF-8 bytes`);
  return { typename, id };
}

/** `application/vnd.<typename>[; params]` -> the message typename, or a 415/400. */
export function parseContentType(header: string | undefined): string | ErrorReply {
  const expected = `expected 'Content-Type: ${CONTENT_TYPE_PREFIX}<namespace>/<name>', e.g. ${CONTENT_TYPE_PREFIX}io.statefun.types/string`;
  if (header === undefined || header.trim() === '') {
    return { status: 415, code: ErrorCode.REQUEST_INVALID, message: `missing Content-Type; ${expected}` };
  }
  const media = header.split(';')[0]!.trim();
  if (media.length <= CONTENT_TYPE_PREFIX.length || media.slice(0, CONTENT_TYPE_PREFIX.length).toLowerCase() !== CONTENT_TYPE_PREFIX) {
    return { status: 415, code: ErrorCode.REQUEST_INVALID, message: `Content-Type '${header}' is not supported; ${expected}` };
  }
  const typename = media.slice(CONTENT_TYPE_PREFIX.length);
  if (!isTypeName(typename)) {
    return {
      status: 400,
      code: ErrorCode.ADDRESS_INVALID,
      message: `Content-Type '${header}': '${String(typename)}' is not a type name 'namespace/name'; ${expected}`,
    };
  }
  return typename;
}

/** The message payload: native for built-in types (decoded from the wire format), else the bytes. */
export function decodePayload(typename: string, body: Uint8Array): { payload: Payload } | ErrorReply {
  const t = builtinType(typename);
  if (!t) return { payload: body };
  try {
    return { payload: t.deserialize(body) as Payload };
  } catch (e) {
    return {
      status: 400,
      code: ErrorCode.TYPE_MISMATCH,
      message:
        `body is not a valid ${typename} in StateFun's wire format (${(e as Error).message}); send the protobuf wrapper ` +
        `bytes of the value`,
    };
  }
}

/** msgpack headers of a MESSAGES frame holding one message: array, kind, 3 strings, 2 nils, the payload's. */
const MESSAGE_FRAME_HEADER_BYTES = 32;

/**
 * An upper bound of the bytes a message alone takes in a MESSAGES frame (shared/frames.ts): its
 * target type and id, its type name and its payload, as msgpack encodes them.
 */
export function messageFrameBytes(to: Address, typename: string, payload: Payload): number {
  const names = Buffer.byteLength(to.typename) + Buffer.byteLength(to.id) + Buffer.byteLength(typename);
  let value: number;
  if (payload instanceof Uint8Array) value = payload.length;
  else if (typeof payload === 'string') value = Buffer.byteLength(payload);
  else value = 9; // a number, bigint or boolean: at most a float64 or int64 with its tag
  return MESSAGE_FRAME_HEADER_BYTES + names + value;
}

/** How a wait for the engine ended (see outcomeOrStop). */
export type Outcome = 'done' | 'failed' | 'stopped';

/**
 * How `p` ended: 'done' (resolved), 'failed' (rejected), or 'stopped' (`fanout` fired before it
 * settled). Unlike a plain wait-until-stopped, a rejection or a stop is never taken for done.
 * When `stopping` already, `p` still wins if it has settled: its callbacks run in the microtasks
 * before setImmediate's, so a checkpoint that completed is still answered with a 202.
 */
export function outcomeOrStop(p: Promise<void>, fanout: StopFanout, stopping: boolean): Promise<Outcome> {
  if (stopping || fanout.fired) {
    const settled = p.then(
      () => 'done' as const,
      () => 'failed' as const,
    );
    return Promise.race([settled, new Promise<'stopped'>((r) => setImmediate(() => r('stopped')))]);
  }
  return new Promise((resolve) => {
    const onStop = (): void => {
      fanout.delete(onStop);
      resolve('stopped');
    };
    fanout.add(onStop);
    p.then(
      () => {
        fanout.delete(onStop);
        resolve('done');
      },
      () => {
        fanout.delete(onStop);
        resolve('failed');
      },
    );
  });
}
