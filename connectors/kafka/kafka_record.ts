/**
 * StateFun's Kafka egress record: `io.statefun.sdk.egress.KafkaProducerRecord`, the message a
 * function sends to a Kafka egress (remote functions send it as a TypedValue with the typename
 * below; embedded functions build one with `kafkaProducerRecord`).
 *
 * Wire format (upstream's kafka-egress.proto): `string key = 1; bytes value_bytes = 2;
 * string topic = 3;` — an empty key means a null key. statefn adds one field upstream does not
 * have, `repeated Header headers = 15` (`{string key = 1; bytes value = 2}`); upstream SDKs never
 * set it and upstream decoders skip it.
 *
 * The codec is protobufjs (reflection, no generated code): a well-kept library rather than a
 * hand-written decoder, so malformed bytes fail with its precise errors.
 */
import protobuf from 'protobufjs';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { Message } from '../../api/message.js';
import { Types, type Type } from '../../api/types.js';

export const KAFKA_PRODUCER_RECORD_TYPENAME = 'type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord';

const PROTO = `
syntax = "proto3";
package io.statefun.sdk.egress;
message KafkaProducerRecord {
  string key = 1;
  bytes value_bytes = 2;
  string topic = 3;
  // statefn extension (upstream has fields 1-3 only)
  message Header { string key = 1; bytes value = 2; }
  repeated Header headers = 15;
}
`;
const root = protobuf.parse(PROTO, { keepCase: false }).root;
const RecordProto = root.lookupType('io.statefun.sdk.egress.KafkaProducerRecord');

export interface KafkaHeader {
  readonly key: string;
  readonly value: Uint8Array;
}

/** A record for a Kafka egress. */
export interface KafkaProducerRecord {
  readonly topic: string;
  /** Undefined (or '') for a null key: the producer's partitioner then spreads records. */
  readonly key?: string | undefined;
  readonly value: Uint8Array;
  readonly headers?: readonly KafkaHeader[] | undefined;
}

interface Decoded {
  key?: string;
  valueBytes?: Uint8Array;
  topic?: string;
  headers?: { key?: string; value?: Uint8Array }[];
}

function encodeRecord(r: KafkaProducerRecord): Uint8Array {
  const obj: Decoded = { topic: r.topic, valueBytes: r.value };
  if (r.key !== undefined && r.key !== '') obj.key = r.key;
  if (r.headers !== undefined && r.headers.length > 0) obj.headers = r.headers.map((h) => ({ key: h.key, value: h.value }));
  return RecordProto.encode(RecordProto.fromObject(obj)).finish();
}

function decodeRecord(bytes: Uint8Array): KafkaProducerRecord {
  let m: Decoded;
  try {
    m = RecordProto.toObject(RecordProto.decode(bytes), { defaults: false });
  } catch (e) {
    throw new StatefnError(
      ErrorCode.TYPE_MISMATCH,
      `${KAFKA_PRODUCER_RECORD_TYPENAME}: the bytes are not a KafkaProducerRecord (${(e as Error).message})`,
      { cause: e },
    );
  }
  if (m.topic === undefined || m.topic === '') {
    throw new StatefnError(
      ErrorCode.TYPE_MISMATCH,
      `${KAFKA_PRODUCER_RECORD_TYPENAME}: the record has no topic (field 3); set it in the function (e.g. KafkaEgressBuilder.withTopic)`,
    );
  }
  return {
    topic: m.topic,
    key: m.key === undefined || m.key === '' ? undefined : m.key,
    value: m.valueBytes ?? new Uint8Array(0),
    headers: (m.headers ?? []).map((h) => ({ key: h.key ?? '', value: h.value ?? new Uint8Array(0) })),
  };
}

/** The `Type` of Kafka egress records, for `Message.of` and `message.as`. */
export const KafkaProducerRecordType: Type<KafkaProducerRecord> = Types.custom(KAFKA_PRODUCER_RECORD_TYPENAME, encodeRecord, decodeRecord);

const utf8 = new TextEncoder();

/**
 * Build the message an embedded function passes to `ctx.egress(kafkaEgressId, ...)`. `value` may
 * be bytes, a string (UTF-8), or a Message (its bytes in StateFun's wire format).
 */
export function kafkaProducerRecord(r: {
  topic: string;
  key?: string | undefined;
  value: Uint8Array | string | Message;
  headers?: Readonly<Record<string, string | Uint8Array>> | undefined;
}): Message {
  const value = typeof r.value === 'string' ? utf8.encode(r.value) : r.value instanceof Message ? r.value.bytes() : r.value;
  const headers = Object.entries(r.headers ?? {}).map(([key, v]) => ({ key, value: typeof v === 'string' ? utf8.encode(v) : v }));
  return Message.of(KafkaProducerRecordType, { topic: r.topic, key: r.key, value, headers });
}
