/**
 * Benchmark app for the Kafka section (bench/kafka_bench.ts): Kafka -> `kb/counter` -> Kafka.
 *
 * The ingress reads `inTopic` from its start (record key = counter id, value = raw bytes under the
 * non-built-in type `kb/raw`); `kb/counter` increments a `Types.long` per id and writes
 * `<input value bytes>:<n>` with the same key to `outTopic` through the Kafka egress, with the
 * given delivery semantic. The input value is the produce time (ms, as text), so every output
 * record carries the time its input was produced and a reader can compute end-to-end latency.
 *
 * The module is imported by the main thread and by every worker; only the main thread starts the
 * connectors (constructing them does no I/O). Params must be structured-clone safe.
 */
import { createApp } from '../../api/app.js';
import { Types } from '../../api/types.js';
import type { IngressContext, RoutedMessage } from '../../api/connector_api.js';
import { KafkaIngress } from '../../connectors/kafka/kafka_ingress.js';
import { KafkaEgress } from '../../connectors/kafka/kafka_egress.js';
import { kafkaProducerRecord } from '../../connectors/kafka/kafka_record.js';
import { nowMs } from './latency_egress.js';

export interface KafkaCounterParams {
  /** Bootstrap brokers, `host:port[,host:port...]`. */
  brokers: string;
  inTopic: string;
  outTopic: string;
  /** The ingress's consumer group (offsets are committed there after checkpoints). */
  group: string;
  semantic: 'exactly-once' | 'at-least-once';
  /** `transactional.id` of the exactly-once egress (unique per run). */
  txId: string;
}

export const KB_COUNTER = 'kb/counter';
export const KB_INGRESS = 'kb/in';
export const KB_EGRESS = 'kb/out';
/** Not a built-in type: the ingress hands the value over as raw bytes. */
export const KB_RAW = 'kb/raw';

const COLON = 0x3a;

/**
 * The Kafka ingress, noting when it handed the engine its first record (wall clock, ms, as
 * `nowMs()`): the start of consumption, from which the benchmark times a closed-loop run. One
 * comparison per record is all it adds.
 */
export class BenchKafkaIngress extends KafkaIngress {
  firstSubmitAtMs: number | undefined;

  override start(ctx: IngressContext<RoutedMessage>): Promise<void> {
    return super.start({
      ...ctx,
      submit: (records) => {
        if (this.firstSubmitAtMs === undefined) this.firstSubmitAtMs = nowMs();
        return ctx.submit(records);
      },
    });
  }
}

export default function kafkaCounterApp(params: KafkaCounterParams) {
  for (const k of ['brokers', 'inTopic', 'outTopic', 'group', 'txId'] as const) {
    if (typeof params?.[k] !== 'string' || params[k] === '') throw new Error(`kafka counter app: params.${k}: expected a non-empty string`);
  }
  if (params.semantic !== 'exactly-once' && params.semantic !== 'at-least-once') {
    throw new Error(`kafka counter app: params.semantic: expected 'exactly-once' or 'at-least-once', got ${String(params.semantic)}`);
  }
  const outTopic = params.outTopic;
  return createApp()
    .function({
      typename: KB_COUNTER,
      specs: [{ name: 'n', type: Types.long }] as const,
      handler(ctx, msg) {
        const n = (ctx.storage.n ?? 0) + 1;
        ctx.storage.n = n;
        const input = msg.bytes();
        const suffix = String(n);
        const value = new Uint8Array(input.length + 1 + suffix.length);
        value.set(input, 0);
        value[input.length] = COLON;
        for (let i = 0; i < suffix.length; i++) value[input.length + 1 + i] = suffix.charCodeAt(i);
        ctx.egress(KB_EGRESS, kafkaProducerRecord({ topic: outTopic, key: ctx.self.id, value }));
      },
    })
    .ingress(
      new BenchKafkaIngress({
        id: KB_INGRESS,
        address: params.brokers,
        consumerGroupId: params.group,
        startupPosition: { type: 'earliest' },
        topics: [{ topic: params.inTopic, valueType: KB_RAW, targets: [KB_COUNTER] }],
      }),
    )
    .egress(
      new KafkaEgress({
        id: KB_EGRESS,
        address: params.brokers,
        deliverySemantic:
          params.semantic === 'exactly-once' ? { type: 'exactly-once', transactionTimeoutMs: 60_000 } : { type: 'at-least-once' },
        properties: { 'transactional.id': params.txId },
      }),
    );
}
