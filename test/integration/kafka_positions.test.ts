// The Kafka ingress on its own against the real broker (an in-test IngressContext stands in for
// the engine): every startup position, the checkpoint position winning over them, custom routers,
// unknown targets dead-lettered; and the egress's `none` semantic.
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import type { EgressRecord, IngressContext, RoutedMessage } from '../../api/connector_api.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { KafkaIngress, type KafkaIngressOptions } from '../../connectors/kafka/kafka_ingress.js';
import { KafkaEgress } from '../../connectors/kafka/kafka_egress.js';
import { kafkaProducerRecord } from '../../connectors/kafka/kafka_record.js';
import { MemoryLogger } from '../fixtures/engine_harness.js';
import { createTopics, eventually, freshGroup, freshTopic, kafkaBrokers, readCommitted } from '../fixtures/kafka_test_env.js';

const TARGET = 'kp/fn';

/** Collects what the ingress submits; durable at once (so group offsets are committed). */
function collectingContext(): { ctx: IngressContext<RoutedMessage>; got: RoutedMessage[]; rejected: unknown[]; abort: () => void } {
  const got: RoutedMessage[] = [];
  const rejected: unknown[] = [];
  const ac = new AbortController();
  const ctx: IngressContext<RoutedMessage> = {
    submit: (records) => {
      got.push(...records);
      return true;
    },
    whenWritable: async () => {},
    signal: ac.signal,
    logger: new MemoryLogger(),
    reject: (record) => rejected.push(record),
    hasFunction: (t) => t === TARGET,
    whenDurable: async () => {},
  };
  return { ctx, got, rejected, abort: () => ac.abort() };
}

const stopping: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const s of stopping) await s();
});

/** Start an ingress on `topic`, collect until `n` messages arrived (or 30 s), stop it; the values as strings. */
async function consume(
  opts: Partial<KafkaIngressOptions> & { topic: string; group: string },
  n: number,
  seek?: unknown,
): Promise<{ values: string[]; ingress: KafkaIngress; rejected: unknown[] }> {
  const ingress = new KafkaIngress({
    id: 'kp/in',
    address: kafkaBrokers().join(','),
    consumerGroupId: opts.group,
    topics: opts.topics ?? [{ topic: opts.topic, valueType: Types.string.typename, targets: [TARGET] }],
    ...(opts.startupPosition ? { startupPosition: opts.startupPosition } : {}),
    ...(opts.deadLetterTopic ? { deadLetterTopic: opts.deadLetterTopic } : {}),
  });
  if (seek !== undefined) ingress.seek(seek);
  const c = collectingContext();
  await ingress.start(c.ctx);
  stopping.push(() => ingress.stop());
  if (n > 0) await eventually(`${n} records consumed`, () => c.got.length >= n, 30_000, 50);
  else await new Promise((r) => setTimeout(r, 2_000));
  await ingress.stop();
  c.abort();
  return { values: c.got.map((m) => m.message.asString()), ingress, rejected: c.rejected };
}

async function produce(topic: string, values: string[], partition = 0): Promise<number[]> {
  const p = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  const stamps: number[] = [];
  for (const v of values) {
    const ts = Date.now();
    stamps.push(ts);
    await p.send({
      topic,
      acks: -1,
      messages: [{ key: `k-${v}`, value: Buffer.from(Types.string.serialize(v)), partition, timestamp: String(ts) }],
    });
    await new Promise((r) => setTimeout(r, 5));
  }
  await p.disconnect();
  return stamps;
}

describe('Kafka ingress positions', () => {
  it('earliest, latest, specific-offsets, date and group-offsets start where they say; a checkpoint position wins', async () => {
    const topic = freshTopic('pos');
    await createTopics(kafkaBrokers(), [{ topic, numPartitions: 1 }]);
    const stamps = await produce(topic, ['a', 'b', 'c', 'd', 'e']);

    expect((await consume({ topic, group: freshGroup('e'), startupPosition: { type: 'earliest' } }, 5)).values).toEqual([
      'a',
      'b',
      'c',
      'd',
      'e',
    ]);
    expect(
      (await consume({ topic, group: freshGroup('s'), startupPosition: { type: 'specific-offsets', offsets: { [`${topic}/0`]: 3 } } }, 2))
        .values,
    ).toEqual(['d', 'e']);
    expect((await consume({ topic, group: freshGroup('d'), startupPosition: { type: 'date', date: stamps[2]! } }, 3)).values).toEqual([
      'c',
      'd',
      'e',
    ]);
    expect((await consume({ topic, group: freshGroup('l'), startupPosition: { type: 'latest' } }, 0)).values).toEqual([]);

    // group-offsets: the group's committed offset (committed by an earlier run after its "checkpoint").
    const group = freshGroup('g');
    const first = await consume({ topic, group, startupPosition: { type: 'earliest' } }, 5);
    expect(first.ingress.position()).toEqual({ [`${topic}/0`]: 5 });
    await eventually('group offsets committed', () => first.ingress.stats.offsetCommits > 0, 10_000).catch(() => {});
    const admin = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const committed = (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0]!.partitions[0]!.offset;
    await admin.disconnect();
    expect(committed).toBe('5');
    await produce(topic, ['f']);
    expect((await consume({ topic, group, startupPosition: { type: 'group-offsets' } }, 1)).values).toEqual(['f']);

    // A checkpoint's position overrides the startup position.
    expect(
      (await consume({ topic, group: freshGroup('c'), startupPosition: { type: 'latest' } }, 2, { [`${topic}/0`]: 4 })).values,
    ).toEqual(['e', 'f']);
  });

  it('custom routers route by anything in the record; unknown targets are dead-lettered', async () => {
    const topic = freshTopic('router');
    const dlt = freshTopic('router-dlt');
    await createTopics(kafkaBrokers(), [
      { topic, numPartitions: 1 },
      { topic: dlt, numPartitions: 1 },
    ]);
    await produce(topic, ['x', 'y', 'z']);
    const r = await consume(
      {
        topic,
        group: freshGroup('r'),
        startupPosition: { type: 'earliest' },
        deadLetterTopic: dlt,
        topics: [
          {
            topic,
            router: (rec) => {
              const v = Types.string.deserialize(rec.value!);
              if (v === 'z') return { to: { typename: 'kp/nobody', id: 'z' }, message: Message.of(Types.string, v) };
              return { to: { typename: TARGET, id: `${rec.partition}-${rec.offset}` }, message: Message.of(Types.string, v.toUpperCase()) };
            },
          },
        ],
      },
      2,
    );
    expect(r.values).toEqual(['X', 'Y']);
    const dead = await readCommitted(kafkaBrokers(), [dlt]);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers['statefn.error.code']).toBe('STATEFN_UNKNOWN_FUNCTION_TYPE');
    expect(r.ingress.stats.deadLettered).toBe(1);
  });
});

describe('Kafka egress, delivery semantic none', () => {
  it('writes records and dead-letters ones that are not KafkaProducerRecords', async () => {
    const topic = freshTopic('none');
    await createTopics(kafkaBrokers(), [{ topic, numPartitions: 1 }]);
    const egress = new KafkaEgress({ id: 'kp/out', address: kafkaBrokers().join(','), deliverySemantic: { type: 'none' } });
    const dead: EgressRecord[] = [];
    await egress.start({
      logger: new MemoryLogger(),
      signal: new AbortController().signal,
      deadLetter: (r) => dead.push(r),
      lineage: 'test',
    });
    await egress.write([
      { egressId: 'kp/out', message: kafkaProducerRecord({ topic, key: 'a', value: 'one' }) },
      { egressId: 'kp/out', message: Message.of(Types.string, 'not a record') },
      { egressId: 'kp/out', message: kafkaProducerRecord({ topic, value: 'two' }) },
    ]);
    await egress.stop();
    const got = await readCommitted(kafkaBrokers(), [topic]);
    expect(got.map((g) => [g.key, g.value!.toString()])).toEqual([
      ['a', 'one'],
      [null, 'two'],
    ]);
    expect(dead).toHaveLength(1);
    expect(egress.deliverBeforeCheckpoint).toBe(true);
    expect(egress.commitEpoch).toBeUndefined();
  });
});
