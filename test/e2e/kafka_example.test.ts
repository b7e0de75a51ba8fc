// The README's Kafka quick start, as a newcomer runs it: Kafka's own console producer (through
// `npm run kafka`), `statefn start examples/kafka_greeter`, then the console consumer with
// read_committed and kafka-consumer-groups showing the committed offsets.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createTopics, freshGroup, freshTopic, kafkaBrokers } from '../fixtures/kafka_test_env.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

const kafkaTool = (args: string[], input?: string) =>
  run(process.execPath, ['--import', 'tsx', join(repo, 'scripts', 'kafka_tool.ts'), ...args], {}, input);

describe('Kafka quick start (examples/kafka_greeter)', () => {
  it('greets names produced with the console producer, exactly once, and the group shows no lag', async () => {
    const brokers = kafkaBrokers().join(',');
    const names = freshTopic('qs-names');
    const greetings = freshTopic('qs-greetings');
    const group = freshGroup('qs');
    await createTopics(kafkaBrokers(), [
      { topic: names, numPartitions: 2 },
      { topic: greetings, numPartitions: 1 },
    ]);
    const produced = await kafkaTool(
      [
        'console-producer',
        '--bootstrap-server',
        brokers,
        '--topic',
        names,
        '--property',
        'parse.key=true',
        '--property',
        'key.separator=:',
      ],
      'u1:Alice\nu2:Bob\nu1:Alice\n',
    );
    expect(produced.code, produced.stderr).toBe(0);

    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-qs-'));
    dirs.push(stateDir);
    const env = { KAFKA_BROKERS: brokers, NAMES_TOPIC: names, GREETINGS_TOPIC: greetings, GREETER_GROUP: group };
    const started = await run(
      process.execPath,
      [join(repo, 'bin', 'statefn.js'), 'start', 'examples/kafka_greeter', '--state-dir', stateDir, '--stop-after', '6s', '--no-progress'],
      env,
    );
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toContain('"ingested":3');

    const consumed = await kafkaTool([
      'console-consumer',
      '--bootstrap-server',
      brokers,
      '--topic',
      greetings,
      '--from-beginning',
      '--isolation-level',
      'read_committed',
      '--property',
      'print.key=true',
      '--max-messages',
      '3',
      '--timeout-ms',
      '20000',
    ]);
    const lines = consumed.stdout.trim().split('\n').sort();
    expect(lines).toEqual(
      ['u1\tHello Alice! I have seen you 2 times.', 'u1\tHello Alice! Nice to meet you.', 'u2\tHello Bob! Nice to meet you.'].sort(),
    );

    const described = await kafkaTool(['consumer-groups', '--bootstrap-server', brokers, '--describe', '--group', group]);
    expect(described.code, described.stderr).toBe(0);
    const rows = described.stdout.split('\n').filter((l) => l.includes(names));
    expect(rows).toHaveLength(2);
    // Columns: GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    for (const r of rows) expect(r.trim().split(/\s+/)[5]).toBe('0');
  }, 180_000);
});
