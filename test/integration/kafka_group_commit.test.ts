// The Kafka ingress commits its consumer group's offsets at the first completed checkpoint after
// a start, even when no record arrives (StateFun commits on every completed checkpoint): after a
// crash between a checkpoint and its commit, the group's offsets must not stay stale until new
// records come. Unchanged positions are not committed again. Real broker, real engine.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Types } from '../../api/types.js';
import type { IngressContext, RoutedMessage } from '../../api/connector_api.js';
import type { KafkaIngress } from '../../connectors/kafka/kafka_ingress.js';
import { KafkaOffsetCommitter } from '../../connectors/kafka/kafka_offset_committer.js';
import { MemoryLogger } from '../fixtures/engine_harness.js';
import { createTopics, eventually, freshGroup, freshTopic, greeterModuleYaml, kafkaBrokers } from '../fixtures/kafka_test_env.js';

const appUrl = new URL('../fixtures/apps/kafka_greeter_app.ts', import.meta.url).href;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('Kafka group offsets after a restart', () => {
  it('the first checkpoint after a restart commits the restored positions when no record arrives', async () => {
    const brokers = kafkaBrokers();
    const names = freshTopic('gc-names');
    const greets = freshTopic('gc-greets');
    const group = freshGroup('gc');
    await createTopics(brokers, [
      { topic: names, numPartitions: 2 },
      { topic: greets, numPartitions: 1 },
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'statefn-kafka-gc-'));
    dirs.push(dir);
    const yamlPath = join(dir, 'module.yaml');
    writeFileSync(yamlPath, greeterModuleYaml({ brokers: brokers.join(','), names, group, semantic: 'at-least-once' }));

    const kafka = new Kafka({ clientId: 'statefn-test', brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const str = (s: string): Buffer => Buffer.from(Types.string.serialize(s));
    for (const partition of [0, 1]) {
      await producer.send({
        topic: names,
        acks: -1,
        messages: Array.from({ length: 7 + partition * 4 }, (_, i) => ({ key: `u${partition}-${i}`, value: str('hi'), partition })),
      });
    }
    await producer.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    const ends = (await admin.fetchTopicOffsets(names))
      .map((p) => ({ partition: p.partition, offset: p.high }))
      .sort((a, b) => a.partition - b.partition);
    const committed = async (): Promise<{ partition: number; offset: string }[]> =>
      (await admin.fetchOffsets({ groupId: group, topics: [names] }))[0]!.partitions
        .map((p) => ({ partition: p.partition, offset: p.offset }))
        .sort((a, b) => a.partition - b.partition);
    const atEnds = async (): Promise<boolean> => JSON.stringify(await committed()) === JSON.stringify(ends);

    const stateDir = join(dir, 'state');
    const ref = { module: appUrl, moduleYaml: yamlPath, params: { outTopic: greets } };
    const logger = new MemoryLogger();
    const options = { stateDir, workers: 1, logger, limits: { checkpointIntervalMs: 300 } };
    let engine = await Engine.start(ref, options);
    await eventually('the group committed at the end of the topic', atEnds, 60_000).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(await committed())} vs ${JSON.stringify(ends)}`);
    });
    await engine.stop();

    // The commit of the last checkpoint is lost (a crash between the checkpoint record and the
    // commit, which is informational and comes after it): the group is left behind the checkpoint.
    // Emulated by moving the group back while no engine runs.
    await admin.setOffsets({ groupId: group, topic: names, partitions: ends.map((e) => ({ partition: e.partition, offset: '0' })) });
    expect(await committed()).toEqual(ends.map((e) => ({ partition: e.partition, offset: '0' })));

    // Restart from the checkpoint; no new record arrives.
    engine = await Engine.start(ref, options);
    const ingress = engine.app.ingresses[0]!.connector as unknown as KafkaIngress;
    expect(ingress.position()).toEqual(Object.fromEntries(ends.map((e) => [`${names}/${e.partition}`, Number(e.offset)])));
    await engine.checkpoint();
    await eventually('the restored positions committed to the group after the first checkpoint', atEnds, 20_000).catch(
      async (e: unknown) => {
        throw new Error(
          `${(e as Error).message}: the group is at ${JSON.stringify(await committed())}, the checkpoint at ${JSON.stringify(ends)}`,
        );
      },
    );
    expect(ingress.stats.offsetCommits).toBe(1);

    // Later checkpoints with the same positions commit nothing more.
    await engine.checkpoint();
    await engine.checkpoint();
    expect(ingress.stats.offsetCommits).toBe(1);
    expect(ingress.stats.consumed).toBe(0);
    await engine.stop();
    await admin.disconnect();
  });

  it('records arriving before that checkpoint replace the restored commit instead of waiting behind it', async () => {
    const brokers = kafkaBrokers();
    const topic = freshTopic('gc-replace');
    const group = freshGroup('gc-replace');
    await createTopics(brokers, [{ topic, numPartitions: 1 }]);
    const kafka = new Kafka({ clientId: 'statefn-test', brokers, logLevel: logLevel.NOTHING });
    // The engine's checkpoints, completed by hand: whenDurable() waits for the next one.
    const checkpoints: (() => void)[] = [];
    const ctx = {
      whenDurable: () => new Promise<void>((r) => checkpoints.push(r)),
      logger: new MemoryLogger(),
    } as unknown as IngressContext<RoutedMessage>;
    const stats = { offsetCommits: 0 };
    const committer = new KafkaOffsetCommitter(kafka, {
      where: 'test',
      consumerGroupId: group,
      signal: new AbortController().signal,
      stats,
    });
    const admin = kafka.admin();
    await admin.connect();
    const committed = async (): Promise<string> =>
      (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0]!.partitions[0]!.offset;
    try {
      const positions = new Map([[`${topic}/0`, 3]]);
      committer.commitRestored(ctx, positions);
      // Records arrive before the first checkpoint completes: their commit replaces the restored one.
      positions.set(`${topic}/0`, 5);
      committer.markDirty();
      committer.schedule(ctx, positions);
      expect(checkpoints).toHaveLength(2);
      checkpoints[0]!();
      checkpoints[1]!();
      await eventually('the moved positions committed', async () => (await committed()) === '5', 20_000);
      expect(stats.offsetCommits).toBe(1);
      // Nothing moved: no commit is scheduled.
      committer.schedule(ctx, positions);
      expect(checkpoints).toHaveLength(2);
    } finally {
      await committer.disconnect();
      await admin.disconnect();
    }
  });
});
