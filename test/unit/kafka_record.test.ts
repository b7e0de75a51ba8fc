// StateFun's KafkaProducerRecord (what remote functions send to a Kafka egress) must be read
// byte-for-byte as upstream writes it; the client-config mapping must never drop a property silently.
import { describe, expect, it } from 'vitest';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { KAFKA_PRODUCER_RECORD_TYPENAME, KafkaProducerRecordType, kafkaProducerRecord } from '../../connectors/kafka/kafka_record.js';
import { clientSettings } from '../../connectors/kafka/kafka_config.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('KafkaProducerRecord', () => {
  it('encodes as upstream (key=1, value_bytes=2, topic=3)', () => {
    const m = kafkaProducerRecord({ topic: 't', key: 'k', value: new Uint8Array([1, 2]) });
    expect(m.typename).toBe('type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord');
    expect(hex(m.bytes())).toBe('0a016b' + '12020102' + '1a0174');
  });

  it('reads upstream bytes: an absent or empty key is a null key', () => {
    // What the Java/Python SDKs write for KafkaEgressBuilder.withTopic("greetings").withValue("hi").
    const upstream = Buffer.from('1202' + '6869' + '1a09' + Buffer.from('greetings').toString('hex'), 'hex');
    const r = new Message(KAFKA_PRODUCER_RECORD_TYPENAME, upstream).as(KafkaProducerRecordType);
    expect(r.topic).toBe('greetings');
    expect(r.key).toBeUndefined();
    expect(Buffer.from(r.value).toString()).toBe('hi');
    expect(r.headers).toEqual([]);
  });

  it('carries headers (statefn field 15) and a Message value as its wire bytes', () => {
    const m = kafkaProducerRecord({ topic: 'out', key: 'a', value: Message.of(Types.string, 'x'), headers: { trace: 'abc' } });
    const r = m.as(KafkaProducerRecordType);
    expect(hex(r.value)).toBe(hex(Types.string.serialize('x')));
    expect(r.headers?.map((h) => [h.key, Buffer.from(h.value).toString()])).toEqual([['trace', 'abc']]);
  });

  it('rejects garbage and records without a topic with TYPE_MISMATCH', () => {
    const bad = (bytes: number[]): unknown => {
      try {
        new Message(KAFKA_PRODUCER_RECORD_TYPENAME, new Uint8Array(bytes)).as(KafkaProducerRecordType);
        return undefined;
      } catch (e) {
        return e;
      }
    };
    const garbage = bad([0xff, 0xff, 0xff, 0xff]);
    expect(garbage).toBeInstanceOf(StatefnError);
    expect((garbage as StatefnError).code).toBe(ErrorCode.TYPE_MISMATCH);
    const noTopic = bad([0x0a, 0x01, 0x6b]);
    expect((noTopic as StatefnError).message).toMatch(/no topic/);
  });
});

describe('Kafka client settings from properties', () => {
  it('maps the properties kafkajs has and lists the rest', () => {
    const s = clientSettings('kafka ingress x/y', 'cid', 'k1:9092, k2:9093', {
      'session.timeout.ms': '10000',
      'max.partition.fetch.bytes': '65536',
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'SCRAM-SHA-512',
      'sasl.jaas.config': 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";',
      'ssl.endpoint.identification.algorithm': 'https',
    });
    expect(s.kafka.brokers).toEqual(['k1:9092', 'k2:9093']);
    expect(s.kafka.ssl).toBe(true);
    expect(s.kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'u', password: 'p' });
    expect(s.consumer.sessionTimeout).toBe(10000);
    expect(s.consumer.maxBytesPerPartition).toBe(65536);
    expect(s.unsupported).toEqual(['ssl.endpoint.identification.algorithm']);
  });

  it('names the connector and the property in errors', () => {
    expect(() => clientSettings('kafka egress a/b (m.yaml:3)', 'c', 'k:1', { 'request.timeout.ms': 'soon' })).toThrow(
      /kafka egress a\/b \(m\.yaml:3\): property 'request\.timeout\.ms' must be an integer/,
    );
    expect(() => clientSettings('kafka egress a/b', 'c', 'k:1', { 'security.protocol': 'SASL_SSL' })).toThrow(/sasl\.jaas\.config/);
  });
});
