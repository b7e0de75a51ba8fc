/**
 * The Kafka connector's module.yaml kinds, `io.statefun.kafka.v1/ingress` and
 * `io.statefun.kafka.v1/egress`: their descriptors, their schema (as upstream's Kafka binders,
 * plus statefn's `deadLetterTopic`) and how they become a {@link KafkaIngress} or
 * {@link KafkaEgress}.
 */
import type { ConnectorDescriptor, ConnectorKind, ModuleReader, YamlEntry, YamlMap, YamlNode } from '../../api/connector_kind.js';
import type { ModuleSource } from '../../api/connector_kind.js';
import { KafkaEgress, type KafkaDeliverySemantic } from './kafka_egress.js';
import { KafkaIngress, type KafkaStartupPosition } from './kafka_ingress.js';

export const KAFKA_INGRESS_KIND = 'io.statefun.kafka.v1/ingress';
export const KAFKA_EGRESS_KIND = 'io.statefun.kafka.v1/egress';
const INT32_MAX = 2_147_483_647;
/** Kafka's own bound on a topic name. */
const KAFKA_TOPIC_LENGTH_MAX = 249;
/** Any timeout written in module.yaml at most: a week. */
const TIMEOUT_MS_MAX = 7 * 86_400_000;

export type { KafkaDeliverySemantic, KafkaStartupPosition };

export interface KafkaIngressTopic {
  readonly topic: string;
  /** Type name given to each record value; the value bytes are used as they are. */
  readonly valueType: string;
  /** Function types every record is sent to; the record key is the function id. */
  readonly targets: readonly string[];
}

/** `io.statefun.kafka.v1/ingress`. */
export interface KafkaIngressDocument extends ConnectorDescriptor {
  readonly kind: 'kafka-ingress';
  readonly source: ModuleSource;
  readonly id: string;
  /** Bootstrap brokers, `host:port[,host:port...]`. */
  readonly address: string;
  readonly consumerGroupId: string;
  readonly startupPosition: KafkaStartupPosition;
  readonly autoOffsetResetPosition: 'earliest' | 'latest';
  readonly topics: readonly KafkaIngressTopic[];
  /** Extra Kafka consumer properties, as strings. */
  readonly properties: Readonly<Record<string, string>>;
  /** statefn extension: the topic for records that cannot be decoded or routed. */
  readonly deadLetterTopic?: string;
}

/** `io.statefun.kafka.v1/egress`. */
export interface KafkaEgressDocument extends ConnectorDescriptor {
  readonly kind: 'kafka-egress';
  readonly source: ModuleSource;
  readonly id: string;
  readonly address: string;
  readonly deliverySemantic: KafkaDeliverySemantic;
  /** Extra Kafka producer properties, as strings. */
  readonly properties: Readonly<Record<string, string>>;
}

// ---- Kafka -------------------------------------------------------------------------------------

const BROKER = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

function checkBrokers(r: ModuleReader, value: string, path: string, node: YamlNode): string {
  const parts = value.split(',').map((p) => p.trim());
  for (const part of parts) {
    const m = BROKER.exec(part);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      r.fail(
        path,
        node.pos,
        `expected host:port[,host:port...] (Kafka bootstrap brokers), got ${JSON.stringify(value)}: '${part}' is not host:port`,
        {
          fix: "write e.g. 'kafka-broker:9092' or 'k1:9092,k2:9092'",
        },
      );
    }
  }
  return parts.join(',');
}

/** `address`, or `bootstrap.servers` in properties (named settings win, as upstream documents). */
function kafkaAddress(r: ModuleReader, spec: YamlMap, properties: Record<string, string>): string {
  const entry = spec.entries.get('address');
  if (entry !== undefined) {
    const value = r.string(entry.value, 'spec.address', 'Kafka bootstrap brokers, host:port[,host:port...]');
    return checkBrokers(r, value, 'spec.address', entry.value);
  }
  const fromProps = properties['bootstrap.servers'];
  const propsNode = spec.entries.get('properties')?.value;
  if (fromProps !== undefined && propsNode !== undefined) {
    return checkBrokers(r, fromProps, 'spec.properties["bootstrap.servers"]', propsNode);
  }
  return r.fail(
    'spec.address',
    spec.pos,
    "required key 'address' is missing; expected the Kafka bootstrap brokers, host:port[,host:port...]",
    {
      fix: "add e.g. 'address: kafka-broker:9092'",
    },
  );
}

function parseTopicName(r: ModuleReader, node: YamlNode, path: string): string {
  const topic = r.string(node, path, 'a Kafka topic name');
  if (topic.length > KAFKA_TOPIC_LENGTH_MAX || !/^[A-Za-z0-9._-]+$/.test(topic) || topic === '.' || topic === '..') {
    r.fail(
      path,
      node.pos,
      `expected a Kafka topic name (letters, digits, '.', '_', '-'; at most ${KAFKA_TOPIC_LENGTH_MAX} characters), got ${r.found(node)}`,
    );
  }
  return topic;
}

const STARTUP_TYPES = ['earliest', 'latest', 'group-offsets', 'specific-offsets', 'date'] as const;

function parseStartupPosition(r: ModuleReader, node: YamlNode, path: string): KafkaStartupPosition {
  const map = r.map(node, path, `the startup position, e.g. {type: earliest}; type is one of ${STARTUP_TYPES.join(', ')}`);
  const type = r.oneOf(
    r.required(map, 'type', path, `one of ${STARTUP_TYPES.join(', ')}`).value,
    `${path}.type`,
    'where the ingress starts reading',
    STARTUP_TYPES,
  );
  const hints = {
    offsets: `'offsets' is read only when type is specific-offsets`,
    date: `'date' is read only when type is date`,
  };
  switch (type) {
    case 'earliest':
    case 'latest':
    case 'group-offsets':
      r.onlyKeys(map, path, ['type'], hints);
      return { type };
    case 'specific-offsets': {
      r.onlyKeys(map, path, ['type', 'offsets'], hints);
      const offsetsNode = r.required(map, 'offsets', path, "a list of 'topic/partition: offset' entries").value;
      const offsets: Record<string, number> = {};
      const add = (entry: YamlEntry, entryPath: string): void => {
        const slash = entry.key.lastIndexOf('/');
        const partition = slash > 0 && /^\d+$/.test(entry.key.slice(slash + 1)) ? Number(entry.key.slice(slash + 1)) : -1;
        if (partition < 0 || partition > INT32_MAX) {
          r.fail(
            entryPath,
            entry.keyPos,
            `expected a 'topic/partition' key with a partition in [0, ${INT32_MAX}], got ${JSON.stringify(entry.key)}`,
            {
              fix: "write e.g. '- user-topic/0: 91'",
            },
          );
        }
        if (Object.hasOwn(offsets, entry.key)) r.fail(entryPath, entry.keyPos, `partition ${entry.key} has two offsets`);
        offsets[entry.key] = r.int(entry.value, entryPath, 'a starting offset', { min: 0, max: Number.MAX_SAFE_INTEGER });
      };
      if (offsetsNode.t === 'map') {
        for (const e of offsetsNode.entries.values()) add(e, r.key(`${path}.offsets`, e.key));
      } else {
        r.list(offsetsNode, `${path}.offsets`, "'topic/partition: offset' entries", 1).forEach((item, i) => {
          const itemPath = r.index(`${path}.offsets`, i);
          if (item.t !== 'map' || item.entries.size !== 1) {
            r.fail(
              itemPath,
              item.pos,
              `expected a one-key mapping 'topic/partition: offset' (e.g. '- user-topic/0: 91'), got ${r.found(item)}`,
            );
          }
          const e = [...item.entries.values()][0]!;
          add(e, r.key(itemPath, e.key));
        });
      }
      if (Object.keys(offsets).length === 0)
        r.fail(`${path}.offsets`, offsetsNode.pos, 'expected at least one topic/partition offset, got none');
      return { type, offsets };
    }
    case 'date': {
      r.onlyKeys(map, path, ['type', 'date'], hints);
      const dateNode = r.required(map, 'date', path, "a date such as '2020-02-01 04:15:00.000 +0000'").value;
      return { type, date: parseStartupDate(r, dateNode, `${path}.date`) };
    }
  }
}

/**
 * Upstream parses `yyyy-MM-dd HH:mm:ss.SSS Z` (e.g. `2020-02-01 04:15:00.000 +0000`). statefn
 * accepts that, with 0-9 fraction digits and `Z`/`+HH:MM` offsets, and ISO 8601 with a `T`. A zone
 * is required: a date without one means different instants on different hosts.
 */
function parseStartupDate(r: ModuleReader, node: YamlNode, path: string): number {
  const s = r.string(node, path, 'a date');
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})$/.exec(s.trim());
  let ms = Number.NaN;
  if (m) {
    const [, y, mo, d, h, mi, sec, frac, zone] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string | undefined,
      string,
    ];
    const millis = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
    const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), millis);
    const check = new Date(utc);
    const fieldsValid =
      check.getUTCFullYear() === Number(y) &&
      check.getUTCMonth() === Number(mo) - 1 &&
      check.getUTCDate() === Number(d) &&
      Number(h) < 24 &&
      Number(mi) < 60 &&
      Number(sec) < 60;
    let offsetMin = 0;
    if (zone !== 'Z') {
      const digits = zone.replace(':', '');
      offsetMin = (zone.startsWith('-') ? -1 : 1) * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
    }
    if (fieldsValid) ms = utc - offsetMin * 60_000;
  }
  if (!Number.isFinite(ms)) {
    r.fail(
      path,
      node.pos,
      `expected a date with a zone, as 'yyyy-MM-dd HH:mm:ss.SSS Z' (e.g. '2020-02-01 04:15:00.000 +0000') or ISO 8601 ` +
        `('2020-02-01T04:15:00Z'), got ${r.found(node)}`,
    );
  }
  return ms;
}

function parseKafkaIngress(r: ModuleReader, spec: YamlMap): KafkaIngressDocument {
  r.onlyKeys(
    spec,
    'spec',
    ['id', 'address', 'consumerGroupId', 'startupPosition', 'autoOffsetResetPosition', 'topics', 'properties', 'deadLetterTopic'],
    {
      topic: "topics are a list under 'topics', each {topic, valueType, targets}",
      groupId: "the consumer group is 'consumerGroupId'",
    },
  );
  const idNode = r.required(spec, 'id', 'spec', "the ingress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the ingress id');
  const properties = r.properties(spec.entries.get('properties')?.value, 'spec.properties');
  const address = kafkaAddress(r, spec, properties);

  const groupEntry = spec.entries.get('consumerGroupId');
  let consumerGroupId: string;
  if (groupEntry !== undefined) consumerGroupId = r.string(groupEntry.value, 'spec.consumerGroupId', 'the Kafka consumer group');
  else if (properties['group.id'] !== undefined && properties['group.id'] !== '') consumerGroupId = properties['group.id'];
  else {
    return r.fail(
      'spec.consumerGroupId',
      spec.pos,
      "required key 'consumerGroupId' is missing; expected the Kafka consumer group id (statefn's consumer needs one)",
      {
        fix: "add e.g. 'consumerGroupId: my-consumer-group'",
      },
    );
  }

  const startEntry = spec.entries.get('startupPosition');
  // Upstream's code defaults to latest (KafkaIngressBuilder), though its docs say group-offsets.
  const startupPosition: KafkaStartupPosition = startEntry
    ? parseStartupPosition(r, startEntry.value, 'spec.startupPosition')
    : { type: 'latest' };
  const resetEntry = spec.entries.get('autoOffsetResetPosition');
  const autoOffsetResetPosition = resetEntry
    ? r.oneOf(
        resetEntry.value,
        'spec.autoOffsetResetPosition',
        'where to start when a stored offset is out of range',
        ['earliest', 'latest'],
        { caseInsensitive: true },
      )
    : 'latest';

  const topicsNode = r.required(spec, 'topics', 'spec', 'a list of {topic, valueType, targets}').value;
  const seenTopics = new Map<string, number>();
  const topics = r
    .list(topicsNode, 'spec.topics', 'the topics to read, each {topic, valueType, targets}', 1)
    .map((item, i): KafkaIngressTopic => {
      const path = r.index('spec.topics', i);
      const t = r.map(item, path, 'a topic: {topic, valueType, targets}');
      r.onlyKeys(t, path, ['topic', 'valueType', 'targets'], { target: "the key is 'targets' (a list)", type: "the key is 'valueType'" });
      const topicNode = r.required(t, 'topic', path, 'a Kafka topic name').value;
      const topic = parseTopicName(r, topicNode, `${path}.topic`);
      const previous = seenTopics.get(topic);
      if (previous !== undefined) {
        r.fail(`${path}.topic`, topicNode.pos, `topic '${topic}' is listed twice (also at spec.topics[${previous}])`, {
          fix: 'merge the two entries: one entry may list several targets',
        });
      }
      seenTopics.set(topic, i);
      const valueType = r.typeName(
        r.required(t, 'valueType', path, "the record value's type name").value,
        `${path}.valueType`,
        "the record value's type name",
      );
      const seenTargets = new Set<string>();
      const targets = r
        .list(
          r.required(t, 'targets', path, 'a list of function types').value,
          `${path}.targets`,
          'function types that receive each record',
          1,
        )
        .map((tn, j) => {
          const target = r.typeName(tn, r.index(`${path}.targets`, j), 'a function type that receives each record');
          if (seenTargets.has(target))
            r.fail(r.index(`${path}.targets`, j), tn.pos, `target '${target}' is listed twice; each record would be delivered to it twice`);
          seenTargets.add(target);
          return target;
        });
      return { topic, valueType, targets };
    });

  if (startupPosition.type === 'specific-offsets') {
    for (const key of Object.keys(startupPosition.offsets)) {
      const topic = key.slice(0, key.lastIndexOf('/'));
      if (!seenTopics.has(topic)) {
        const offsetsNode = startEntry?.value.t === 'map' ? startEntry.value.entries.get('offsets')?.value : undefined;
        r.fail(
          'spec.startupPosition.offsets',
          offsetsNode?.pos,
          `offset given for '${key}', but topic '${topic}' is not in spec.topics (${[...seenTopics.keys()].join(', ')})`,
          {
            fix: 'fix the topic name or remove the entry',
          },
        );
      }
    }
  }

  // statefn extension: where records that cannot be decoded or routed go (default: the engine's dead letters).
  const dltEntry = spec.entries.get('deadLetterTopic');
  const deadLetterTopic = dltEntry ? parseTopicName(r, dltEntry.value, 'spec.deadLetterTopic') : undefined;
  if (deadLetterTopic !== undefined && seenTopics.has(deadLetterTopic)) {
    r.fail(
      'spec.deadLetterTopic',
      dltEntry!.value.pos,
      `the dead-letter topic '${deadLetterTopic}' is also read by this ingress; its records would come back`,
      {
        fix: 'use a topic this ingress does not read',
      },
    );
  }

  const doc: KafkaIngressDocument = {
    kind: 'kafka-ingress',
    source: r.source,
    id,
    address,
    consumerGroupId,
    startupPosition,
    autoOffsetResetPosition,
    topics,
    properties,
    ...(deadLetterTopic !== undefined ? { deadLetterTopic } : {}),
  };
  return doc;
}

const DELIVERY_TYPES = ['exactly-once', 'at-least-once', 'none'] as const;

function parseKafkaEgress(r: ModuleReader, spec: YamlMap): KafkaEgressDocument {
  r.onlyKeys(spec, 'spec', ['id', 'address', 'deliverySemantic', 'properties'], {
    topic: 'the topic of each record is chosen by the function (KafkaProducerRecord.topic), not in module.yaml',
    topics: 'the topic of each record is chosen by the function (KafkaProducerRecord.topic), not in module.yaml',
  });
  const idNode = r.required(spec, 'id', 'spec', "the egress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the egress id');
  const properties = r.properties(spec.entries.get('properties')?.value, 'spec.properties');
  const address = kafkaAddress(r, spec, properties);

  let deliverySemantic: KafkaDeliverySemantic = { type: 'at-least-once' }; // upstream default
  const dsEntry = spec.entries.get('deliverySemantic');
  if (dsEntry !== undefined) {
    const path = 'spec.deliverySemantic';
    const ds = r.map(dsEntry.value, path, `the delivery semantic, e.g. {type: at-least-once}; type is one of ${DELIVERY_TYPES.join(', ')}`);
    const type = r.oneOf(
      r.required(ds, 'type', path, `one of ${DELIVERY_TYPES.join(', ')}`).value,
      `${path}.type`,
      'the delivery guarantee',
      DELIVERY_TYPES,
    );
    if (type === 'exactly-once') {
      r.onlyKeys(ds, path, ['type', 'transactionTimeout', 'transactionTimeoutMillis']);
      const modern = ds.entries.get('transactionTimeout');
      // Deprecated upstream but still read (and preferred) there; its docs example writes a
      // duration (`15min`) in it, so it is read as a duration here too (a bare number is ms).
      const legacy = ds.entries.get('transactionTimeoutMillis');
      if (modern && legacy) {
        r.fail(
          `${path}.transactionTimeoutMillis`,
          legacy.keyPos,
          'the transaction timeout is set twice (transactionTimeout and the deprecated transactionTimeoutMillis)',
          {
            fix: 'keep only transactionTimeout',
          },
        );
      }
      const entry = modern ?? legacy;
      if (entry === undefined) {
        return r.fail(
          `${path}.transactionTimeout`,
          ds.pos,
          "required key 'transactionTimeout' is missing; expected the Kafka transaction timeout for exactly-once delivery",
          {
            fix: "add e.g. 'transactionTimeout: 15min' (at most the broker's transaction.max.timeout.ms)",
          },
        );
      }
      const transactionTimeoutMs = r.duration(entry.value, `${path}.${entry.key}`, 'the Kafka transaction timeout', {
        min: 1,
        max: TIMEOUT_MS_MAX,
      });
      deliverySemantic = { type, transactionTimeoutMs };
    } else {
      const hint = "'transactionTimeout' is read only when type is exactly-once";
      r.onlyKeys(ds, path, ['type'], { transactionTimeout: hint, transactionTimeoutMillis: hint });
      deliverySemantic = { type };
    }
  }

  const doc: KafkaEgressDocument = { kind: 'kafka-egress', source: r.source, id, address, deliverySemantic, properties };
  return doc;
}

/** `io.statefun.kafka.v1/ingress`: records of Kafka topics, each routed to its targets by the record key. */
export const kafkaIngressKind: ConnectorKind<KafkaIngressDocument> = {
  kinds: [KAFKA_INGRESS_KIND],
  role: 'ingress',
  parse: (doc, r) => parseKafkaIngress(r, doc.spec),
  build: (d, { app, where }) => {
    app.ingress(
      new KafkaIngress({
        id: d.id,
        address: d.address,
        consumerGroupId: d.consumerGroupId,
        topics: d.topics,
        startupPosition: d.startupPosition,
        autoOffsetResetPosition: d.autoOffsetResetPosition,
        properties: d.properties,
        ...(d.deadLetterTopic !== undefined ? { deadLetterTopic: d.deadLetterTopic } : {}),
        source: where,
      }),
    );
  },
};

/** `io.statefun.kafka.v1/egress`: records written to the topics the functions name. */
export const kafkaEgressKind: ConnectorKind<KafkaEgressDocument> = {
  kinds: [KAFKA_EGRESS_KIND],
  role: 'egress',
  parse: (doc, r) => parseKafkaEgress(r, doc.spec),
  build: (d, { app, where }) => {
    app.egress(
      new KafkaEgress({
        id: d.id,
        address: d.address,
        deliverySemantic: d.deliverySemantic,
        properties: d.properties,
        source: where,
      }),
    );
  },
};
