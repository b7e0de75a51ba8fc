// Proves the module.yaml loader reads StateFun 3.x files (and statefn's kinds) into the expected
// defaulted descriptors and rejects every mistake with a message naming file, line, document, path
// and expectation.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  endpointMatches,
  formatBytes,
  formatDurationMs,
  loadModuleYaml as loadModuleYamlWith,
  moduleKindNames,
  parseBytes,
  parseDurationMs,
  parseModuleYaml as parseModuleYamlWith,
} from '../../config/index.js';
import type { EndpointDocument, EngineConfigDocument } from '../../config/index.js';
import { functionUrlText as endpointUrl } from '../../api/endpoint.js';
import { builtinConnectorKinds } from '../../connectors/registry.js';
import type { KafkaEgressDocument, KafkaIngressDocument } from '../../connectors/kafka/kafka_kind.js';
import type { GeneratorIngressDocument } from '../../connectors/generator/generator_kind.js';
import type { HttpIngressDocument } from '../../connectors/http/http_kind.js';
import type { FileEgressDocument } from '../../connectors/file/file_kind.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';

/** The documents of the built-in kinds. */
type ModuleDocument =
  | EndpointDocument
  | KafkaIngressDocument
  | KafkaEgressDocument
  | GeneratorIngressDocument
  | HttpIngressDocument
  | FileEgressDocument
  | EngineConfigDocument;
const SUPPORTED_MODULE_KINDS = moduleKindNames(builtinConnectorKinds);
const parseModuleYaml = (text: string, file: string, env: Record<string, string | undefined>): ModuleDocument[] =>
  parseModuleYamlWith(text, file, env, builtinConnectorKinds) as ModuleDocument[];
const loadModuleYaml = async (file: string, env: Record<string, string | undefined>): Promise<ModuleDocument[]> =>
  (await loadModuleYamlWith(file, env, builtinConnectorKinds)) as ModuleDocument[];

const FILE = 'app/module.yaml';

function parse(text: string, env: Record<string, string | undefined> = {}): ModuleDocument[] {
  return parseModuleYaml(text, FILE, env);
}

/** Parse, expect a StatefnError with `code`, and return its message. */
function failure(text: string, code: string = ErrorCode.CONFIG_INVALID, env: Record<string, string | undefined> = {}): string {
  try {
    parse(text, env);
  } catch (err) {
    expect(err).toBeInstanceOf(StatefnError);
    expect((err as StatefnError).code).toBe(code);
    return (err as StatefnError).message;
  }
  throw new Error('expected parseModuleYaml to throw');
}

function only<K extends ModuleDocument['kind']>(docs: ModuleDocument[], kind: K): Extract<ModuleDocument, { kind: K }> {
  expect(docs).toHaveLength(1);
  expect(docs[0]!.kind).toBe(kind);
  return docs[0] as Extract<ModuleDocument, { kind: K }>;
}

const KAFKA_INGRESS_HEAD = `kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/users
  address: kafka-broker:9092
  consumerGroupId: my-consumer-group
`;

const TOPICS = `  topics:
    - topic: users
      valueType: com.example/User
      targets:
        - com.example.fns/greeter
`;

// ------------------------------------------------------------------------------------------------

describe('a realistic StateFun 3.x module.yaml', () => {
  // In the spirit of the upstream docs (modules/http-endpoint.md, modules/io/apache-kafka.md) and
  // the upstream binder test fixtures.
  const text = `# greeter application
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example.fns/*
  urlPathTemplate: https://functions.example.com:8080/statefun/{function.name}
  maxNumBatchRequests: 10000
  transport:
    type: io.statefun.transports.v1/async
    call: 2m
    connect: 20s
    pool_ttl: 15s
    pool_size: 1024
    payload_max_bytes: 33554432
---
kind: io.statefun.endpoints.v1/http
spec:
  functions: com.example.legacy/counter
  urlPathTemplate: http://legacy:8000/counter
  timeouts:
    call: 1minute
    connect: 30seconds
    read: 20seconds
    write: 10seconds
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/users
  address: kafka-broker:9092
  consumerGroupId: my-consumer-group
  startupPosition:
    type: specific-offsets
    offsets:
      - user-topic/0: 91
      - user-topic/1: 11
  autoOffsetResetPosition: earliest
  topics:
    - topic: user-topic
      valueType: com.example/User
      targets:
        - com.example.fns/greeter
        - com.example.fns/counter
    - topic: logins
      valueType: io.statefun.types/string
      targets:
        - com.example.fns/greeter
  properties:
    - max.poll.records: 500
    - isolation.level: read_committed
---
kind: io.statefun.kafka.v1/egress
spec:
  id: com.example/greetings
  address: kafka-broker:9092
  deliverySemantic:
    type: exactly-once
    transactionTimeout: 15min
  properties:
    - foo.config: bar
`;

  it('parses to the expected descriptors', () => {
    const docs = parse(text);
    expect(docs).toEqual([
      {
        kind: 'endpoint',
        source: { file: FILE, document: 1, line: 2 },
        version: 'v2',
        functions: 'com.example.fns/*',
        urlPathTemplate: 'https://functions.example.com:8080/statefun/{function.name}',
        maxNumBatchRequests: 10000,
        transport: {
          type: 'async',
          callMs: 120_000,
          connectMs: 20_000,
          poolTtlMs: 15_000,
          poolSize: 1024,
          payloadMaxBytes: 32 * 1024 * 1024,
        },
        onFailure: 'dead-letter',
      },
      {
        kind: 'endpoint',
        source: { file: FILE, document: 2, line: 15 },
        version: 'v1',
        functions: 'com.example.legacy/counter',
        urlPathTemplate: 'http://legacy:8000/counter',
        maxNumBatchRequests: 1000,
        transport: {
          type: 'okhttp',
          callMs: 60_000,
          connectMs: 30_000,
          readMs: 20_000,
          writeMs: 10_000,
          poolTtlMs: 15_000,
          poolSize: 1024,
          payloadMaxBytes: 32 * 1024 * 1024,
        },
        onFailure: 'dead-letter',
      },
      {
        kind: 'kafka-ingress',
        source: { file: FILE, document: 3, line: 25 },
        id: 'com.example/users',
        address: 'kafka-broker:9092',
        consumerGroupId: 'my-consumer-group',
        startupPosition: { type: 'specific-offsets', offsets: { 'user-topic/0': 91, 'user-topic/1': 11 } },
        autoOffsetResetPosition: 'earliest',
        topics: [
          { topic: 'user-topic', valueType: 'com.example/User', targets: ['com.example.fns/greeter', 'com.example.fns/counter'] },
          { topic: 'logins', valueType: 'io.statefun.types/string', targets: ['com.example.fns/greeter'] },
        ],
        properties: { 'max.poll.records': '500', 'isolation.level': 'read_committed' },
      },
      {
        kind: 'kafka-egress',
        source: { file: FILE, document: 4, line: 50 },
        id: 'com.example/greetings',
        address: 'kafka-broker:9092',
        deliverySemantic: { type: 'exactly-once', transactionTimeoutMs: 900_000 },
        properties: { 'foo.config': 'bar' },
      },
    ]);
  });

  it('resolves endpoint URLs and matches function types like upstream', () => {
    const [v2, v1] = parse(text) as [Extract<ModuleDocument, { kind: 'endpoint' }>, Extract<ModuleDocument, { kind: 'endpoint' }>];
    expect(endpointUrl(v2, 'com.example.fns/greeter')).toBe('https://functions.example.com:8080/statefun/greeter');
    expect(endpointMatches(v2, 'com.example.fns/greeter')).toBe(true);
    expect(endpointMatches(v2, 'com.example.fnsx/greeter')).toBe(false);
    expect(endpointMatches(v1, 'com.example.legacy/counter')).toBe(true);
    expect(endpointMatches(v1, 'com.example.legacy/other')).toBe(false);
  });

  it('accepts the same id for an ingress and an egress (separate namespaces, as in the upstream docs)', () => {
    const docs = parse(`${KAFKA_INGRESS_HEAD}${TOPICS}---
kind: io.statefun.kafka.v1/egress
spec:
  id: com.example/users
  address: kafka-broker:9092
`);
    expect(docs.map((d) => d.kind)).toEqual(['kafka-ingress', 'kafka-egress']);
  });

  it('skips empty documents and returns nothing for an empty file', () => {
    expect(parse('')).toEqual([]);
    expect(parse('# only a comment\n')).toEqual([]);
    const docs = parse(`---\n---\n# nothing\n---\nkind: io.statefn.file.v1/egress\nspec:\n  id: a.b/out\n  path: '-'\n---\n`);
    expect(docs).toEqual([{ kind: 'file-egress', source: { file: FILE, document: 3, line: 5 }, id: 'a.b/out', path: '-' }]);
  });
});

describe('HTTP endpoints', () => {
  it('defaults a minimal v2 endpoint to the async transport defaults (2 min call, 20 s connect)', () => {
    const e = only(
      parse('kind: io.statefun.endpoints.v2/http\nspec:\n  functions: a.b/*\n  urlPathTemplate: http://h:1/{function.name}\n'),
      'endpoint',
    );
    expect(e.maxNumBatchRequests).toBe(1000);
    expect(e.transport).toEqual({
      type: 'async',
      callMs: 120_000,
      connectMs: 20_000,
      poolTtlMs: 15_000,
      poolSize: 1024,
      payloadMaxBytes: 33_554_432,
    });
  });

  it('takes call/connect from a transport.timeouts block with its 1 min / 10 s defaults (upstream NettyRequestReplySpec)', () => {
    const e = only(
      parse(
        'kind: io.statefun.endpoints.v2/http\nspec:\n  functions: a.b/*\n' +
          '  urlPathTemplate: http://h/{function.name}\n  transport:\n    timeouts:\n      read: 10 sec\n' +
          '      write: 10 sec\n',
      ),
      'endpoint',
    );
    expect(e.transport).toMatchObject({ type: 'async', callMs: 60_000, connectMs: 10_000, readMs: 10_000, writeMs: 10_000 });
  });

  it('reads the okhttp transport (v2 with type okhttp) like the upstream v2 fixture', () => {
    const e = only(
      parse(`kind: io.statefun.endpoints.v2/http
spec:
  functions: com.foo.bar/*
  urlPathTemplate: http://bar.foo.com:8080/functions/{function.name}
  transport:
    type: io.statefun.transports.v1/okhttp
    timeouts:
      call: 1minute
      connect: 30seconds
`),
      'endpoint',
    );
    expect(e.transport).toMatchObject({ type: 'okhttp', callMs: 60_000, connectMs: 30_000, readMs: 10_000, writeMs: 10_000 });
  });

  it('caps defaulted okhttp timeouts at a short call timeout instead of failing', () => {
    const e = only(
      parse('kind: io.statefun.endpoints.v1/http\nspec:\n  functions: a.b/*\n  urlPathTemplate: http://h/x\n  timeouts:\n    call: 5s\n'),
      'endpoint',
    );
    expect(e.transport).toMatchObject({ type: 'okhttp', callMs: 5000, connectMs: 5000, readMs: 5000, writeMs: 5000 });
  });

  it('accepts payload_max_bytes as a size, TLS file paths and unix-socket URLs', () => {
    const e = only(
      parse(`kind: io.statefun.endpoints.v2/http
spec:
  functions: a.b/fn
  urlPathTemplate: http+unix:///run/fns.sock/statefun
  transport:
    payload_max_bytes: 4mb
    pool_ttl: 0
    trust_cacerts: /etc/ca.pem
    client_cert: /etc/client.crt
    client_key: /etc/client.key
    client_key_password: /etc/client.pass
`),
      'endpoint',
    );
    expect(e.transport.payloadMaxBytes).toBe(4 * 1024 * 1024);
    expect(e.transport.poolTtlMs).toBe(0);
    expect(e.transport.tls).toEqual({
      trustCaCertsFile: '/etc/ca.pem',
      clientCertFile: '/etc/client.crt',
      clientKeyFile: '/etc/client.key',
      clientKeyPasswordFile: '/etc/client.pass',
    });
  });

  const endpoint = (body: string, kind = 'io.statefun.endpoints.v2/http'): string => `kind: ${kind}\nspec:\n${body}`;
  const cases: Array<[string, string, string[]]> = [
    [
      'a function pattern without namespace',
      endpoint('  functions: greeter\n  urlPathTemplate: http://h/x\n'),
      [
        'app/module.yaml:3:14',
        'document #1 (io.statefun.endpoints.v2/http, line 1)',
        'spec.functions',
        "expected 'namespace/name' or 'namespace/*'",
        'got "greeter"',
      ],
    ],
    [
      'a wildcard inside the namespace',
      endpoint('  functions: com.*/x\n  urlPathTemplate: http://h/x\n'),
      ['spec.functions', "expected 'namespace/name' or 'namespace/*'", 'got "com.*/x"'],
    ],
    [
      'a URL with another scheme',
      endpoint('  functions: a.b/*\n  urlPathTemplate: ftp://h/{function.name}\n'),
      ['spec.urlPathTemplate', 'scheme http, https, http+unix or https+unix', 'got "ftp://h/{function.name}"'],
    ],
    [
      'a relative URL',
      endpoint('  functions: a.b/*\n  urlPathTemplate: /fns/{function.name}\n'),
      ['spec.urlPathTemplate', 'expected an absolute URL'],
    ],
    [
      'an unknown placeholder',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/{function.namespace}\n'),
      ['spec.urlPathTemplate', 'unknown placeholder {function.namespace}', 'only {function.name}'],
    ],
    [
      'a unix URL without a .sock file',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http+unix:///run/fns/x\n'),
      ['spec.urlPathTemplate', "ending in '.sock'"],
    ],
    [
      'maxNumBatchRequests of 0',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  maxNumBatchRequests: 0\n'),
      ['app/module.yaml:5:24', 'spec.maxNumBatchRequests', 'expected an integer in [1,', 'got 0'],
    ],
    [
      'a misspelled transport key',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  transport:\n    pool_sise: 10\n'),
      [
        'app/module.yaml:6:5',
        'spec.transport.pool_sise',
        "unknown key 'pool_sise'",
        'allowed keys here are: type, call, connect',
        "did you mean 'pool_size'?",
      ],
    ],
    [
      'a bad duration',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  transport:\n    call: 2 fortnights\n'),
      ['spec.transport.call', 'expected a duration', 'got "2 fortnights"'],
    ],
    [
      'a zero timeout',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  transport:\n    timeouts:\n      call: 0s\n'),
      ['spec.transport.timeouts.call', 'expected a duration between 1ms'],
    ],
    [
      'the same timeout written twice',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  transport:\n    call: 1m\n    timeouts:\n      call: 2m\n'),
      ['spec.transport.call', 'set twice'],
    ],
    [
      'connect longer than call',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  transport:\n    call: 5s\n    connect: 10s\n'),
      ['spec.transport.connect', 'longer than the call timeout'],
    ],
    [
      'an async key under okhttp',
      endpoint(
        '  functions: a.b/*\n  urlPathTemplate: http://h/x\n  transport:\n    type: io.statefun.transports.v1/okhttp\n    pool_size: 4\n',
      ),
      ['spec.transport.pool_size', 'async transport'],
    ],
    [
      'okhttp read timeout above call',
      endpoint(
        '  functions: a.b/*\n  urlPathTemplate: http://h/x\n  timeouts:\n    call: 1s\n    read: 2s\n',
        'io.statefun.endpoints.v1/http',
      ),
      ['app/module.yaml:7:11', 'spec.timeouts.read', 'read timeout (2000ms) cannot be larger than the call timeout (1000ms)'],
    ],
    [
      'an unknown transport type',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  transport:\n    type: com.example/grpc\n'),
      ['spec.transport.type', 'expected one of io.statefun.transports.v1/async, io.statefun.transports.v1/okhttp'],
    ],
    [
      'transport in a v1 endpoint',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  transport: {}\n', 'io.statefun.endpoints.v1/http'),
      ['spec.transport', 'read only by io.statefun.endpoints.v2/http'],
    ],
    [
      'timeouts at the top of a v2 endpoint',
      endpoint('  functions: a.b/*\n  urlPathTemplate: http://h/x\n  timeouts: {}\n'),
      ['spec.timeouts', 'go under spec.transport'],
    ],
    [
      'a classpath: certificate',
      endpoint('  functions: a.b/*\n  urlPathTemplate: https://h/x\n  transport:\n    trust_cacerts: classpath:ca.pem\n'),
      ['spec.transport.trust_cacerts', 'expected a file path', 'only inside a JVM'],
    ],
    [
      'a missing urlPathTemplate',
      endpoint('  functions: a.b/*\n'),
      ['spec.urlPathTemplate', "required key 'urlPathTemplate' is missing", 'expected the endpoint URL'],
    ],
  ];
  it.each(cases)('rejects %s', (_name, text, fragments) => {
    const message = failure(text);
    expect(message).toContain(FILE);
    for (const f of fragments) expect(message).toContain(f);
  });
});

describe('Kafka ingress and egress', () => {
  it('defaults startup and reset positions to latest and properties to none (upstream KafkaIngressBuilder)', () => {
    const k = only(parse(KAFKA_INGRESS_HEAD + TOPICS), 'kafka-ingress');
    expect(k.startupPosition).toEqual({ type: 'latest' });
    expect(k.autoOffsetResetPosition).toBe('latest');
    expect(k.properties).toEqual({});
  });

  it('reads every startup position type', () => {
    const at = (pos: string): unknown =>
      only(parse(`${KAFKA_INGRESS_HEAD}  startupPosition:\n${pos}${TOPICS}`), 'kafka-ingress').startupPosition;
    expect(at('    type: earliest\n')).toEqual({ type: 'earliest' });
    expect(at('    type: group-offsets\n')).toEqual({ type: 'group-offsets' });
    expect(at('    type: specific-offsets\n    offsets:\n      users/3: 7\n')).toEqual({
      type: 'specific-offsets',
      offsets: { 'users/3': 7 },
    });
    // Upstream's pattern 'yyyy-MM-dd HH:mm:ss.SSS Z', its docs example, and ISO 8601.
    expect(at("    type: date\n    date: '2020-02-01 04:15:00.000 +0000'\n")).toEqual({ type: 'date', date: Date.UTC(2020, 1, 1, 4, 15) });
    expect(at('    type: date\n    date: 2020-02-01 04:15:00.00 Z\n')).toEqual({ type: 'date', date: Date.UTC(2020, 1, 1, 4, 15) });
    expect(at('    type: date\n    date: 2020-02-01T06:15:00.5+02:00\n')).toEqual({
      type: 'date',
      date: Date.UTC(2020, 1, 1, 4, 15, 0, 500),
    });
  });

  it('reads autoOffsetResetPosition case-insensitively, as upstream does', () => {
    expect(
      only(parse(`${KAFKA_INGRESS_HEAD}  autoOffsetResetPosition: EARLIEST\n${TOPICS}`), 'kafka-ingress').autoOffsetResetPosition,
    ).toBe('earliest');
  });

  it('takes brokers and group from properties when the named keys are absent', () => {
    const k = only(
      parse(`kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/users
  properties:
    bootstrap.servers: k1:9092, k2:9093
    group.id: from-props
${TOPICS}`),
      'kafka-ingress',
    );
    expect(k.address).toBe('k1:9092,k2:9093');
    expect(k.consumerGroupId).toBe('from-props');
  });

  it('defaults the egress to at-least-once and reads the deprecated transactionTimeoutMillis as a duration', () => {
    const egress = (ds: string): unknown =>
      only(parse(`kind: io.statefun.kafka.v1/egress\nspec:\n  id: a.b/out\n  address: k:9092\n${ds}`), 'kafka-egress').deliverySemantic;
    expect(egress('')).toEqual({ type: 'at-least-once' });
    expect(egress('  deliverySemantic:\n    type: none\n')).toEqual({ type: 'none' });
    expect(egress('  deliverySemantic:\n    type: exactly-once\n    transactionTimeoutMillis: 100000\n')).toEqual({
      type: 'exactly-once',
      transactionTimeoutMs: 100_000,
    });
    // The upstream docs example writes `transactionTimeoutMillis: 15min`.
    expect(egress('  deliverySemantic:\n    type: exactly-once\n    transactionTimeoutMillis: 15min\n')).toEqual({
      type: 'exactly-once',
      transactionTimeoutMs: 900_000,
    });
  });

  const cases: Array<[string, string, string[]]> = [
    [
      'a target that is not a type name',
      `${KAFKA_INGRESS_HEAD}  topics:\n    - topic: users\n      valueType: com.example/User\n` +
        `      targets:\n        - com.example.fns/greeter\n        - greeter\n`,
      [
        'app/module.yaml:11:11',
        'document #1 (io.statefun.kafka.v1/ingress, line 1)',
        'spec.topics[0].targets[1]',
        "expected a type name 'namespace/name'",
        'got "greeter"',
        'Fix: write the type with its namespace, e.g. "com.example/greeter"',
      ],
    ],
    ['an empty topic list', `${KAFKA_INGRESS_HEAD}  topics: []\n`, ['spec.topics', 'expected a list of at least 1 item']],
    ['missing topics', KAFKA_INGRESS_HEAD, ['spec.topics', "required key 'topics' is missing"]],
    [
      'a topic listed twice',
      `${KAFKA_INGRESS_HEAD}${TOPICS}    - topic: users\n      valueType: a.b/c\n      targets: [a.b/d]\n`,
      ['spec.topics[1].topic', "topic 'users' is listed twice (also at spec.topics[0])"],
    ],
    [
      'a missing valueType',
      `${KAFKA_INGRESS_HEAD}  topics:\n    - topic: users\n      targets: [a.b/c]\n`,
      ['spec.topics[0].valueType', "required key 'valueType' is missing"],
    ],
    [
      'a bad topic name',
      `${KAFKA_INGRESS_HEAD}  topics:\n    - topic: my topic\n      valueType: a.b/c\n      targets: [a.b/c]\n`,
      ['spec.topics[0].topic', 'expected a Kafka topic name', 'got "my topic"'],
    ],
    [
      'an address without port',
      `kind: io.statefun.kafka.v1/ingress\nspec:\n  id: a.b/c\n  address: kafka-broker\n  consumerGroupId: g\n${TOPICS}`,
      ['app/module.yaml:4:12', 'spec.address', 'expected host:port', "'kafka-broker' is not host:port"],
    ],
    [
      'a missing address',
      `kind: io.statefun.kafka.v1/ingress\nspec:\n  id: a.b/c\n  consumerGroupId: g\n${TOPICS}`,
      ['spec.address', "required key 'address' is missing"],
    ],
    [
      'a missing consumer group',
      `kind: io.statefun.kafka.v1/ingress\nspec:\n  id: a.b/c\n  address: k:9092\n${TOPICS}`,
      ['spec.consumerGroupId', "required key 'consumerGroupId' is missing"],
    ],
    [
      'an unknown startup type',
      `${KAFKA_INGRESS_HEAD}  startupPosition:\n    type: earlist\n${TOPICS}`,
      [
        'spec.startupPosition.type',
        'expected one of earliest, latest, group-offsets, specific-offsets, date',
        'got "earlist"',
        "did you mean 'earliest'?",
      ],
    ],
    [
      'offsets without specific-offsets',
      `${KAFKA_INGRESS_HEAD}  startupPosition:\n    type: earliest\n    offsets: {users/0: 1}\n${TOPICS}`,
      ['spec.startupPosition.offsets', 'read only when type is specific-offsets'],
    ],
    [
      'an offset key without partition',
      `${KAFKA_INGRESS_HEAD}  startupPosition:\n    type: specific-offsets\n    offsets:\n      - users: 1\n${TOPICS}`,
      ['spec.startupPosition.offsets[0].users', "expected a 'topic/partition' key"],
    ],
    [
      'an offset for a topic not read',
      `${KAFKA_INGRESS_HEAD}  startupPosition:\n    type: specific-offsets\n    offsets:\n      - usres/0: 1\n${TOPICS}`,
      ['spec.startupPosition.offsets', "topic 'usres' is not in spec.topics (users)"],
    ],
    [
      'a date without zone',
      `${KAFKA_INGRESS_HEAD}  startupPosition:\n    type: date\n    date: 2020-02-01 04:15:00\n${TOPICS}`,
      ['spec.startupPosition.date', 'expected a date with a zone', 'got "2020-02-01 04:15:00"'],
    ],
    [
      'a bad auto offset reset',
      `${KAFKA_INGRESS_HEAD}  autoOffsetResetPosition: smallest\n${TOPICS}`,
      ['spec.autoOffsetResetPosition', 'expected one of earliest, latest', 'got "smallest"'],
    ],
    [
      'properties that are not one-key mappings',
      `${KAFKA_INGRESS_HEAD}${TOPICS}  properties:\n    - a: 1\n      b: 2\n`,
      ['spec.properties[0]', 'expected a one-key mapping', 'a mapping with 2 keys'],
    ],
    [
      'exactly-once without a timeout',
      'kind: io.statefun.kafka.v1/egress\nspec:\n  id: a.b/c\n  address: k:9092\n  deliverySemantic:\n    type: exactly-once\n',
      ['spec.deliverySemantic.transactionTimeout', "required key 'transactionTimeout' is missing"],
    ],
    [
      'a timeout with at-least-once',
      'kind: io.statefun.kafka.v1/egress\nspec:\n  id: a.b/c\n  address: k:9092\n  deliverySemantic:\n' +
        '    type: at-least-once\n    transactionTimeout: 1min\n',
      ['spec.deliverySemantic.transactionTimeout', 'read only when type is exactly-once'],
    ],
    [
      'an unknown delivery semantic',
      'kind: io.statefun.kafka.v1/egress\nspec:\n  id: a.b/c\n  address: k:9092\n  deliverySemantic:\n    type: exactly_once\n',
      ['spec.deliverySemantic.type', 'expected one of exactly-once, at-least-once, none', "did you mean 'exactly-once'?"],
    ],
    [
      'an egress topic key',
      'kind: io.statefun.kafka.v1/egress\nspec:\n  id: a.b/c\n  address: k:9092\n  topic: out\n',
      ['spec.topic', 'chosen by the function'],
    ],
    [
      'an egress id that is not a type name',
      'kind: io.statefun.kafka.v1/egress\nspec:\n  id: greetings\n  address: k:9092\n',
      ['app/module.yaml:3:7', 'spec.id', "expected a type name 'namespace/name' (the egress id)", 'got "greetings"'],
    ],
  ];
  it.each(cases)('rejects %s', (_name, text, fragments) => {
    const message = failure(text);
    expect(message).toContain(FILE);
    for (const f of fragments) expect(message).toContain(f);
  });
});

describe('document structure and kinds', () => {
  it('rejects the legacy 2.x/3.0 format and explains the kind/spec format', () => {
    const message = failure(`version: "3.0"
module:
  meta:
    type: remote
  spec:
    endpoints:
      - endpoint:
          meta:
            kind: http
          spec:
            functions: com.foo.bar/*
            urlPathTemplate: http://bar.foo.com:8080/functions/{function.name}
`);
    expect(message).toContain('app/module.yaml:1:1');
    expect(message).toContain('legacy StateFun 2.x/3.0 module format');
    expect(message).toContain('\'version: "3.0"\'');
    expect(message).toContain("each a mapping with 'kind' and 'spec'");
    expect(message).toContain('kind: io.statefun.endpoints.v2/http');
  });

  it('rejects Kinesis as an unsupported kind, naming the kind, file, document and supported kinds', () => {
    const message = failure(
      `kind: io.statefn.file.v1/egress\nspec:\n  id: a.b/out\n  path: out.txt\n---\nkind: io.statefun.kinesis.v1/ingress
spec:
  id: com.foo.bar/test-ingress
  awsRegion:
    type: specific
    id: us-west-2
`,
      ErrorCode.MODULE_KIND_UNSUPPORTED,
    );
    expect(message).toContain('app/module.yaml:6:7');
    expect(message).toContain('document #2 (io.statefun.kinesis.v1/ingress, line 6)');
    expect(message).toContain("kind 'io.statefun.kinesis.v1/ingress'");
    for (const k of SUPPORTED_MODULE_KINDS) expect(message).toContain(k);
    expect(failure('kind: io.statefun.kinesis.v1/egress\nspec: {}\n', ErrorCode.MODULE_KIND_UNSUPPORTED)).toContain('kinesis.v1/egress');
  });

  it('rejects other io.statefun kinds as unsupported and suggests a near miss', () => {
    const m1 = failure('kind: io.statefun.endpoints.v3/http\nspec: {}\n', ErrorCode.MODULE_KIND_UNSUPPORTED);
    expect(m1).toContain("kind 'io.statefun.endpoints.v3/http' is not a StateFun kind statefn supports");
    expect(m1).toContain("did you mean 'io.statefun.endpoints.v2/http'?");
    const m2 = failure('kind: io.statefun.kafka.v1/ingres\nspec: {}\n', ErrorCode.MODULE_KIND_UNSUPPORTED);
    expect(m2).toContain("did you mean 'io.statefun.kafka.v1/ingress'?");
  });

  it('rejects any other kind as invalid config, with a suggestion when close', () => {
    const m1 = failure('kind: io.statefn.generater.v1/ingress\nspec: {}\n');
    expect(m1).toContain("unknown kind 'io.statefn.generater.v1/ingress'");
    expect(m1).toContain("did you mean 'io.statefn.generator.v1/ingress'?");
    const m2 = failure('kind: com.foo.bar/test.component.1\nspec:\n  foo: bar\n');
    expect(m2).toContain("unknown kind 'com.foo.bar/test.component.1'");
    expect(m2).toContain('statefn supports: io.statefun.endpoints.v1/http');
  });

  const cases: Array<[string, string, string[]]> = [
    [
      'a document that is a list',
      '- kind: a/b\n',
      ['app/module.yaml:1:1', 'document #1', "expected a mapping with 'kind' and 'spec'", 'got a list of 1 item'],
    ],
    ['a document that is a scalar', 'just text\n', ['expected a mapping', 'got "just text"']],
    ['a missing kind', 'spec: {}\n', ["required key 'kind' is missing"]],
    ['a missing spec', 'kind: io.statefn.file.v1/egress\n', ["required key 'spec' is missing"]],
    [
      'a spec that is not a mapping',
      'kind: io.statefn.file.v1/egress\nspec: out.txt\n',
      ['app/module.yaml:2:7', 'at spec', 'expected a mapping', 'got "out.txt"'],
    ],
    [
      'an extra top-level key',
      'kind: io.statefn.file.v1/egress\nspec: {id: a/b, path: x}\nmeta: {}\n',
      ["unknown key 'meta'", 'allowed keys here are: kind, spec'],
    ],
    ['invalid YAML', 'kind: io.statefn.file.v1/egress\nspec:\n  id: [a/b\n', ['app/module.yaml:', 'invalid YAML']],
    [
      'an alias bomb',
      'kind: io.statefn.file.v1/egress\nspec:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n' +
        '  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n' +
        '  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n' +
        '  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n  g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n',
      ['once aliases are expanded'],
    ],
    [
      'a recursive alias',
      'kind: io.statefn.file.v1/egress\nspec: &s\n  id: a/b\n  path: x\n  self: *s\n',
      ['nesting deeper than 64 levels'],
    ],
    [
      'a key written twice',
      'kind: io.statefn.file.v1/egress\nspec:\n  id: a/b\n  id: a/c\n  path: x\n',
      ['app/module.yaml:4:3', 'invalid YAML (DUPLICATE_KEY)'],
    ],
  ];
  it.each(cases)('rejects %s', (_name, text, fragments) => {
    const message = failure(text);
    for (const f of fragments) expect(message).toContain(f);
  });

  it('rejects duplicate ids across documents, naming both documents', () => {
    const message = failure(`${KAFKA_INGRESS_HEAD}${TOPICS}---
kind: io.statefn.http.v1/ingress
spec:
  id: com.example/other
---
kind: io.statefn.generator.v1/ingress
spec:
  id: com.example/users
  ratePerSec: 10
  targets: [com.example.fns/greeter]
`);
    expect(message).toContain('app/module.yaml:18:7');
    expect(message).toContain('document #3 (io.statefn.generator.v1/ingress, line 16), at spec.id');
    expect(message).toContain("duplicate ingress id 'com.example/users'");
    expect(message).toContain('already defined by document #1 (io.statefun.kafka.v1/ingress, line 1)');
  });

  it('rejects two egresses with one id, two endpoints for one pattern, and two engine configs', () => {
    expect(
      failure(
        'kind: io.statefn.file.v1/egress\nspec: {id: a.b/out, path: x}\n---\n' +
          'kind: io.statefun.kafka.v1/egress\nspec: {id: a.b/out, address: "k:1"}\n',
      ),
    ).toContain("duplicate egress id 'a.b/out': already defined by document #1");
    const ep = 'kind: io.statefun.endpoints.v2/http\nspec: {functions: a.b/*, urlPathTemplate: "http://h/x"}\n';
    expect(failure(`${ep}---\n${ep}`)).toContain("duplicate spec.functions 'a.b/*': already defined by document #1");
    const cfg = 'kind: io.statefn.engine.v1/config\nspec: {workers: 1}\n';
    expect(failure(`${cfg}---\n${cfg}`)).toContain('duplicate engine config');
  });
});

describe('environment-variable interpolation', () => {
  const fileEgress = (path: string): string => `kind: io.statefn.file.v1/egress\nspec:\n  id: a.b/out\n  path: ${path}\n`;
  const pathOf = (text: string, env: Record<string, string | undefined>): string => only(parse(text, env), 'file-egress').path;

  it('replaces ${VAR} and ${VAR:-default}', () => {
    expect(pathOf(fileEgress('${OUT_DIR}/out.txt'), { OUT_DIR: '/var/out' })).toBe('/var/out/out.txt');
    expect(pathOf(fileEgress('${OUT_DIR:-/tmp}/out.txt'), {})).toBe('/tmp/out.txt');
    expect(pathOf(fileEgress('${OUT_DIR:-/tmp}/out.txt'), { OUT_DIR: '/data' })).toBe('/data/out.txt');
    // As in a shell, an empty value takes the default; without a default it stays empty.
    expect(pathOf(fileEgress('${OUT_DIR:-/tmp}/out.txt'), { OUT_DIR: '' })).toBe('/tmp/out.txt');
    expect(pathOf(fileEgress('x${EMPTY}y'), { EMPTY: '' })).toBe('xy');
    expect(pathOf(fileEgress('"${A}-${B:-b}-${A}"'), { A: 'a' })).toBe('a-b-a');
  });

  it('treats $${ as a literal ${', () => {
    expect(pathOf(fileEgress("'$${NOT_A_VAR}/x'"), {})).toBe('${NOT_A_VAR}/x');
    expect(pathOf(fileEgress('cost$$5'), {})).toBe('cost$$5');
  });

  it('interpolates before validation, so numbers and durations may come from the environment', () => {
    const h = only(
      parse('kind: io.statefn.http.v1/ingress\nspec:\n  id: a.b/in\n  port: ${PORT}\n  bodyBytesMax: ${BODY:-2mb}\n', { PORT: '9000' }),
      'http-ingress',
    );
    expect(h.port).toBe(9000);
    expect(h.bodyBytesMax).toBe(2 * 1024 * 1024);
    const message = failure('kind: io.statefn.http.v1/ingress\nspec:\n  id: a.b/in\n  port: ${PORT}\n', ErrorCode.CONFIG_INVALID, {
      PORT: 'http',
    });
    expect(message).toContain('spec.port');
    expect(message).toContain('got "http" (interpolated from "${PORT}")');
  });

  it('names the variable, the file and the path when a variable is missing', () => {
    const message = failure(`${KAFKA_INGRESS_HEAD.replace('kafka-broker:9092', '${KAFKA_BROKERS}')}${TOPICS}`);
    expect(message).toContain('app/module.yaml:4:12');
    expect(message).toContain('document #1 (io.statefun.kafka.v1/ingress, line 1), at spec.address');
    expect(message).toContain('environment variable KAFKA_BROKERS is not set');
    expect(message).toContain('${KAFKA_BROKERS:-value}');
  });

  it('rejects malformed references', () => {
    expect(failure(fileEgress('${1X}'))).toContain("'${1X}'");
    expect(failure(fileEgress('${OPEN'))).toContain("unterminated '${'");
    expect(failure(fileEgress('${}'))).toContain('is not a variable reference');
  });
});

describe('durations and sizes (units.ts)', () => {
  it.each([
    ['2m', 120_000],
    ['20s', 20_000],
    ['500ms', 500],
    ['1h', 3_600_000],
    ['1 min', 60_000],
    ['1minute', 60_000],
    ['1minutes', 60_000],
    ['30seconds', 30_000],
    ['10 sec', 10_000],
    ['15min', 900_000],
    ['1d', 86_400_000],
    ['2 DAYS', 172_800_000],
    ['1500', 1500],
    [' 7 ', 7],
    [1500, 1500],
    [0, 0],
    ['1500µs', 2],
    ['100ns', 1],
  ] as const)('parses duration %j as %i ms', (input, ms) => {
    expect(parseDurationMs(input)).toBe(ms);
  });

  it.each(['1.5s', '-1s', 'abc', '10 parsecs', '', 's', true, null, 1.5, -3] as const)('rejects duration %j', (input) => {
    expect(() => parseDurationMs(input)).toThrow(/expected a duration/);
  });

  it.each([
    ['1mb', 1024 * 1024],
    ['512kb', 512 * 1024],
    ['512 KB', 512 * 1024],
    ['1m', 1024 * 1024],
    ['2g', 2 * 1024 ** 3],
    ['1kib', 1024],
    ['100b', 100],
    ['33554432', 33_554_432],
    [4096, 4096],
  ] as const)('parses size %j as %i bytes', (input, bytes) => {
    expect(parseBytes(input)).toBe(bytes);
  });

  it.each(['1.5mb', '10xb', 'mb', '-1', false, 2.5] as const)('rejects size %j', (input) => {
    expect(() => parseBytes(input)).toThrow(/expected a byte size/);
  });

  it('formats with the largest exact unit', () => {
    expect(formatDurationMs(120_000)).toBe('2min');
    expect(formatDurationMs(1500)).toBe('1500ms');
    expect(formatBytes(32 * 1024 * 1024)).toBe('32mb');
    expect(formatBytes(1000)).toBe('1000b');
  });
});

describe("statefn's own kinds", () => {
  it('defaults a generator ingress', () => {
    const g = only(
      parse('kind: io.statefn.generator.v1/ingress\nspec:\n  id: bench/gen\n  ratePerSec: 0\n  targets: [bench/counter]\n'),
      'generator-ingress',
    );
    expect(g).toEqual({
      kind: 'generator-ingress',
      source: { file: FILE, document: 1, line: 1 },
      id: 'bench/gen',
      ratePerSec: 0,
      count: undefined,
      keySpace: 1000,
      seed: 1,
      batchSize: 256,
      targets: ['bench/counter'],
      valueType: 'io.statefun.types/long',
      keyDistribution: 'uniform',
    });
  });

  it('reads a fully specified generator with zipf keys and a JSON value type', () => {
    const g = only(
      parse(`kind: io.statefn.generator.v1/ingress
spec:
  id: bench/gen
  ratePerSec: 5000
  count: 100000
  keySpace: 128
  seed: 42
  batchSize: 64
  targets: [bench/counter, bench/audit]
  valueType: com.example/Event
  keyDistribution:
    type: zipf
    exponent: 1.1
`),
      'generator-ingress',
    );
    expect(g).toMatchObject({ ratePerSec: 5000, count: 100_000, keySpace: 128, seed: 42, batchSize: 64, valueType: 'com.example/Event' });
    expect(g.targets).toEqual(['bench/counter', 'bench/audit']);
    expect(g.keyDistribution).toEqual({ type: 'zipf', exponent: 1.1 });
  });

  it('defaults an http ingress', () => {
    expect(only(parse('kind: io.statefn.http.v1/ingress\nspec:\n  id: web/in\n'), 'http-ingress')).toEqual({
      kind: 'http-ingress',
      source: { file: FILE, document: 1, line: 1 },
      id: 'web/in',
      host: '127.0.0.1',
      port: 8090,
      requestsInFlightMax: 256,
    });
  });

  it('reads a file egress', () => {
    expect(only(parse('kind: io.statefn.file.v1/egress\nspec:\n  id: out/lines\n  path: /tmp/out.jsonl\n'), 'file-egress')).toMatchObject({
      id: 'out/lines',
      path: '/tmp/out.jsonl',
    });
  });

  it('reads engine config with durations and sizes, keeping only what the file sets', () => {
    const c = only(
      parse(`kind: io.statefn.engine.v1/config
spec:
  workers: 4
  stateDir: /var/lib/statefn
  keyGroups: 512
  ringBytes: 2mb
  frameBytesMax: 512kb
  checkpointIntervalMs: 2s
  stopTimeoutMs: 1 min
  batchMessagesMax: "1024"
`),
      'engine-config',
    );
    expect(c.options).toEqual({
      workers: 4,
      stateDir: '/var/lib/statefn',
      keyGroups: 512,
      ringBytes: 2 * 1024 * 1024,
      frameBytesMax: 512 * 1024,
      checkpointIntervalMs: 2000,
      stopTimeoutMs: 60_000,
      batchMessagesMax: 1024,
    });
  });

  const cases: Array<[string, string, string[]]> = [
    [
      'a generator without ratePerSec',
      'kind: io.statefn.generator.v1/ingress\nspec:\n  id: a/b\n  targets: [a/c]\n',
      ['spec.ratePerSec', "required key 'ratePerSec' is missing"],
    ],
    [
      'a generator with a built-in type it cannot produce',
      'kind: io.statefn.generator.v1/ingress\nspec:\n  id: a/b\n  ratePerSec: 1\n  targets: [a/c]\n  valueType: io.statefun.types/int\n',
      ['spec.valueType', 'expected io.statefun.types/long or io.statefun.types/string or a JSON type name', 'got "io.statefun.types/int"'],
    ],
    [
      'zipf without exponent',
      'kind: io.statefn.generator.v1/ingress\nspec:\n  id: a/b\n  ratePerSec: 1\n  targets: [a/c]\n  keyDistribution: zipf\n',
      ['spec.keyDistribution', 'zipf needs an exponent'],
    ],
    [
      'a zipf exponent of 0',
      'kind: io.statefn.generator.v1/ingress\nspec:\n  id: a/b\n  ratePerSec: 1\n  targets: [a/c]\n' +
        '  keyDistribution: {type: zipf, exponent: 0}\n',
      ['spec.keyDistribution.exponent', 'expected a number in (0, 10]'],
    ],
    [
      'a negative rate',
      'kind: io.statefn.generator.v1/ingress\nspec:\n  id: a/b\n  ratePerSec: -5\n  targets: [a/c]\n',
      ['app/module.yaml:4:15', 'spec.ratePerSec', 'got -5'],
    ],
    [
      'a port out of range',
      'kind: io.statefn.http.v1/ingress\nspec:\n  id: a/b\n  port: 70000\n',
      ['spec.port', 'expected an integer in [0, 65535]', 'got 70000'],
    ],
    ['a file egress without path', 'kind: io.statefn.file.v1/egress\nspec:\n  id: a/b\n  file: x\n', ['spec.file', "the key is 'path'"]],
    [
      'an unknown engine option',
      'kind: io.statefn.engine.v1/config\nspec:\n  ringByte: 1mb\n',
      ['app/module.yaml:3:3', 'spec.ringByte', "unknown key 'ringByte'", "did you mean 'ringBytes'?"],
    ],
    [
      'a limit out of bounds',
      'kind: io.statefn.engine.v1/config\nspec:\n  ringBytes: 1kb\n',
      ['app/module.yaml:3:14', 'spec.ringBytes', 'expected a value in [4096, 268435456]', 'got 1024'],
    ],
    [
      'a limit that is not a power of two',
      'kind: io.statefn.engine.v1/config\nspec:\n  ringBytes: 3mb\n',
      ['spec.ringBytes', 'expected a power of two'],
    ],
    [
      'limits that contradict each other',
      'kind: io.statefn.engine.v1/config\nspec:\n  ringBytes: 1mb\n  frameBytesMax: 1mb\n',
      ['app/module.yaml:4:18', 'spec.frameBytesMax', 'must be at most ringBytes/2'],
    ],
    [
      'a duration limit written badly',
      'kind: io.statefn.engine.v1/config\nspec:\n  checkpointIntervalMs: soon\n',
      ['spec.checkpointIntervalMs', 'expected a duration', 'got "soon"'],
    ],
    [
      'more workers than key groups',
      'kind: io.statefn.engine.v1/config\nspec:\n  workers: 300\n',
      ['spec.workers', '300 workers but only 256 key groups', 'raise keyGroups'],
    ],
  ];
  it.each(cases)('rejects %s', (_name, text, fragments) => {
    const message = failure(text);
    expect(message).toContain(FILE);
    for (const f of fragments) expect(message).toContain(f);
  });
});

describe('loadModuleYaml', () => {
  const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/modules/${name}`, import.meta.url));

  it('loads the valid fixture with environment defaults', async () => {
    const docs = await loadModuleYaml(fixture('valid_module.yaml'), {});
    expect(docs.map((d) => d.kind)).toEqual(['endpoint', 'kafka-ingress', 'kafka-egress', 'engine-config']);
    const [endpoint, ingress, egress, config] = docs as [
      Extract<ModuleDocument, { kind: 'endpoint' }>,
      Extract<ModuleDocument, { kind: 'kafka-ingress' }>,
      Extract<ModuleDocument, { kind: 'kafka-egress' }>,
      Extract<ModuleDocument, { kind: 'engine-config' }>,
    ];
    expect(endpoint.urlPathTemplate).toBe('http://localhost:8000/{function.name}');
    expect(endpoint.maxNumBatchRequests).toBe(500);
    expect(ingress.address).toBe('localhost:9092');
    expect(ingress.startupPosition).toEqual({ type: 'earliest' });
    expect(egress.deliverySemantic).toEqual({ type: 'exactly-once', transactionTimeoutMs: 900_000 });
    expect(config.options).toEqual({ workers: 2, checkpointIntervalMs: 500 });
    expect(config.source.document).toBe(5); // the empty document before it still counts
  });

  it('uses the environment it is given', async () => {
    const docs = await loadModuleYaml(fixture('valid_module.yaml'), { KAFKA_BROKERS: 'k1:9092,k2:9092', FUNCTIONS_HOST: 'fns:9000' });
    expect((docs[0] as Extract<ModuleDocument, { kind: 'endpoint' }>).urlPathTemplate).toBe('http://fns:9000/{function.name}');
    expect((docs[1] as Extract<ModuleDocument, { kind: 'kafka-ingress' }>).address).toBe('k1:9092,k2:9092');
  });

  it('rejects the broken fixture naming the file, line, document and path', async () => {
    const file = fixture('broken_module.yaml');
    const err = await loadModuleYaml(file, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StatefnError);
    expect((err as StatefnError).code).toBe(ErrorCode.CONFIG_INVALID);
    const message = (err as StatefnError).message;
    expect(message).toContain(`${file}:17:11`);
    expect(message).toContain('document #2 (io.statefun.kafka.v1/ingress, line 7), at spec.topics[0].targets[1]');
    expect(message).toContain("expected a type name 'namespace/name'");
    expect(message).toContain('got "greeter"');
  });

  it('rejects a missing file naming it', async () => {
    const file = fixture('no_such_module.yaml');
    await expect(loadModuleYaml(file, {})).rejects.toThrow(`${file}: cannot read the module file: no such file`);
  });
});

describe('engine config: snapshots', () => {
  it('reads an S3 snapshot store with endpoint and region, retention and checkpointing', () => {
    const [doc] = parseModuleYaml(
      'kind: io.statefn.engine.v1/config\nspec:\n  snapshots: s3://my-bucket/apps/fraud\n' +
        '  s3Endpoint: http://127.0.0.1:9000\n  s3Region: eu-west-1\n  snapshotRetain: 5\n' +
        '  checkpointing: off\n',
      'module.yaml',
      {},
    );
    expect(doc).toMatchObject({
      kind: 'engine-config',
      options: {
        snapshots: {
          type: 's3',
          bucket: 'my-bucket',
          prefix: 'apps/fraud',
          endpoint: 'http://127.0.0.1:9000',
          region: 'eu-west-1',
          forcePathStyle: true,
        },
        snapshotRetain: 5,
        checkpointing: false,
      },
    });
  });

  it('rejects an S3 endpoint without an S3 store, naming the key', () => {
    expect(() =>
      parseModuleYaml('kind: io.statefn.engine.v1/config\nspec:\n  s3Endpoint: http://127.0.0.1:9000\n', 'module.yaml', {}),
    ).toThrow(/s3Endpoint/);
  });
});

describe('kafka ingress deadLetterTopic (statefn extension)', () => {
  it('is read when given and absent otherwise', () => {
    expect(only(parse(KAFKA_INGRESS_HEAD + TOPICS), 'kafka-ingress').deadLetterTopic).toBeUndefined();
    expect(only(parse(KAFKA_INGRESS_HEAD + '  deadLetterTopic: users-dlq\n' + TOPICS), 'kafka-ingress').deadLetterTopic).toBe('users-dlq');
  });

  it('must not be a topic the ingress reads', () => {
    expect(failure(KAFKA_INGRESS_HEAD + '  deadLetterTopic: users\n' + TOPICS)).toMatch(
      /spec\.deadLetterTopic.*also read by this ingress/s,
    );
    expect(failure(KAFKA_INGRESS_HEAD + '  deadLetterTopic: "bad topic"\n' + TOPICS)).toMatch(/spec\.deadLetterTopic/);
  });
});

describe('endpoint onFailure (statefn extension)', () => {
  it('reads dead-letter or restore and rejects anything else', () => {
    const head = 'kind: io.statefun.endpoints.v2/http\nspec:\n  functions: a/*\n  urlPathTemplate: http://fn:8000/\n';
    expect(only(parse(head + '  onFailure: restore\n'), 'endpoint').onFailure).toBe('restore');
    expect(failure(head + '  onFailure: crash\n')).toMatch(/spec\.onFailure/);
  });
});
