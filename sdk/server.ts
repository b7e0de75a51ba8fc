/**
 * Serve functions over HTTP with StateFun's request-reply protocol: a `node:http` request handler
 * (`requestReplyHandler`, to mount in any server) and a ready server (`serve`).
 *
 * The protocol: the runtime POSTs a `ToFunction` protobuf (Content-Type
 * `application/octet-stream`) and expects 200 with a `FromFunction` protobuf and exactly that
 * content type; any other status makes it retry the batch. Errors here answer plain text:
 * 400 malformed protobuf, 404 unknown function type, 405 not a POST, 413 body over the limit,
 * 415 a content type other than `application/octet-stream` (a request without one is accepted),
 * 500 a handler threw.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, StatefnError, isStatefnError } from '../shared/errors.js';
import { functionIndex, handleInvocationBatch, type Functions } from './request_reply.js';

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
const OCTET_STREAM = 'application/octet-stream';

export interface RequestReplyHandlerOptions {
  /** Largest request body accepted, in bytes (413 beyond). Default 16 MiB. */
  maxBodyBytes?: number;
  /**
   * Called for every error reply (status >= 400). Default: log 5xx replies (a handler that threw)
   * with console.error; the runtime only sees the status.
   */
  onError?: (error: StatefnError, status: number) => void;
}

/** The HTTP status an error from `handleInvocationBatch` is answered with. */
export function httpStatusOf(err: unknown): number {
  if (!isStatefnError(err)) return 500;
  switch (err.code) {
    case ErrorCode.REMOTE_PROTOCOL:
      return 400;
    case ErrorCode.UNKNOWN_FUNCTION_TYPE:
      return 404;
    default:
      return 500;
  }
}

function defaultOnError(error: StatefnError, status: number): void {
  if (status >= 500) console.error(`statefn sdk: ${status}: ${error.message}`);
}

/** A `node:http` request listener that runs request-reply invocation batches. */
export function requestReplyHandler(
  functions: Functions,
  options: RequestReplyHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const index = functionIndex(functions);
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(limit) || limit <= 0) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `maxBodyBytes: expected a positive integer, got ${String(limit)}`);
  }
  const onError = options.onError ?? defaultOnError;
  const fail = (res: ServerResponse, status: number, error: StatefnError, headers: Record<string, string> = {}): void => {
    try {
      onError(error, status);
    } catch {
      // A failing error callback must not lose the reply.
    }
    sendText(res, status, error.message, headers);
  };
  const invalid = (message: string): StatefnError => new StatefnError(ErrorCode.REQUEST_INVALID, message);

  return (req, res) => {
    if (req.method !== 'POST') {
      fail(res, 405, invalid(`method ${String(req.method)} not allowed: StateFun's request-reply protocol uses POST`), { Allow: 'POST' });
      return;
    }
    const contentType = req.headers['content-type'];
    if (contentType !== undefined && mediaType(contentType) !== OCTET_STREAM) {
      fail(res, 415, invalid(`unsupported content type '${contentType}': expected ${OCTET_STREAM} (a ToFunction protobuf)`));
      return;
    }
    const tooLarge = (): StatefnError =>
      new StatefnError(ErrorCode.PAYLOAD_TOO_LARGE, `request body larger than the limit of ${limit} bytes`);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      // Do not read it: answer and close the connection.
      fail(res, 413, tooLarge(), { Connection: 'close' });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        fail(res, 413, tooLarge(), { Connection: 'close' });
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => {
      done = true; // the client went away: nobody to answer
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      handleInvocationBatch(index, Buffer.concat(chunks, size)).then(
        (reply) => {
          res.writeHead(200, { 'Content-Type': OCTET_STREAM, 'Content-Length': reply.length });
          res.end(reply);
        },
        (err: unknown) => {
          const error = isStatefnError(err) ? err : new StatefnError(ErrorCode.HANDLER_FAILED, String(err), { cause: err });
          fail(res, httpStatusOf(error), error);
        },
      );
    });
  };
}

/** `type/subtype` of a Content-Type header, lower-cased, without parameters. */
function mediaType(header: string): string {
  const semi = header.indexOf(';');
  return (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase();
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = `${text}\n`;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export interface ServeOptions extends RequestReplyHandlerOptions {
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 (the default) picks a free one. */
  port?: number;
  /** URL path the functions are served at (other paths answer 404). Default `/`. */
  path?: string;
}

export interface RemoteFunctionServer {
  /** The endpoint URL to give the runtime, e.g. `http://127.0.0.1:8000/statefun`. */
  readonly url: string;
  readonly port: number;
  /** Stop accepting connections, let requests in flight finish, and close the server. */
  close(): Promise<void>;
}

/** Start an HTTP server that serves `functions` at `path`. */
export async function serve(functions: Functions, options: ServeOptions = {}): Promise<RemoteFunctionServer> {
  const host = options.host ?? '127.0.0.1';
  const path = options.path === undefined ? '/' : options.path.startsWith('/') ? options.path : `/${options.path}`;
  const handler = requestReplyHandler(functions, options);
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    if ((q < 0 ? url : url.slice(0, q)) !== path) {
      sendText(res, 404, `no functions are served at ${url} (try ${path})`);
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}${path}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
