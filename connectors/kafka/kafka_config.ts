/**
 * Kafka client settings: StateFun's module.yaml gives Kafka (Java client) properties as strings;
 * kafkajs takes a config object. This maps the properties kafkajs has an equivalent for and
 * reports the rest, so a property is never silently ignored.
 */
import { Kafka, logLevel, type ConsumerConfig, type KafkaConfig, type LogEntry, type ProducerConfig, type SASLOptions } from 'kafkajs';
import type { Logger } from '../../api/connector_api.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';

/** Properties read by statefn itself rather than the client. */
const STATEFN_PROPERTIES = new Set(['group.id', 'bootstrap.servers', 'isolation.level', 'transactional.id', 'transaction.timeout.ms']);

/** Java-client properties with no kafkajs equivalent that are harmless to drop (logged once at info). */
const IGNORED_PROPERTIES = new Set([
  'auto.offset.reset', // statefn reads autoOffsetResetPosition / startupPosition
  'enable.auto.commit', // statefn commits after checkpoints
  'key.deserializer',
  'value.deserializer',
  'key.serializer',
  'value.serializer',
  'enable.idempotence', // follows the delivery semantic
  'acks', // follows the delivery semantic
  'linger.ms',
  'batch.size',
  'compression.type',
  'buffer.memory',
  'receive.buffer.bytes',
  'send.buffer.bytes',
]);

export interface ClientSettings {
  kafka: KafkaConfig;
  consumer: Partial<ConsumerConfig>;
  producer: Partial<ProducerConfig>;
  /** Properties kafkajs has no equivalent for. */
  unsupported: string[];
}

function int(where: string, key: string, v: string, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}: property '${key}' must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Parse `org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";`. */
function jaasCredentials(where: string, jaas: string): { username: string; password: string } {
  const user = /username\s*=\s*"([^"]*)"/.exec(jaas)?.[1];
  const pass = /password\s*=\s*"([^"]*)"/.exec(jaas)?.[1];
  if (user === undefined || pass === undefined) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `${where}: property 'sasl.jaas.config' must set username="..." and password="..." (PlainLoginModule or ScramLoginModule)`,
    );
  }
  return { username: user, password: pass };
}

/**
 * Client settings for bootstrap `address` (host:port,...) and Kafka `properties`. `where` names
 * the connector in errors, e.g. `kafka ingress com.example/orders (module.yaml:12)`.
 */
export function clientSettings(
  where: string,
  clientId: string,
  address: string,
  properties: Readonly<Record<string, string>>,
): ClientSettings {
  const brokers = address
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (brokers.length === 0)
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}: no Kafka brokers given; set the address to host:port[,host:port...]`);
  const kafka: KafkaConfig = { brokers, clientId: properties['client.id'] ?? clientId, logLevel: logLevel.NOTHING };
  const consumer: Partial<ConsumerConfig> = {};
  const producer: Partial<ProducerConfig> = {};
  const unsupported: string[] = [];
  const protocol = (properties['security.protocol'] ?? 'PLAINTEXT').toUpperCase();
  if (protocol === 'SSL' || protocol === 'SASL_SSL') kafka.ssl = true;
  else if (protocol !== 'PLAINTEXT' && protocol !== 'SASL_PLAINTEXT') {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `${where}: property 'security.protocol' must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, ` +
        `got ${JSON.stringify(properties['security.protocol'])}`,
    );
  }
  if (protocol.startsWith('SASL')) {
    const mechanism = (properties['sasl.mechanism'] ?? 'PLAIN').toUpperCase();
    const jaas = properties['sasl.jaas.config'];
    if (jaas === undefined)
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `${where}: security.protocol ${protocol} needs 'sasl.jaas.config' with username and password`,
      );
    const creds = jaasCredentials(where, jaas);
    const sasl: SASLOptions =
      mechanism === 'PLAIN'
        ? { mechanism: 'plain', ...creds }
        : mechanism === 'SCRAM-SHA-256'
          ? { mechanism: 'scram-sha-256', ...creds }
          : mechanism === 'SCRAM-SHA-512'
            ? { mechanism: 'scram-sha-512', ...creds }
            : (() => {
                throw new StatefnError(
                  ErrorCode.CONFIG_INVALID,
                  `${where}: sasl.mechanism ${mechanism} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 are)`,
                );
              })();
    kafka.sasl = sasl;
  }
  for (const [key, v] of Object.entries(properties)) {
    switch (key) {
      case 'client.id':
      case 'security.protocol':
      case 'sasl.mechanism':
      case 'sasl.jaas.config':
        break;
      case 'request.timeout.ms':
        kafka.requestTimeout = int(where, key, v, 1);
        break;
      case 'socket.connection.setup.timeout.ms':
        kafka.connectionTimeout = int(where, key, v, 1);
        break;
      case 'session.timeout.ms':
        consumer.sessionTimeout = int(where, key, v, 1);
        break;
      case 'heartbeat.interval.ms':
        consumer.heartbeatInterval = int(where, key, v, 1);
        break;
      case 'max.poll.interval.ms':
        consumer.rebalanceTimeout = int(where, key, v, 1);
        break;
      case 'max.partition.fetch.bytes':
        consumer.maxBytesPerPartition = int(where, key, v, 1);
        break;
      case 'fetch.max.bytes':
        consumer.maxBytes = int(where, key, v, 1);
        break;
      case 'fetch.min.bytes':
        consumer.minBytes = int(where, key, v, 0);
        break;
      case 'fetch.max.wait.ms':
        consumer.maxWaitTimeInMs = int(where, key, v, 0);
        break;
      case 'metadata.max.age.ms':
        consumer.metadataMaxAge = producer.metadataMaxAge = int(where, key, v, 0);
        break;
      case 'allow.auto.create.topics':
        consumer.allowAutoTopicCreation = v === 'true';
        break;
      case 'client.rack':
        consumer.rackId = v;
        break;
      case 'max.in.flight.requests.per.connection':
        producer.maxInFlightRequests = int(where, key, v, 1);
        break;
      default:
        if (STATEFN_PROPERTIES.has(key)) break;
        unsupported.push(key);
    }
  }
  return { kafka, consumer, producer, unsupported };
}

/** Log the properties kafkajs cannot honour (once, at start). */
export function reportUnsupported(where: string, s: ClientSettings, logger: Logger): void {
  const dropped = s.unsupported.filter((k) => !IGNORED_PROPERTIES.has(k));
  const ignored = s.unsupported.filter((k) => IGNORED_PROPERTIES.has(k));
  if (ignored.length > 0) logger.info(`${where}: properties handled by statefn itself, ignored: ${ignored.join(', ')}`);
  if (dropped.length > 0)
    logger.warn(`${where}: properties with no equivalent in the Kafka client (kafkajs), ignored: ${dropped.join(', ')}`);
}

/** Lines of kafkajs's own log passed on per minute (a broker outage makes it log on every retry). */
const CLIENT_LOG_LINES_PER_MINUTE = 20;

/**
 * A kafkajs client whose warnings and errors go to the engine's log (as warnings, prefixed with
 * `where`, at most 20 lines a minute with a count of what was left out).
 */
export function newKafka(s: ClientSettings, where: string, logger: Logger): Kafka {
  let windowStart = 0;
  let inWindow = 0;
  let suppressed = 0;
  const logCreator =
    () =>
    ({ level, log }: LogEntry): void => {
      if (level > logLevel.WARN) return;
      const now = Date.now();
      if (now - windowStart > 60_000) {
        if (suppressed > 0) logger.warn(`${where}: kafkajs: ${suppressed} more client log lines in the last minute were not shown`);
        windowStart = now;
        inWindow = 0;
        suppressed = 0;
      }
      if (++inWindow > CLIENT_LOG_LINES_PER_MINUTE) {
        suppressed++;
        return;
      }
      const { message, error } = log as { message?: string; error?: string };
      logger.warn(`${where}: kafkajs ${level === logLevel.ERROR ? 'error' : 'warning'}: ${message ?? ''}${error ? ` (${error})` : ''}`);
    };
  return new Kafka({ ...s.kafka, logLevel: logLevel.WARN, logCreator });
}

/** A kafkajs error in one line, with its type (KafkaJSNumberOfRetriesExceeded, ...) and cause. */
export function describeKafkaError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  const causeText = cause instanceof Error && cause.message !== e.message ? `; cause: ${cause.message}` : '';
  return `${e.name}: ${e.message}${causeText}`;
}
