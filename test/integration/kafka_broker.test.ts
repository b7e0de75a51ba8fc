// The test run's real Kafka broker: transactions (read_committed hides aborted records), and a
// broker of our own that keeps its data across restart() on the same port.
import { Kafka, Partitioners, logLevel, type KafkaMessage } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { startKafkaBroker, type KafkaBroker } from '../../scripts/kafka_broker.js';
import { createTopics, freshGroup, freshTopic, kafkaBrokers } from '../fixtures/kafka_test_env.js';

function client(brokers: string[], clientId: string): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.WARN });
}

/**
 * Consume `topic` from the beginning until `expected` records arrived, then `settleMs` more (to
 * catch any extra record), and return what arrived.
 */
async function consumeAll(
  kafka: Kafka,
  topic: string,
  expected: number,
  opts: { readUncommitted?: boolean; settleMs?: number; timeoutMs?: number } = {},
): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer({ groupId: freshGroup(topic), readUncommitted: opts.readUncommitted ?? false, maxWaitTimeInMs: 100 });
  const got: KafkaMessage[] = [];
  let reached: () => void = () => {};
  const enough = new Promise<void>((res) => (reached = res));
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        got.push(message);
        if (got.length >= expected) reached();
        return Promise.resolve();
      },
    });
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      enough,
      new Promise<void>((_, rej) => {
        timer = setTimeout(
          () => rej(new Error(`only ${got.length} of ${expected} records from ${topic} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    await new Promise((r) => setTimeout(r, opts.settleMs ?? 1_000));
    return got;
  } finally {
    await consumer.disconnect();
  }
}

const values = (ms: KafkaMessage[]): string[] => ms.map((m) => m.value?.toString() ?? '').sort();

describe('Kafka broker of the test run', () => {
  it('read_committed consumers see only committed transactional records', async () => {
    const brokers = kafkaBrokers();
    const topic = freshTopic('tx');
    await createTopics(brokers, [{ topic, numPartitions: 3 }]);
    const kafka = client(brokers, 'tx-test');
    const producer = kafka.producer({
      transactionalId: freshTopic('tx-producer'),
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    try {
      const committed = await producer.transaction();
      await committed.send({
        topic,
        messages: Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: `committed-${i}` })),
      });
      await committed.commit();

      const aborted = await producer.transaction();
      await aborted.send({
        topic,
        messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `aborted-${i}` })),
      });
      await aborted.abort();
    } finally {
      await producer.disconnect();
    }

    const readCommitted = await consumeAll(kafka, topic, 100);
    expect(readCommitted).toHaveLength(100);
    expect(values(readCommitted)).toEqual(Array.from({ length: 100 }, (_, i) => `committed-${i}`).sort());
    // The aborted records were really written: a read_uncommitted consumer sees all 110.
    const readUncommitted = await consumeAll(kafka, topic, 110, { readUncommitted: true, settleMs: 0 });
    expect(readUncommitted.filter((m) => m.value?.toString().startsWith('aborted-'))).toHaveLength(10);
  });
});

describe('startKafkaBroker', () => {
  let broker: KafkaBroker | undefined;
  afterAll(async () => {
    await broker?.stop();
  });

  it('restart() comes back on the same port with the data kept', async () => {
    broker = await startKafkaBroker();
    const { port, bootstrap } = broker;
    const topic = freshTopic('restart');
    await createTopics([bootstrap], [{ topic, numPartitions: 2 }]);
    const produce = async (from: number): Promise<void> => {
      const producer = client([bootstrap], 'restart-test').producer({ createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      try {
        await producer.send({
          topic,
          acks: -1,
          messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${from + i}`, value: `m-${from + i}` })),
        });
      } finally {
        await producer.disconnect();
      }
    };
    await produce(0);
    await broker.restart();
    expect(broker.port).toBe(port);
    expect(broker.bootstrap).toBe(bootstrap);
    await produce(10);
    const got = await consumeAll(client([bootstrap], 'restart-test'), topic, 20, { settleMs: 500 });
    expect(values(got)).toEqual(Array.from({ length: 20 }, (_, i) => `m-${i}`).sort());
  });
});
