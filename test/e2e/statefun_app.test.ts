// "An application written for StateFun 3.x runs on `statefn start` unchanged": a module.yaml with
// an io.statefun.endpoints.v2/http endpoint, a Kafka ingress and an exactly-once Kafka egress,
// and a function service written with StateFun's official Python SDK (its Kafka egress record
// built by the SDK's kafka_egress_message). Nothing statefn-specific in either.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { Types } from '../../api/types.js';
import { createTopics, freshGroup, freshTopic, kafkaBrokers, readCommitted } from '../fixtures/kafka_test_env.js';
import { startPyService, type RemoteService } from '../fixtures/remote/services.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
let service: RemoteService | undefined;
afterAll(async () => {
  await service?.stop();
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

const MODULE_YAML = `kind: io.statefun.endpoints.v2/http
spec:
  functions: remote-test/*
  urlPathTemplate: \${FN_URL}
  transport:
    type: io.statefun.transports.v1/async
    call: 30s
    timeouts:
      connect: 5s
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: remote-test/names
  address: \${BROKERS}
  consumerGroupId: \${GROUP}
  startupPosition:
    type: earliest
  topics:
    - topic: \${NAMES}
      valueType: io.statefun.types/string
      targets:
        - remote-test/kafka-greeter
---
kind: io.statefun.kafka.v1/egress
spec:
  id: remote-test/kafka-out
  address: \${BROKERS}
  deliverySemantic:
    type: exactly-once
    transactionTimeout: 15min
`;

describe('a StateFun 3.x application (module.yaml + official Python SDK service)', () => {
  it('runs unchanged: Kafka in, remote function, Kafka out, exactly once', async () => {
    const brokers = kafkaBrokers();
    const names = freshTopic('sf-names');
    const greetings = freshTopic('sf-greetings');
    const group = freshGroup('sf');
    await createTopics(brokers, [
      { topic: names, numPartitions: 2 },
      { topic: greetings, numPartitions: 1 },
    ]);
    service = await startPyService({ env: { REMOTE_TEST_KAFKA_TOPIC: greetings } });

    const producer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic: names,
      acks: -1,
      messages: ['u1', 'u2', 'u1'].map((id) => ({ key: id, value: Buffer.from(Types.string.serialize(id)) })),
    });
    await producer.disconnect();

    const dir = mkdtempSync(join(tmpdir(), 'statefn-sfapp-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'module.yaml'), MODULE_YAML);
    const env = { ...process.env, FN_URL: service.url, BROKERS: brokers.join(','), GROUP: group, NAMES: names };
    const run = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [join(repo, 'bin', 'statefn.js'), 'start', dir, '--state-dir', join(dir, 'state'), '--stop-after', '8s', '--no-progress'],
        { cwd: repo, env, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearTimeout(guard);
        resolve({ code, stderr });
      });
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('"processed":3');

    const out = await readCommitted(brokers, [greetings]);
    expect(out.map((r) => `${r.key} ${r.value!.toString()}`).sort()).toEqual([
      'u1 Hello u1, seen 1',
      'u1 Hello u1, seen 2',
      'u2 Hello u2, seen 1',
    ]);
    expect(out).toHaveLength(3);
    const u1 = out.filter((r) => r.key === 'u1').map((r) => r.value!.toString());
    expect(u1).toEqual(['Hello u1, seen 1', 'Hello u1, seen 2']);
  }, 180_000);
});
