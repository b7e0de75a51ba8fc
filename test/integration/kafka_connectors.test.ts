// The Kafka ingress and egress against the real broker of the test run: a StateFun-style
// module.yaml (io.statefun.kafka.v1 ingress + exactly-once egress) with an embedded greeter,
// dead-lettered records, group offsets committed after checkpoints, and a restart that neither
// loses nor repeats records.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Types } from '../../api/types.js';
import type { KafkaIngress } from '../../connectors/kafka/kafka_ingress.js';
import { MemoryLogger } from '../fixtures/engine_harness.js';
import {
  createTopics,
  eventually,
  freshGroup,
  freshTopic,
  greeterModuleYaml,
  kafkaBrokers,
  readCommitted,
} from '../fixtures/kafka_test_env.js';

const appUrl = new URL('../fixtures/apps/kafka_greeter_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `statefn-${prefix}-`));
  dirs.push(d);
  return d;
}

describe('Kafka ingress and egress (module.yaml, real broker)', () => {
  it('greets each name once, dead-letters bad records, commits offsets, and survives a restart', async () => {
    const brokers = kafkaBrokers();
    const names = freshTopic('names');
    const greets = freshTopic('greets');
    const dlt = freshTopic('dlt');
    const group = freshGroup('greeter');
    await createTopics(brokers, [
      { topic: names, numPartitions: 3 },
      { topic: greets, numPartitions: 2 },
      { topic: dlt, numPartitions: 1 },
    ]);
    const dir = tempDir('kafka-conn');
    const yamlPath = join(dir, 'module.yaml');
    writeFileSync(yamlPath, greeterModuleYaml({ brokers: brokers.join(','), names, dlt, group, semantic: 'exactly-once' }));

    const kafka = new Kafka({ clientId: 'statefn-test', brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const str = (s: string): Buffer => Buffer.from(Types.string.serialize(s));
    const produceNames = async (ids: string[], round: number): Promise<void> => {
      await producer.send({ topic: names, acks: -1, messages: ids.map((id) => ({ key: id, value: str(`round${round}`) })) });
    };
    const ids = Array.from({ length: 50 }, (_, i) => `user${i}`);
    await produceNames(ids, 1);
    await produceNames(ids, 2);
    // Three records no router can take: no key, a value that is not a StringValue, an empty key.
    await producer.send({
      topic: names,
      messages: [
        { key: null, value: str('keyless') },
        { key: 'user0', value: Buffer.from([0xff, 0xff, 0xff]) },
        { key: '', value: str('empty key') },
      ],
    });

    const stateDir = join(dir, 'state');
    const ref = { module: appUrl, moduleYaml: yamlPath, params: { outTopic: greets } };
    const logger = new MemoryLogger();
    let engine = await Engine.start(ref, { stateDir, workers: 2, logger, limits: { checkpointIntervalMs: 300 } });
    const ingress = engine.app.ingresses[0]!.connector as unknown as KafkaIngress;

    await eventually('100 greetings committed', async () => (await readCommitted(brokers, [greets], 20_000)).length >= 100, 60_000, 500);
    const first = await readCommitted(brokers, [greets]);
    expect(first).toHaveLength(100);
    // Each id greeted twice, in order, exactly once each.
    for (const id of ids) {
      const mine = first.filter((r) => r.key === id).map((r) => r.value!.toString().split(':').slice(0, 2).join(':'));
      expect(mine).toEqual([`${id}:1`, `${id}:2`]);
    }
    expect(first.every((r) => r.headers['greeting-number'] !== undefined)).toBe(true);

    // The bad records are on the dead-letter topic with the reason in headers.
    const dead = await readCommitted(brokers, [dlt]);
    expect(dead).toHaveLength(3);
    expect(dead.map((d) => d.headers['statefn.error.code']).sort()).toEqual([
      'STATEFN_INGRESS_RECORD_INVALID',
      'STATEFN_INGRESS_RECORD_INVALID',
      'STATEFN_TYPE_MISMATCH',
    ]);
    expect(dead.every((d) => d.headers['statefn.source.topic'] === names && d.headers['statefn.source.offset'] !== undefined)).toBe(true);
    expect(ingress.stats.deadLettered).toBe(3);

    // The group's offsets reach the end of the topic once a checkpoint covers everything.
    const admin = kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(names);
    await eventually(
      'group offsets at the end of the topic',
      async () => {
        const committed = (await admin.fetchOffsets({ groupId: group, topics: [names] }))[0]!.partitions;
        return ends.every((e) => committed.find((c) => c.partition === e.partition)?.offset === e.high);
      },
      30_000,
    );

    // A clean stop and restart: nothing read twice, new records continue the counts.
    await engine.stop();
    engine = await Engine.start(ref, { stateDir, workers: 2, logger, limits: { checkpointIntervalMs: 300 } });
    await produceNames(ids, 3);
    await eventually('150 greetings committed', async () => (await readCommitted(brokers, [greets], 20_000)).length >= 150, 60_000, 500);
    await new Promise((r) => setTimeout(r, 1_000)); // a duplicate would show up by now
    const all = await readCommitted(brokers, [greets]);
    expect(all).toHaveLength(150);
    for (const id of ids) {
      const mine = all.filter((r) => r.key === id).map((r) => r.value!.toString().split(':').slice(0, 2).join(':'));
      expect(mine).toEqual([`${id}:1`, `${id}:2`, `${id}:3`]);
    }
    await engine.stop();

    // A wiped state directory is a new history: its checkpoints number from 1 again, and the
    // egress must not mistake the old history's committed checkpoints for its own.
    rmSync(stateDir, { recursive: true, force: true });
    engine = await Engine.start(ref, { stateDir, workers: 2, logger, limits: { checkpointIntervalMs: 300 } });
    await eventually('300 greetings committed', async () => (await readCommitted(brokers, [greets], 20_000)).length >= 300, 60_000, 500);
    const again = await readCommitted(brokers, [greets]);
    expect(again).toHaveLength(300);
    expect(again.filter((r) => r.key === 'user7').map((r) => r.value!.toString().split(':').slice(0, 2).join(':'))).toEqual([
      'user7:1',
      'user7:2',
      'user7:3',
      'user7:1',
      'user7:2',
      'user7:3',
    ]);
    await engine.stop();
    await admin.disconnect();
    await producer.disconnect();
    expect(logger.errors()).toEqual([]);
  });

  it('pauses partitions under back-pressure and resumes them; the at-least-once egress delivers every record', async () => {
    const brokers = kafkaBrokers();
    const names = freshTopic('names-bp');
    const greets = freshTopic('greets-bp');
    const group = freshGroup('bp');
    await createTopics(brokers, [
      { topic: names, numPartitions: 2 },
      { topic: greets, numPartitions: 2 },
    ]);
    const dir = tempDir('kafka-bp');
    const yamlPath = join(dir, 'module.yaml');
    // A slow function (2 ms a message) behind tiny queues: the ingress must pause between groups.
    writeFileSync(yamlPath, greeterModuleYaml({ brokers: brokers.join(','), names, group, semantic: 'at-least-once', fetchBytes: 4096 }));
    const kafka = new Kafka({ clientId: 'statefn-test', brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const ids = Array.from({ length: 100 }, (_, i) => `k${i}`);
    const rounds = 30;
    for (let round = 1; round <= rounds; round++) {
      // 1 KB values: far more than the 64 KiB rings hold, so the ingress has to wait.
      await producer.send({
        topic: names,
        acks: -1,
        messages: ids.map((id) => ({ key: id, value: Buffer.from(Types.string.serialize(`r${round}${'x'.repeat(1000)}`)) })),
      });
    }
    await producer.disconnect();

    const logger = new MemoryLogger();
    // A slow function and tiny queues: the ingress must pause and resume many times.
    const engine = await Engine.start(
      { module: appUrl, moduleYaml: yamlPath, params: { outTopic: greets, spinMs: 0.5 } },
      {
        stateDir: join(dir, 'state'),
        workers: 2,
        logger,
        limits: {
          checkpointIntervalMs: 300,
          pendingMessagesMax: 16,
          ringBytes: 64 * 1024,
          frameBytesMax: 16 * 1024,
          outboxBytesHighWater: 16 * 1024,
          outboxBytesLowWater: 4 * 1024,
        },
      },
    );
    const ingress = engine.app.ingresses[0]!.connector as unknown as KafkaIngress;
    const total = ids.length * rounds;
    try {
      await eventually(`${total} greetings`, async () => (await readCommitted(brokers, [greets], 20_000)).length >= total, 90_000, 1_000);
      const all = await readCommitted(brokers, [greets]);
      expect(all).toHaveLength(total);
      for (const id of ids) {
        const mine = all.filter((r) => r.key === id).map((r) => Number(r.value!.toString().split(':')[1]));
        expect(mine).toEqual(Array.from({ length: rounds }, (_, k) => k + 1));
      }
      expect(ingress.stats.pauses).toBeGreaterThan(0);
      expect(ingress.stats.submitted).toBe(total);
    } finally {
      await engine.stop();
    }
    expect(logger.errors()).toEqual([]);
  });
});
