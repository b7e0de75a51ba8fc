/**
 * The HTTP ingress's module.yaml kind, `io.statefn.http.v1/ingress`: messages POSTed over HTTP;
 * its descriptor, schema and how it becomes an {@link HttpIngress}.
 */
import type { ConnectorDescriptor, ConnectorKind, ModuleReader, YamlMap, YamlNode } from '../../api/connector_kind.js';
import { HttpIngress } from './http_ingress.js';

export const HTTP_INGRESS_KIND = 'io.statefn.http.v1/ingress';
/** Defaults and bounds of the HTTP ingress's settings in module.yaml. */
const HTTP_HOST_DEFAULT = '127.0.0.1';
const HTTP_PORT_DEFAULT = 8090;
const HTTP_BODY_BYTES_MAX_LIMIT = 256 * 1024 * 1024;
const HTTP_BODY_BYTES_MAX_DEFAULT = 1024 * 1024;
const HTTP_REQUESTS_IN_FLIGHT_MAX_LIMIT = 65536;
const HTTP_REQUESTS_IN_FLIGHT_MAX_DEFAULT = 256;

/** `io.statefn.http.v1/ingress`: messages POSTed over HTTP. */
export interface HttpIngressDocument extends ConnectorDescriptor {
  readonly kind: 'http-ingress';
  readonly id: string;
  readonly host: string;
  /** 0 = any free port. */
  readonly port: number;
  readonly bodyBytesMax: number;
  readonly requestsInFlightMax: number;
}

function parseHttpIngress(r: ModuleReader, spec: YamlMap): HttpIngressDocument {
  r.onlyKeys(spec, 'spec', ['id', 'host', 'port', 'bodyBytesMax', 'requestsInFlightMax']);
  const get = (k: string): YamlNode | undefined => spec.entries.get(k)?.value;
  const idNode = r.required(spec, 'id', 'spec', "the ingress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the ingress id');
  const hostNode = get('host');
  const portNode = get('port');
  const bodyNode = get('bodyBytesMax');
  const inFlightNode = get('requestsInFlightMax');
  const doc: HttpIngressDocument = {
    kind: 'http-ingress',
    source: r.source,
    id,
    host: hostNode ? r.string(hostNode, 'spec.host', 'the address to listen on') : HTTP_HOST_DEFAULT,
    port: portNode
      ? r.int(portNode, 'spec.port', 'the TCP port to listen on, 0 = any free port', { min: 0, max: 65535 })
      : HTTP_PORT_DEFAULT,
    bodyBytesMax: bodyNode
      ? r.bytes(bodyNode, 'spec.bodyBytesMax', 'largest request body', { min: 1, max: HTTP_BODY_BYTES_MAX_LIMIT })
      : HTTP_BODY_BYTES_MAX_DEFAULT,
    requestsInFlightMax: inFlightNode
      ? r.int(inFlightNode, 'spec.requestsInFlightMax', 'requests served concurrently', { min: 1, max: HTTP_REQUESTS_IN_FLIGHT_MAX_LIMIT })
      : HTTP_REQUESTS_IN_FLIGHT_MAX_DEFAULT,
  };
  return doc;
}

/** `io.statefn.http.v1/ingress`. */
export const httpIngressKind: ConnectorKind<HttpIngressDocument> = {
  kinds: [HTTP_INGRESS_KIND],
  role: 'ingress',
  parse: (doc, r) => parseHttpIngress(r, doc.spec),
  build: (d, { app }) => {
    app.ingress(
      new HttpIngress({ id: d.id, host: d.host, port: d.port, bodyBytesMax: d.bodyBytesMax, requestsInFlightMax: d.requestsInFlightMax }),
    );
  },
};
