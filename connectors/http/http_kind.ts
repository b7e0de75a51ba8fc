/**
 * The HTTP ingress's module.yaml kind, `io.statefn.http.v1/ingress`: messages POSTed over HTTP;
 * its descriptor, schema and how it becomes an {@link HttpIngress}. A key left out keeps the
 * HttpIngress default (see HttpIngressOptions for each).
 *
 *   spec key                 unit          default
 *   id                       namespace/name (required)
 *   host                     interface     127.0.0.1
 *   port                     TCP port      8090 (0: any free port)
 *   bodyBytesMax             bytes         what fits in a frame: limits.frameBytesMax - 8 KiB
 *   requestsInFlightMax      requests      256
 *   connectionsMax           connections   1024
 *   connectionsPerClientMax  connections   connectionsMax (per remote address)
 *   headersTimeoutMs         duration      10s
 *   requestTimeoutMs         duration      30s
 *   idempotencyKeysMax       keys          100000 (0: idempotency off)
 *   idempotencyKeyAgeMs      duration      24h (1s to 30d)
 */
import type { ConnectorDescriptor, ConnectorKind, ModuleReader, YamlMap, YamlNode } from '../../api/connector_kind.js';
import { HttpIngress } from './http_ingress.js';

export const HTTP_INGRESS_KIND = 'io.statefn.http.v1/ingress';
/** Defaults and bounds of the HTTP ingress's settings in module.yaml. */
const HTTP_HOST_DEFAULT = '127.0.0.1';
const HTTP_PORT_DEFAULT = 8090;
const HTTP_BODY_BYTES_MAX_LIMIT = 256 * 1024 * 1024;
const HTTP_REQUESTS_IN_FLIGHT_MAX_LIMIT = 65536;
const HTTP_REQUESTS_IN_FLIGHT_MAX_DEFAULT = 256;
const HTTP_CONNECTIONS_MAX_LIMIT = 1 << 20;
const HTTP_TIMEOUT_MS_LIMIT = 3_600_000;
const HTTP_IDEMPOTENCY_KEYS_MAX_LIMIT = 10_000_000;
const HTTP_IDEMPOTENCY_KEY_AGE_MS_LIMIT = 30 * 86_400_000;

/** `io.statefn.http.v1/ingress`: messages POSTed over HTTP. */
export interface HttpIngressDocument extends ConnectorDescriptor {
  readonly kind: 'http-ingress';
  readonly id: string;
  readonly host: string;
  /** 0 = any free port. */
  readonly port: number;
  /** Unset: what fits in a frame (the engine's frameBytesMax). */
  readonly bodyBytesMax?: number;
  readonly requestsInFlightMax: number;
  readonly connectionsMax?: number;
  readonly connectionsPerClientMax?: number;
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  readonly idempotencyKeysMax?: number;
  readonly idempotencyKeyAgeMs?: number;
}

const KEYS = [
  'id',
  'host',
  'port',
  'bodyBytesMax',
  'requestsInFlightMax',
  'connectionsMax',
  'connectionsPerClientMax',
  'headersTimeoutMs',
  'requestTimeoutMs',
  'idempotencyKeysMax',
  'idempotencyKeyAgeMs',
];

function parseHttpIngress(r: ModuleReader, spec: YamlMap): HttpIngressDocument {
  r.onlyKeys(spec, 'spec', KEYS);
  const get = (k: string): YamlNode | undefined => spec.entries.get(k)?.value;
  const idNode = r.required(spec, 'id', 'spec', "the ingress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the ingress id');
  const hostNode = get('host');
  const portNode = get('port');
  const bodyNode = get('bodyBytesMax');
  const inFlightNode = get('requestsInFlightMax');
  const int = (k: string, what: string, min: number, max: number): number | undefined => {
    const n = get(k);
    return n === undefined ? undefined : r.int(n, `spec.${k}`, what, { min, max });
  };
  const duration = (k: string, what: string, min: number, max: number): number | undefined => {
    const n = get(k);
    return n === undefined ? undefined : r.duration(n, `spec.${k}`, what, { min, max });
  };
  return {
    kind: 'http-ingress',
    source: r.source,
    id,
    host: hostNode ? r.string(hostNode, 'spec.host', 'the address to listen on') : HTTP_HOST_DEFAULT,
    port: portNode
      ? r.int(portNode, 'spec.port', 'the TCP port to listen on, 0 = any free port', { min: 0, max: 65535 })
      : HTTP_PORT_DEFAULT,
    requestsInFlightMax: inFlightNode
      ? r.int(inFlightNode, 'spec.requestsInFlightMax', 'requests served concurrently', { min: 1, max: HTTP_REQUESTS_IN_FLIGHT_MAX_LIMIT })
      : HTTP_REQUESTS_IN_FLIGHT_MAX_DEFAULT,
    ...defined({
      bodyBytesMax: bodyNode
        ? r.bytes(bodyNode, 'spec.bodyBytesMax', 'largest request body', { min: 1, max: HTTP_BODY_BYTES_MAX_LIMIT })
        : undefined,
      connectionsMax: int('connectionsMax', 'open TCP connections at most', 1, HTTP_CONNECTIONS_MAX_LIMIT),
      connectionsPerClientMax: int(
        'connectionsPerClientMax',
        'open TCP connections from one remote address at most',
        1,
        HTTP_CONNECTIONS_MAX_LIMIT,
      ),
      headersTimeoutMs: duration('headersTimeoutMs', "the time a client has to send a request's headers", 1, HTTP_TIMEOUT_MS_LIMIT),
      requestTimeoutMs: duration('requestTimeoutMs', 'the time a client has to send a whole request', 1, HTTP_TIMEOUT_MS_LIMIT),
      idempotencyKeysMax: int('idempotencyKeysMax', 'Idempotency-Keys remembered, 0 = off', 0, HTTP_IDEMPOTENCY_KEYS_MAX_LIMIT),
      idempotencyKeyAgeMs: duration(
        'idempotencyKeyAgeMs',
        'how long an Idempotency-Key is remembered',
        1000,
        HTTP_IDEMPOTENCY_KEY_AGE_MS_LIMIT,
      ),
    }),
  };
}

/** `o` without its undefined values (the settings a module file left out keep the HttpIngress default). */
function defined<T extends Record<string, number | undefined>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** `io.statefn.http.v1/ingress`. */
export const httpIngressKind: ConnectorKind<HttpIngressDocument> = {
  kinds: [HTTP_INGRESS_KIND],
  role: 'ingress',
  parse: (doc, r) => parseHttpIngress(r, doc.spec),
  build: (d, { app }) => {
    app.ingress(
      new HttpIngress({
        id: d.id,
        host: d.host,
        port: d.port,
        requestsInFlightMax: d.requestsInFlightMax,
        ...defined({
          bodyBytesMax: d.bodyBytesMax,
          connectionsMax: d.connectionsMax,
          connectionsPerClientMax: d.connectionsPerClientMax,
          headersTimeoutMs: d.headersTimeoutMs,
          requestTimeoutMs: d.requestTimeoutMs,
          idempotencyKeysMax: d.idempotencyKeysMax,
          idempotencyKeyAgeMs: d.idempotencyKeyAgeMs,
        }),
      }),
    );
  },
};
