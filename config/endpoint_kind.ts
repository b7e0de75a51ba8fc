/**
 * The StateFun remote-function endpoint kinds, `io.statefun.endpoints.v1/http` and
 * `io.statefun.endpoints.v2/http`: their descriptor, schema (field names, defaults and value
 * formats follow the upstream binders of apache/flink-statefun 3.3) and how they become
 * `app.remote(...)` endpoints. Not a connector, so it lives in config/.
 */
import { isTypeName } from '../api/address.js';
import type { ModuleDescriptor, ModuleReader, ModuleSource, YamlMap, YamlNode } from '../api/connector_kind.js';
import { FUNCTION_NAME_PLACEHOLDER } from '../api/endpoint.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { ModuleKind } from './module_kind.js';
import { moduleBatchRequestsMax, moduleTimeoutMaxMs } from '../shared/limits.js';
/** The largest 32-bit signed integer: a Java int, as upstream reads these fields. */
const INT32_MAX = 2_147_483_647;

export const ENDPOINT_KIND_V1 = 'io.statefun.endpoints.v1/http';
export const ENDPOINT_KIND_V2 = 'io.statefun.endpoints.v2/http';
const TRANSPORT_ASYNC = 'io.statefun.transports.v1/async';
const TRANSPORT_OKHTTP = 'io.statefun.transports.v1/okhttp';

/** How the remote-function runtime talks to an endpoint (StateFun's `transport` section). */
export interface HttpTransport {
  /**
   * Which StateFun transport the settings were written for: `async` (`io.statefun.transports.v1/
   * async`, the v2 default) or `okhttp` (v1, or v2 with `type: io.statefun.transports.v1/okhttp`).
   */
  readonly type: 'async' | 'okhttp';
  /** Whole call including retries and backoff; after it the call has failed. */
  readonly callMs: number;
  /** One TCP connect attempt. */
  readonly connectMs: number;
  /** Per read operation; only when written (`timeouts.read`) or for okhttp (default 10s). */
  readonly readMs?: number;
  /** Per write operation; only when written (`timeouts.write`) or for okhttp (default 10s). */
  readonly writeMs?: number;
  /** Life of a pooled connection; 0 disables pooling. */
  readonly poolTtlMs: number;
  readonly poolSize: number;
  /** Largest request or response body. */
  readonly payloadMaxBytes: number;
  /** Mutual TLS material (file paths), from `trust_cacerts`, `client_cert`, `client_key`, `client_key_password`. */
  readonly tls?: HttpTls;
}

export interface HttpTls {
  readonly trustCaCertsFile?: string;
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
  /** A file holding the client key's password. */
  readonly clientKeyPasswordFile?: string;
}

/** `io.statefun.endpoints.v1/http` and `io.statefun.endpoints.v2/http`. */
export interface EndpointDocument extends ModuleDescriptor {
  readonly kind: 'endpoint';
  readonly source: ModuleSource;
  /** Which upstream kind the document used. */
  readonly version: 'v1' | 'v2';
  /** `namespace/name` for one function type, or `namespace/*` for every type in a namespace. */
  readonly functions: string;
  /** The URL; `{function.name}` is replaced by the name part of the function type. */
  readonly urlPathTemplate: string;
  /** Messages queued per address while a request is in flight before back-pressure. */
  readonly maxNumBatchRequests: number;
  readonly transport: HttpTransport;
  /** statefn extension: `dead-letter` (default) or `restore` (fail and restore the last checkpoint). */
  readonly onFailure: 'dead-letter' | 'restore';
}

// Upstream defaults (NettyRequestReplySpec, DefaultHttpRequestReplyClientSpec, HttpFunctionEndpointSpec).
const ENDPOINT_DEFAULTS = {
  maxNumBatchRequests: 1000,
  asyncCallMs: 120_000,
  asyncConnectMs: 20_000,
  /** When a `timeouts` block is present, upstream takes call/connect from it, defaulting to these. */
  timeoutsBlockCallMs: 60_000,
  timeoutsBlockConnectMs: 10_000,
  okhttpCallMs: 60_000,
  okhttpConnectMs: 10_000,
  okhttpReadMs: 10_000,
  okhttpWriteMs: 10_000,
  poolTtlMs: 15_000,
  poolSize: 1024,
  payloadMaxBytes: 32 * 1024 * 1024,
} as const;

/** True if `typename` (`namespace/name`) is served by this endpoint. */
export function endpointMatches(endpoint: Pick<EndpointDocument, 'functions'>, typename: string): boolean {
  const slash = endpoint.functions.lastIndexOf('/');
  const name = endpoint.functions.slice(slash + 1);
  if (name !== '*') return endpoint.functions === typename;
  const t = typename.lastIndexOf('/');
  return t > 0 && typename.slice(0, t) === endpoint.functions.slice(0, slash);
}

const URL_SCHEMES = ['http:', 'https:', 'http+unix:', 'https+unix:'];

function parseFunctionsPattern(r: ModuleReader, node: YamlNode, path: string): string {
  const s = r.string(node, path, "the function types served: 'namespace/name' or 'namespace/*'");
  const slash = s.lastIndexOf('/');
  const namespace = slash > 0 ? s.slice(0, slash) : '';
  const name = slash > 0 ? s.slice(slash + 1) : '';
  const valid =
    namespace !== '' &&
    name !== '' &&
    !namespace.includes('*') &&
    (name === '*' || !name.includes('*')) &&
    isTypeName(`${namespace}/${name === '*' ? 'x' : name}`);
  if (!valid) {
    r.fail(path, node.pos, `expected 'namespace/name' or 'namespace/*', got ${r.found(node)}`, {
      fix: slash < 0 ? `add the namespace, e.g. "${s}/*" or "com.example/${s}"` : "only a whole name may be '*' (upstream TargetFunctions)",
    });
  }
  return s;
}

function parseUrlTemplate(r: ModuleReader, node: YamlNode, path: string): string {
  const template = r.string(node, path, 'the endpoint URL');
  for (const m of template.matchAll(/\{[^}]*\}/g)) {
    if (m[0] !== FUNCTION_NAME_PLACEHOLDER) {
      r.fail(
        path,
        node.pos,
        `unknown placeholder ${m[0]} in ${JSON.stringify(template)}; only ${FUNCTION_NAME_PLACEHOLDER} is replaced (by the ` +
          `function type's name)`,
      );
    }
  }
  let url: URL;
  try {
    url = new URL(template.split(FUNCTION_NAME_PLACEHOLDER).join('fn'));
  } catch {
    return r.fail(path, node.pos, `expected an absolute URL such as http://functions:8000/{function.name}, got ${r.found(node)}`);
  }
  if (!URL_SCHEMES.includes(url.protocol)) {
    r.fail(
      path,
      node.pos,
      `expected a URL with scheme http, https, http+unix or https+unix, got ${r.found(node)} (scheme ${url.protocol.slice(0, -1)})`,
    );
  }
  if (url.protocol.endsWith('+unix:')) {
    // Upstream (UnixDomainHttpEndpoint): the socket file is the first path segment ending in .sock.
    if (!url.pathname.split('/').some((seg) => seg.endsWith('.sock'))) {
      r.fail(path, node.pos, `expected a UNIX-socket URL whose path contains the socket file ending in '.sock', got ${r.found(node)}`, {
        fix: 'write it as http+unix:///path/to/socket.sock/url/path',
      });
    }
  } else if (url.hostname === '') {
    r.fail(path, node.pos, `expected a URL with a host, got ${r.found(node)}`);
  }
  return template;
}

function parseEndpoint(r: ModuleReader, spec: YamlMap, version: 'v1' | 'v2'): EndpointDocument {
  const allowed =
    version === 'v1'
      ? ['functions', 'urlPathTemplate', 'maxNumBatchRequests', 'timeouts', 'onFailure']
      : ['functions', 'urlPathTemplate', 'maxNumBatchRequests', 'transport', 'onFailure'];
  const hints: Record<string, string> =
    version === 'v1'
      ? { transport: `'transport' is read only by ${ENDPOINT_KIND_V2}; change the kind, or move the timeouts to spec.timeouts` }
      : { timeouts: `in ${ENDPOINT_KIND_V2} timeouts go under spec.transport (spec.transport.call / spec.transport.connect)` };
  r.onlyKeys(spec, 'spec', allowed, hints);

  const functionsEntry = r.required(spec, 'functions', 'spec', "the function types served: 'namespace/name' or 'namespace/*'");
  const functions = parseFunctionsPattern(r, functionsEntry.value, 'spec.functions');
  const urlPathTemplate = parseUrlTemplate(
    r,
    r.required(spec, 'urlPathTemplate', 'spec', 'the endpoint URL').value,
    'spec.urlPathTemplate',
  );
  const batch = spec.entries.get('maxNumBatchRequests');
  const maxNumBatchRequests = batch
    ? r.int(batch.value, 'spec.maxNumBatchRequests', 'messages queued per address before back-pressure', {
        min: 1,
        max: moduleBatchRequestsMax,
      })
    : ENDPOINT_DEFAULTS.maxNumBatchRequests;

  let transport: HttpTransport;
  if (version === 'v1') {
    // v1 hands the whole spec to the OkHttp transport, which reads only `timeouts`.
    transport = parseOkHttpTimeouts(r, spec.entries.get('timeouts')?.value, 'spec.timeouts');
  } else {
    const t = spec.entries.get('transport');
    transport =
      t === undefined
        ? defaultAsyncTransport()
        : parseTransport(r, r.map(t.value, 'spec.transport', 'the transport settings'), 'spec.transport');
  }

  // statefn extension: what happens to a batch whose call failed after its retries.
  const failEntry = spec.entries.get('onFailure');
  const onFailure = failEntry
    ? r.oneOf(failEntry.value, 'spec.onFailure', 'what happens to a batch whose call failed after its retries', [
        'dead-letter',
        'restore',
      ] as const)
    : 'dead-letter';

  const doc: EndpointDocument = {
    kind: 'endpoint',
    source: r.source,
    version,
    functions,
    urlPathTemplate,
    maxNumBatchRequests,
    transport,
    onFailure,
  };
  return doc;
}

function defaultAsyncTransport(): HttpTransport {
  return {
    type: 'async',
    callMs: ENDPOINT_DEFAULTS.asyncCallMs,
    connectMs: ENDPOINT_DEFAULTS.asyncConnectMs,
    poolTtlMs: ENDPOINT_DEFAULTS.poolTtlMs,
    poolSize: ENDPOINT_DEFAULTS.poolSize,
    payloadMaxBytes: ENDPOINT_DEFAULTS.payloadMaxBytes,
  };
}

const TIMEOUT_BOUNDS = { min: 1, max: moduleTimeoutMaxMs };
const ASYNC_KEYS = [
  'type',
  'call',
  'connect',
  'pool_ttl',
  'pool_size',
  'payload_max_bytes',
  'trust_cacerts',
  'client_cert',
  'client_key',
  'client_key_password',
  'timeouts',
];

function parseTransport(r: ModuleReader, transport: YamlMap, path: string): HttpTransport {
  const typeEntry = transport.entries.get('type');
  const type = typeEntry
    ? r.oneOf(typeEntry.value, `${path}.type`, 'the transport client', [TRANSPORT_ASYNC, TRANSPORT_OKHTTP])
    : TRANSPORT_ASYNC;

  if (type === TRANSPORT_OKHTTP) {
    const asyncOnly = Object.fromEntries(
      ASYNC_KEYS.filter((k) => k !== 'type' && k !== 'timeouts').map((k) => [
        k,
        `'${k}' is a setting of the async transport (${TRANSPORT_ASYNC}, the default); remove 'type: ${TRANSPORT_OKHTTP}' or remove '${k}'`,
      ]),
    );
    r.onlyKeys(transport, path, ['type', 'timeouts'], asyncOnly);
    return parseOkHttpTimeouts(r, transport.entries.get('timeouts')?.value, `${path}.timeouts`);
  }

  r.onlyKeys(transport, path, ASYNC_KEYS);
  const get = (key: string): YamlNode | undefined => transport.entries.get(key)?.value;

  // Upstream NettyRequestReplySpec: when a `timeouts` block is present its call/connect win, with
  // the OkHttp-era defaults (1 min / 10 s); otherwise the flat keys, defaulting to 2 min / 20 s.
  // Writing the same timeout both ways is ambiguous, so statefn rejects it.
  const timeoutsNode = get('timeouts');
  let nested: { call?: number; connect?: number; read?: number; write?: number } = {};
  if (timeoutsNode !== undefined) {
    const tmap = r.map(timeoutsNode, `${path}.timeouts`, 'call/connect/read/write timeouts');
    r.onlyKeys(tmap, `${path}.timeouts`, ['call', 'connect', 'read', 'write']);
    nested = readTimeouts(r, tmap, `${path}.timeouts`);
    for (const key of ['call', 'connect'] as const) {
      const flat = transport.entries.get(key);
      if (flat !== undefined && nested[key] !== undefined) {
        r.fail(`${path}.${key}`, flat.keyPos, `the ${key} timeout is set twice, as ${path}.${key} and ${path}.timeouts.${key}`, {
          fix: 'keep one of them',
        });
      }
    }
  }
  const flatCall = get('call');
  const flatConnect = get('connect');
  const callMs =
    nested.call ??
    (flatCall ? r.duration(flatCall, `${path}.call`, 'the whole call, including retries', TIMEOUT_BOUNDS) : undefined) ??
    (timeoutsNode ? ENDPOINT_DEFAULTS.timeoutsBlockCallMs : ENDPOINT_DEFAULTS.asyncCallMs);
  const explicitConnect =
    nested.connect ?? (flatConnect ? r.duration(flatConnect, `${path}.connect`, 'one connection attempt', TIMEOUT_BOUNDS) : undefined);
  const defaultConnect = timeoutsNode ? ENDPOINT_DEFAULTS.timeoutsBlockConnectMs : ENDPOINT_DEFAULTS.asyncConnectMs;
  if (explicitConnect !== undefined && explicitConnect > callMs) {
    const at = flatConnect ?? (timeoutsNode?.t === 'map' ? timeoutsNode.entries.get('connect')?.value : undefined);
    r.fail(`${path}.connect`, at?.pos, `connect timeout (${explicitConnect}ms) is longer than the call timeout (${callMs}ms)`, {
      fix: 'lower connect or raise call',
    });
  }
  // A defaulted connect timeout never exceeds the call timeout: the call bounds every attempt.
  const connectMs = explicitConnect ?? Math.min(defaultConnect, callMs);

  const poolTtl = get('pool_ttl');
  const poolSize = get('pool_size');
  const payload = get('payload_max_bytes');
  const result: {
    -readonly [K in keyof HttpTransport]: HttpTransport[K];
  } = {
    type: 'async',
    callMs,
    connectMs,
    poolTtlMs: poolTtl
      ? r.duration(poolTtl, `${path}.pool_ttl`, 'life of a pooled connection; 0 disables pooling', { min: 0, max: moduleTimeoutMaxMs })
      : ENDPOINT_DEFAULTS.poolTtlMs,
    poolSize: poolSize
      ? r.int(poolSize, `${path}.pool_size`, 'maximum connections in the pool', { min: 1, max: 1 << 20 })
      : ENDPOINT_DEFAULTS.poolSize,
    payloadMaxBytes: payload
      ? r.bytes(payload, `${path}.payload_max_bytes`, 'largest request or response body', { min: 1, max: INT32_MAX })
      : ENDPOINT_DEFAULTS.payloadMaxBytes,
  };
  if (nested.read !== undefined) result.readMs = nested.read;
  if (nested.write !== undefined) result.writeMs = nested.write;

  const tls: { -readonly [K in keyof HttpTls]: HttpTls[K] } = {};
  const tlsKeys = [
    ['trust_cacerts', 'trustCaCertsFile', 'trusted CA certificates (PEM)'],
    ['client_cert', 'clientCertFile', 'client certificate (PEM)'],
    ['client_key', 'clientKeyFile', 'client private key (PKCS8)'],
    ['client_key_password', 'clientKeyPasswordFile', 'a file holding the client key password'],
  ] as const;
  for (const [key, field, what] of tlsKeys) {
    const node = get(key);
    if (node === undefined) continue;
    const value = r.string(node, `${path}.${key}`, what);
    if (value.startsWith('classpath:')) {
      r.fail(
        `${path}.${key}`,
        node.pos,
        `expected a file path (${what}), got ${r.found(node)}: 'classpath:' resources exist only inside a JVM`,
        {
          fix: 'point to the file on disk',
        },
      );
    }
    tls[field] = value;
  }
  if (Object.keys(tls).length > 0) result.tls = tls;
  return result;
}

function readTimeouts(r: ModuleReader, tmap: YamlMap, path: string): { call?: number; connect?: number; read?: number; write?: number } {
  const out: { call?: number; connect?: number; read?: number; write?: number } = {};
  const what = { call: 'the whole call', connect: 'one connection attempt', read: 'one read', write: 'one write' } as const;
  for (const key of ['call', 'connect', 'read', 'write'] as const) {
    const node = tmap.entries.get(key)?.value;
    // Upstream (requireNonZeroDuration): timeouts must be larger than 0.
    if (node !== undefined) out[key] = r.duration(node, `${path}.${key}`, `timeout of ${what[key]}, > 0`, TIMEOUT_BOUNDS);
  }
  return out;
}

/** OkHttp transport (`DefaultHttpRequestReplyClientSpec`): `timeouts.{call,connect,read,write}`, each at most `call`. */
function parseOkHttpTimeouts(r: ModuleReader, node: YamlNode | undefined, path: string): HttpTransport {
  let t: { call?: number; connect?: number; read?: number; write?: number } = {};
  let tmap: YamlMap | undefined;
  if (node !== undefined) {
    tmap = r.map(node, path, 'call/connect/read/write timeouts');
    r.onlyKeys(tmap, path, ['call', 'connect', 'read', 'write']);
    t = readTimeouts(r, tmap, path);
  }
  const callMs = t.call ?? ENDPOINT_DEFAULTS.okhttpCallMs;
  // Upstream rejects any of connect/read/write above call, even a defaulted one (so `call: 5s`
  // alone fails there). statefn rejects only timeouts the file writes, and caps defaulted ones at
  // the call timeout, which bounds every attempt anyway.
  const timeouts = {
    connect: t.connect ?? Math.min(ENDPOINT_DEFAULTS.okhttpConnectMs, callMs),
    read: t.read ?? Math.min(ENDPOINT_DEFAULTS.okhttpReadMs, callMs),
    write: t.write ?? Math.min(ENDPOINT_DEFAULTS.okhttpWriteMs, callMs),
  };
  for (const key of ['connect', 'read', 'write'] as const) {
    if (timeouts[key] > callMs) {
      r.fail(
        `${path}.${key}`,
        tmap?.entries.get(key)?.value.pos ?? tmap?.pos,
        `${key} timeout (${timeouts[key]}ms) cannot be larger than the call timeout (${callMs}ms)`,
        {
          fix: `lower ${key} or raise call`,
        },
      );
    }
  }
  return {
    type: 'okhttp',
    callMs,
    connectMs: timeouts.connect,
    readMs: timeouts.read,
    writeMs: timeouts.write,
    poolTtlMs: ENDPOINT_DEFAULTS.poolTtlMs,
    poolSize: ENDPOINT_DEFAULTS.poolSize,
    payloadMaxBytes: ENDPOINT_DEFAULTS.payloadMaxBytes,
  };
}

/** `io.statefun.endpoints.v1/http` and `v2/http`: one endpoint per function pattern. */
export const endpointKind: ModuleKind<EndpointDocument> = {
  kinds: [ENDPOINT_KIND_V1, ENDPOINT_KIND_V2],
  parse: (doc, r) => parseEndpoint(r, doc.spec, doc.kind === ENDPOINT_KIND_V1 ? 'v1' : 'v2'),
  identity: (d, doc) => ({
    group: 'endpoint',
    key: d.functions,
    what: `spec.functions '${d.functions}'`,
    path: 'spec.functions',
    pos: doc.spec.entries.get('functions')?.value.pos ?? doc.spec.pos,
    fix: 'keep one endpoint per function pattern',
  }),
  build: (d, { app, where }) => {
    if (d.transport.tls !== undefined) {
      throw new StatefnError(
        ErrorCode.MODULE_KIND_UNSUPPORTED,
        `${where}: document ${d.source.document} (endpoint): transport TLS settings (trust_cacerts, client_cert, client_key) ` +
          `are not supported yet; use an https URL with a certificate Node trusts (NODE_EXTRA_CA_CERTS), or remove them`,
      );
    }
    app.remote({
      functions: d.functions,
      urlPathTemplate: d.urlPathTemplate,
      maxNumBatchRequests: d.maxNumBatchRequests,
      callTimeoutMs: d.transport.callMs,
      connectTimeoutMs: d.transport.connectMs,
      poolSize: d.transport.poolSize,
      poolTtlMs: d.transport.poolTtlMs,
      payloadMaxBytes: d.transport.payloadMaxBytes,
      onFailure: d.onFailure,
      source: where,
    });
  },
};
