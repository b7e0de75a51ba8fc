/**
 * Remote-function endpoints: which function types an HTTP endpoint serves (`namespace/name` or
 * `namespace/*`), its URL, its batching bound, transport timeouts and what happens when a call
 * finally fails. Plain data, so it travels to the worker threads in their init message.
 */
import { ErrorCode, StatefnError } from '../shared/errors.js';

/** What to do with a batch whose call failed after every retry within the call timeout. */
export type RemoteFailurePolicy =
  /** Send the batch's messages to the dead-letter egress with the error, and go on. */
  | 'dead-letter'
  /** Fail the engine: it restores the last checkpoint and sends the batch again (StateFun's behaviour, minus the cluster). */
  | 'restore';

export interface RemoteEndpoint {
  /** `namespace/name`, or `namespace/*` for every type of a namespace. */
  readonly functions: string;
  /** `http://`, `https://` or `http+unix:///path/to.sock/url/path`; `{function.name}` is replaced by the type's name. */
  readonly urlPathTemplate: string;
  /** Messages queued per address while its request is in flight; at the bound the worker stops taking ingress. */
  readonly maxNumBatchRequests: number;
  /** Whole call, retries and backoff included. */
  readonly callTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Connections per worker thread to this endpoint. */
  readonly poolSize: number;
  /** Idle time after which a pooled connection is closed. */
  readonly poolTtlMs: number;
  /** Largest request or response body. */
  readonly payloadMaxBytes: number;
  readonly onFailure: RemoteFailurePolicy;
  /** Where it was configured (e.g. `module.yaml:12`), for logs and errors. */
  readonly source: string;
}

export const REMOTE_ENDPOINT_DEFAULTS = {
  maxNumBatchRequests: 1000,
  callTimeoutMs: 120_000,
  connectTimeoutMs: 20_000,
  poolSize: 64,
  poolTtlMs: 15_000,
  payloadMaxBytes: 32 * 1024 * 1024,
  onFailure: 'dead-letter' as RemoteFailurePolicy,
};

/** Fill in the defaults and validate a TypeScript-API endpoint. */
export function remoteEndpoint(e: Partial<RemoteEndpoint> & Pick<RemoteEndpoint, 'functions' | 'urlPathTemplate'>): RemoteEndpoint {
  const out: RemoteEndpoint = { ...REMOTE_ENDPOINT_DEFAULTS, source: 'TypeScript API', ...e };
  if (!/^[^/\s]+\/(\*|[^/\s*]+)$/.test(out.functions)) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `remote endpoint (${out.source}): functions must be 'namespace/name' or 'namespace/*', got ${JSON.stringify(out.functions)}`,
    );
  }
  parseEndpointUrl(functionUrlText(out, 'x'), out.source);
  for (const k of ['maxNumBatchRequests', 'callTimeoutMs', 'connectTimeoutMs', 'poolSize', 'payloadMaxBytes'] as const) {
    if (!Number.isInteger(out[k]) || out[k] < 1)
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `remote endpoint ${out.functions} (${out.source}): ${k} must be a positive integer, got ${String(out[k])}`,
      );
  }
  if (out.onFailure !== 'dead-letter' && out.onFailure !== 'restore') {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `remote endpoint ${out.functions} (${out.source}): onFailure must be 'dead-letter' or 'restore', ` +
        `got ${JSON.stringify(out.onFailure)}`,
    );
  }
  return out;
}

/** The endpoint serving `typename`: an exact `namespace/name` first, then `namespace/*`. */
export function endpointFor(endpoints: readonly RemoteEndpoint[], typename: string): RemoteEndpoint | undefined {
  let wildcard: RemoteEndpoint | undefined;
  const ns = typename.slice(0, typename.lastIndexOf('/'));
  for (const e of endpoints) {
    if (e.functions === typename) return e;
    if (wildcard === undefined && e.functions === `${ns}/*`) wildcard = e;
  }
  return wildcard;
}

export interface EndpointUrl {
  readonly protocol: 'http:' | 'https:';
  readonly hostname: string;
  readonly port: number;
  /** Path and query. */
  readonly path: string;
  /** For `http+unix`: the socket file. */
  readonly socketPath?: string;
  /** The URL as written, for logs. */
  readonly text: string;
}

/** The placeholder of a URL template that is replaced by the function type's name. */
export const FUNCTION_NAME_PLACEHOLDER = '{function.name}';

/**
 * The URL text for function type `typename`: {@link FUNCTION_NAME_PLACEHOLDER} replaced by the
 * part after the last `/`, URL-encoded (as upstream's UrlPathTemplate). The one place a URL
 * template is expanded.
 */
export function functionUrlText(e: Pick<RemoteEndpoint, 'urlPathTemplate'>, typename: string): string {
  const name = typename.slice(typename.lastIndexOf('/') + 1);
  return e.urlPathTemplate.split(FUNCTION_NAME_PLACEHOLDER).join(encodeURIComponent(name));
}

/** The URL for function type `typename`, parsed (see {@link functionUrlText}). */
export function endpointUrl(e: RemoteEndpoint, typename: string): EndpointUrl {
  return parseEndpointUrl(functionUrlText(e, typename), e.source);
}

export function parseEndpointUrl(text: string, source: string): EndpointUrl {
  const unix = /^http\+unix:\/\/(\/.+?\.sock)(\/.*)?$/.exec(text);
  if (unix !== null) return { protocol: 'http:', hostname: 'localhost', port: 80, path: unix[2] ?? '/', socketPath: unix[1]!, text };
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `remote endpoint (${source}): ${JSON.stringify(text)} is not a URL ` +
        '(http://host:port/path, https://..., or http+unix:///path/to/socket.sock/path)',
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `remote endpoint (${source}): ${JSON.stringify(text)}: the scheme must be http, https or http+unix`,
    );
  }
  const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
  return { protocol: u.protocol, hostname: u.hostname.replace(/^\[|\]$/g, ''), port, path: `${u.pathname}${u.search}`, text };
}
