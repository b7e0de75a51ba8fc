// Kafka faults end to end: a process killed between a checkpoint and the commit of its Kafka
// transaction (fault injection in the real CLI), and a broker restarted in the middle of a run.
// Both are checked with read_committed consumers: every greeting exactly once, in order.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Types } from '../../api/types.js';
import { startKafkaBroker, type KafkaBroker } from '../../scripts/kafka_broker.js';
import { MemoryLogger } from '../fixtures/engine_harness.js';
import {
  createTopics,
  eventually,
  freshGroup,
  freshTopic,
  greeterModuleYaml,
  kafkaBrokers,
  readCommitted,
  type ReadRecord,
} from '../fixtures/kafka_test_env.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const greeterApp = join(repo, 'test', 'fixtures', 'apps', 'kafka_greeter_app.ts');
const dirs: string[] = [];
const brokersToStop: KafkaBroker[] = [];
afterAll(async () => {
  await Promise.all(brokersToStop.map((b) => b.stop()));
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `statefn-${prefix}-`));
  dirs.push(d);
  return d;
}

/** A StateFun-style application directory: module.yaml (Kafka ingress + exactly-once egress) and index.ts. */
function appDir(o: { brokers: string; names: string; group: string }): string {
  const dir = tempDir('kafka-app');
  writeFileSync(join(dir, 'package.json'), '{"type": "module"}\n');
  writeFileSync(join(dir, 'index.ts'), `export { default } from ${JSON.stringify(greeterApp)};\n`);
  writeFileSync(join(dir, 'module.yaml'), greeterModuleYaml({ ...o, semantic: 'exactly-once' }));
  return dir;
}

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repo, 'bin', 'statefn.js'), 'start', ...args, '--no-progress'], {
      cwd: repo,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stderr });
    });
  });
}

/** Records in `topic` as a read_uncommitted consumer sees them (aborted transactions included): reads until 3 s pass without one. */
async function readUncommitted(brokers: string[], topic: string): Promise<number> {
  const consumer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).consumer({
    groupId: freshGroup('uncommitted'),
    readUncommitted: true,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  let n = 0;
  let last = Date.now() + 5_000; // joining the group comes first
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachBatch: ({ batch }) => {
        n += batch.messages.length;
        last = Date.now();
        return Promise.resolve();
      },
    });
    while (Date.now() - last < 3_000) await new Promise((r) => setTimeout(r, 200));
  } finally {
    await consumer.disconnect();
  }
  return n;
}

/** Each id's greetings, in order: "<id>:<n>". */
function greetingsById(recs: ReadRecord[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const r of recs) {
    const [id, n] = r.value!.toString().split(':');
    let l = m.get(id!);
    if (l === undefined) m.set(id!, (l = []));
    l.push(`${id}:${n}`);
  }
  return m;
}

const str = (s: string): Buffer => Buffer.from(Types.string.serialize(s));

describe('Kafka faults', () => {
  it('a process killed between checkpoint and transaction commit: the epoch is aborted, then written once', async () => {
    const brokers = kafkaBrokers();
    const names = freshTopic('names-tx');
    const greets = freshTopic('greets-tx');
    const group = freshGroup('tx');
    await createTopics(brokers, [
      { topic: names, numPartitions: 2 },
      { topic: greets, numPartitions: 1 },
    ]);
    const ids = Array.from({ length: 40 }, (_, i) => `p${i}`);
    const producer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: names, acks: -1, messages: ids.map((id) => ({ key: id, value: str('hello') })) });
    await producer.disconnect();

    const dir = appDir({ brokers: brokers.join(','), names, group });
    const stateDir = tempDir('kafka-tx-state');
    const args = [dir, '--state-dir', stateDir, '--workers', '2', '--params', JSON.stringify({ outTopic: greets })];
    const killed = await runCli([...args, '--stop-after', '60s'], {
      STATEFN_FAULT_INJECTION: '1',
      STATEFN_FAULT_KAFKA_KILL_BEFORE_COMMIT: '1',
    });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    expect(killed.stderr).toContain('killing the process before the commit');
    // The transaction's records reached the broker but were never committed.
    expect(await readUncommitted(brokers, greets), killed.stderr).toBeGreaterThan(0);

    const again = await runCli([...args, '--stop-after', '6s'], {});
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/writing the \d+ records of checkpoint \d+ again/);
    const recs = await readCommitted(brokers, [greets]);
    const by = greetingsById(recs);
    expect(recs).toHaveLength(ids.length);
    for (const id of ids) expect(by.get(id)).toEqual([`${id}:1`]);
  }, 240_000);

  it('a broker restart in the middle of a run loses and repeats nothing', async () => {
    const broker = await startKafkaBroker();
    brokersToStop.push(broker);
    const brokers = [broker.bootstrap];
    const names = freshTopic('names-br');
    const greets = freshTopic('greets-br');
    const group = freshGroup('br');
    await createTopics(brokers, [
      { topic: names, numPartitions: 3 },
      { topic: greets, numPartitions: 2 },
    ]);
    const dir = appDir({ brokers: broker.bootstrap, names, group });
    const stateDir = tempDir('kafka-br-state');
    const logger = new MemoryLogger();
    const engine = await Engine.start(
      { module: `file://${join(dir, 'index.ts')}`, moduleYaml: join(dir, 'module.yaml'), params: { outTopic: greets } },
      { stateDir, workers: 2, logger, limits: { checkpointIntervalMs: 300 } },
    );
    const ids = Array.from({ length: 30 }, (_, i) => `b${i}`);
    const producer = new Kafka({ brokers, logLevel: logLevel.NOTHING, retry: { retries: 20 } }).producer({
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    const rounds = 8;
    const produceRound = async (round: number): Promise<void> => {
      await producer.send({ topic: names, acks: -1, messages: ids.map((id) => ({ key: id, value: str(`r${round}`) })) });
      await new Promise((r) => setTimeout(r, 400));
    };
    // Half the rounds, then the broker restarts under the running engine (its consumer, its open
    // transaction and its offset commits all lose the broker), then the other half. The test's
    // own producer waits for the restart rather than racing it.
    for (let round = 1; round <= rounds / 2; round++) await produceRound(round);
    await broker.restart();
    for (let round = rounds / 2 + 1; round <= rounds; round++) await produceRound(round);
    await eventually(
      `${rounds * ids.length} greetings committed`,
      async () => (await readCommitted(brokers, [greets], 30_000)).length >= rounds * ids.length,
      120_000,
      1_000,
    );
    await new Promise((r) => setTimeout(r, 1_500)); // a duplicate would show up by now
    const recs = await readCommitted(brokers, [greets]);
    const by = greetingsById(recs);
    expect(recs).toHaveLength(rounds * ids.length);
    for (const id of ids) expect(by.get(id)).toEqual(Array.from({ length: rounds }, (_, k) => `${id}:${k + 1}`));
    await engine.stop();
    await producer.disconnect();
  }, 240_000);
});
