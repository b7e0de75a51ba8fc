/**
 * Turns module.yaml descriptors into connectors on an App. Runs on the main thread only; workers
 * learn the egress ids it adds through their init data.
 */
import { App } from '../api/app.js';
import type { RoutedMessage } from '../api/connector_api.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { Message } from '../api/message.js';
import { Types } from '../api/types.js';
import { GeneratorIngress } from '../connectors/generator/generator_ingress.js';
import type { Rng } from '../connectors/generator/rng.js';
import { HttpIngress } from '../connectors/http/http_ingress.js';
import { FileEgress, StdoutEgress } from '../connectors/file/file_egress.js';
import { KafkaEgress } from '../connectors/kafka/kafka_egress.js';
import { KafkaIngress } from '../connectors/kafka/kafka_ingress.js';
import type { GeneratorIngressDocument, ModuleDocument } from './module_yaml.js';
import type { ConnectorKind } from '../api/connector_kind.js';
import { loadModuleYaml } from './module_yaml.js';

function where(d: ModuleDocument): string {
  const s = d.source;
  return `${s.file}:${s.line}: document ${s.document} (${d.kind})`;
}

function generator(d: GeneratorIngressDocument): GeneratorIngress<RoutedMessage[]> {
  const keyOf = (rng: Rng): string =>
    String(d.keyDistribution === 'uniform' ? rng.int(d.keySpace) : rng.zipf(d.keySpace, d.keyDistribution.exponent));
  const value = (i: number, key: string): Message => {
    if (d.valueType === Types.long.typename) return Message.of(Types.long, i);
    if (d.valueType === Types.string.typename) return Message.of(Types.string, String(i));
    return Message.of(Types.json(d.valueType), { seq: i, key });
  };
  const opts: ConstructorParameters<typeof GeneratorIngress<RoutedMessage[]>>[0] = {
    id: d.id,
    ratePerSec: d.ratePerSec,
    batchSize: d.batchSize,
    seed: d.seed,
    make: (i, rng) => {
      const key = keyOf(rng);
      const m = value(i, key);
      return d.targets.map((t) => ({ to: { typename: t, id: key }, message: m }));
    },
  };
  if (d.count !== undefined) opts.count = d.count;
  return new GeneratorIngress<RoutedMessage[]>(opts);
}

/**
 * Read the module.yaml at `file` and add what it declares to `app`, building connectors with
 * `kinds` (the engine's EngineOptions.connectorKinds). The engine calls only this.
 */
export async function loadModuleInto(app: App, file: string, kinds: readonly ConnectorKind[]): Promise<void> {
  void kinds; // PROVISIONAL: the connectors-as-plug-ins step builds every connector through `kinds`.
  applyModuleDocuments(app, await loadModuleYaml(file));
}

/** Add the connectors and options the documents describe to `app`. */
export function applyModuleDocuments(app: App, docs: readonly ModuleDocument[]): App {
  for (const d of docs) {
    switch (d.kind) {
      case 'generator-ingress':
        // Each record is an array of routed messages (one per target): the router flattens it.
        app.ingress(generator(d), (r: RoutedMessage[]) => r);
        break;
      case 'http-ingress':
        app.ingress(new HttpIngress({ id: d.id, host: d.host, port: d.port, bodyBytesMax: d.bodyBytesMax, requestsInFlightMax: d.requestsInFlightMax }));
        break;
      case 'file-egress':
        app.egress(d.path === '-' ? new StdoutEgress({ id: d.id }) : new FileEgress({ id: d.id, path: d.path }));
        break;
      case 'engine-config':
        app.configure({ ...d.options });
        break;
      case 'kafka-ingress':
        app.ingress(new KafkaIngress({
          id: d.id,
          address: d.address,
          consumerGroupId: d.consumerGroupId,
          topics: d.topics,
          startupPosition: d.startupPosition,
          autoOffsetResetPosition: d.autoOffsetResetPosition,
          properties: d.properties,
          ...(d.deadLetterTopic !== undefined ? { deadLetterTopic: d.deadLetterTopic } : {}),
          source: `${d.source.file}:${d.source.line}`,
        }));
        break;
      case 'kafka-egress':
        app.egress(new KafkaEgress({
          id: d.id,
          address: d.address,
          deliverySemantic: d.deliverySemantic,
          properties: d.properties,
          source: `${d.source.file}:${d.source.line}`,
        }));
        break;
      case 'endpoint':
        if (d.transport.tls !== undefined) {
          throw new StatefnError(ErrorCode.MODULE_KIND_UNSUPPORTED, `${where(d)}: transport TLS settings (trust_cacerts, client_cert, client_key) are not supported yet; use an https URL with a certificate Node trusts (NODE_EXTRA_CA_CERTS), or remove them`);
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
          source: `${d.source.file}:${d.source.line}`,
        });
        break;
      default: {
        const never: never = d;
        throw new StatefnError(ErrorCode.INVARIANT, `unhandled module document ${JSON.stringify(never)}`);
      }
    }
  }
  return app;
}

export function emptyApp(): App {
  return new App();
}
