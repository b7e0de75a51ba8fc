// The seeded randomized crash test: runs the command app through the real CLI, interrupts it at
// seeded random moments (SIGINT = clean stop, or SIGKILL) at least 10 times, restarts it, then
// checks every instance's counter and the egress output against the model (over-count =
// duplicate, under-count = loss). `npx tsx test/crash/runner.ts` (see test/crash/README.md).
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startArgs } from './start_args.js';
import { Xoshiro128 } from '../../connectors/generator/rng.js';
import { Kafka, logLevel } from 'kafkajs';
import {
  COMMANDS_INGRESS,
  INSTANCES_DEFAULT,
  OUT_EGRESS,
  VERIFY_INGRESS,
  instanceId,
  makeCommandRecord,
  type CommandAppKafka,
  type CommandAppParams,
} from '../fixtures/apps/command_app.js';
import { createTopics, readCommitted } from '../fixtures/kafka_io.js';
import { startJsService, type RemoteService } from '../fixtures/remote/services.js';
import { egressKey, runModel, type Expected } from './model.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const APP_REL = join('test', 'fixtures', 'apps', 'command_app.ts');

/**
 * The checkout whose engine runs: this repository, or `CRASH_ENGINE_ROOT` (e.g. an extracted
 * `git archive` of another commit with node_modules linked), into which the app is copied.
 */
function engineRoot(root: string | undefined): { root: string; bin: string; app: string } {
  const r = resolve(root ?? repo);
  const app = join(r, APP_REL);
  if (r !== resolve(repo)) {
    mkdirSync(join(r, 'test', 'fixtures', 'apps'), { recursive: true });
    copyFileSync(join(repo, APP_REL), app);
  }
  return { root: r, bin: join(r, 'bin', 'statefn.js'), app };
}

/**
 * clean: SIGINT (clean stop); kill: SIGKILL of the process; worker: one worker thread is killed
 * (SIGUSR2 with STATEFN_FAULT_INJECTION=1: the engine restores the last checkpoint in-process and
 * goes on), then the run ends with SIGINT.
 */
export type CrashMode = 'clean' | 'kill' | 'worker';

export interface CrashOptions {
  seed: number;
  mode: CrashMode;
  /** Instances commands go to. Default 1,000. */
  instances?: number;
  /** Generator records (command trees). Default 10,000. */
  count?: number;
  /** Interruptions (SIGINT or SIGKILL) while commands are generated. Default 10, at least 10. */
  interruptions?: number;
  /** Worker threads of the engine. Default 2. */
  workers?: number;
  /**
   * Largest wait after the engine reports running before an interruption. Default 1,500 ms in
   * clean mode, 4,000 ms in kill mode (so kills also land after several ~1 s checkpoints).
   */
  interruptMaxMs?: number;
  /** Generator rate; default: spread `count` over the expected interruption phase. */
  ratePerSec?: number;
  /** Checkout whose `bin/statefn.js` runs; default this repository (env CRASH_ENGINE_ROOT). */
  engineRoot?: string;
  /** Keep the state directory even when the run passes. */
  keep?: boolean;
  /** Progress lines; default: stderr. */
  log?: (line: string) => void;
  /**
   * Kafka mode (env CRASH_KAFKA_BROKERS): the harness produces the command records to a fresh
   * topic at the generator's rate while the engine is interrupted, the app reads them with its
   * Kafka ingress and writes `crash/out` with an exactly-once Kafka egress, and the outputs are
   * read back with a read_committed consumer.
   */
  kafka?: { brokers: string[] };
  /**
   * Remote mode (env CRASH_REMOTE=1): the interpreter runs in a function service written with
   * StateFun's official JS SDK (test/fixtures/remote/js_functions.mjs) behind HTTP; the harness
   * also kills (SIGKILL) and restarts that service at every other interruption.
   */
  remote?: boolean;
}

export interface CrashResult {
  ok: boolean;
  seed: number;
  mode: CrashMode;
  /** Instances whose counter is above the model (duplicate effects) / below it (lost effects). */
  overCounted: number;
  underCounted: number;
  /** `egress` records written more often than the model says / less often / never expected. */
  egressDuplicates: number;
  egressLosses: number;
  egressUnexpected: number;
  /** Human-readable verdict, with the first differences and the rerun command on failure. */
  report: string;
  stateDir: string;
}

interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** The fields of the "stopped cleanly" log line, when the run stopped cleanly. */
  stopped: { processed: number; ingested: number; egressed: number; deadLetters: number } | undefined;
  /** True once the engine logged "running with". */
  ran: boolean;
}

/** A guard against a hung child, not an assertion on timing. */
const HANG_GUARD_MS = 120_000;

function runEngine(
  eng: { root: string; bin: string; app: string },
  stateDir: string,
  params: CommandAppParams,
  workers: number,
  how: { stopAfter?: string; interruptAfterMs?: number; signal?: NodeJS.Signals; workerKillAfterMs?: number },
): Promise<RunOutcome> {
  const args = startArgs(eng.bin, eng.app, params, stateDir, workers, how.stopAfter);
  return new Promise((resolve, reject) => {
    const env = how.workerKillAfterMs === undefined ? process.env : { ...process.env, STATEFN_FAULT_INJECTION: '1' };
    const child = spawn(process.execPath, args, { cwd: eng.root, stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    let ran = false;
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`statefn did not exit within ${HANG_GUARD_MS} ms (hang guard); its log:\n${stderr}`));
    }, HANG_GUARD_MS);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!ran && stderr.includes('running with')) {
        ran = true;
        if (how.workerKillAfterMs !== undefined) {
          // Kill a worker thread, wait for the in-process restore, then stop cleanly.
          timer = setTimeout(() => {
            child.kill('SIGUSR2');
            const again = setInterval(() => {
              if (stderr.includes('running again with')) {
                clearInterval(again);
                timer = setTimeout(() => child.kill('SIGINT'), how.interruptAfterMs ?? 500);
              }
            }, 20);
          }, how.workerKillAfterMs);
        } else if (how.interruptAfterMs !== undefined) timer = setTimeout(() => child.kill(how.signal ?? 'SIGINT'), how.interruptAfterMs);
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      const m = /stopped cleanly (\{.*\})/.exec(stderr);
      const stopped = m ? (JSON.parse(m[1]!) as RunOutcome['stopped']) : undefined;
      resolve({ code, signal, stderr, stopped, ran });
    });
  });
}

/**
 * The saved generator positions, for the log and a cross-check only (the harness decides
 * quiescence from what the runs report): today's `ingress-positions.json`, or the `positions` of a
 * `checkpoint.json` once checkpoints store them. Empty when neither is there.
 */
function readPositions(stateDir: string): Record<string, number> {
  for (const [file, pick] of [
    ['ingress-positions.json', (j: Record<string, unknown>) => j],
    ['checkpoint.json', (j: Record<string, unknown>) => j.positions],
  ] as const) {
    const f = join(stateDir, file);
    if (!existsSync(f)) continue;
    try {
      const v = pick(JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>);
      if (typeof v === 'object' && v !== null) return v as Record<string, number>;
    } catch {
      // a file being replaced or a format we do not know: positions unknown
    }
  }
  return {};
}

/** Records an ingress has consumed according to its saved position: a number (generator) or the sum of a Kafka ingress's next offsets. */
function consumed(pos: unknown): number | undefined {
  if (typeof pos === 'number') return pos;
  if (typeof pos === 'object' && pos !== null) return Object.values(pos as Record<string, number>).reduce((a, b) => a + b, 0);
  return undefined;
}

/** Produce the command records to `topic` at `ratePerSec` (key = instance, value = the JSON Commands), as the generator would make them. */
async function produceCommands(
  brokers: string[],
  topic: string,
  seed: number,
  count: number,
  instances: number,
  ratePerSec: number,
  signal: AbortSignal,
): Promise<void> {
  const producer = new Kafka({ clientId: 'statefn-crash-producer', brokers, logLevel: logLevel.NOTHING }).producer({
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    const rng = new Xoshiro128(seed, 0);
    const started = Date.now();
    const BATCH = 20;
    for (let i = 0; i < count && !signal.aborted; i += BATCH) {
      const messages = [];
      for (let j = i; j < Math.min(count, i + BATCH); j++) {
        rng.reseed(seed, j);
        const r = makeCommandRecord(j, rng, instances);
        messages.push({ key: r.to, value: JSON.stringify({ commands: r.commands }) });
      }
      await producer.send({ topic, acks: -1, messages });
      const due = started + ((i + BATCH) / ratePerSec) * 1000;
      if (due > Date.now()) await new Promise((res) => setTimeout(res, due - Date.now()));
    }
  } finally {
    await producer.disconnect();
  }
}

async function readKafkaOut(brokers: string[], topic: string): Promise<OutLine[]> {
  const recs = await readCommitted(brokers, [topic], 120_000);
  return recs.map((r) => ({ egress: OUT_EGRESS, value: JSON.parse(r.value?.toString() ?? 'null') as OutLine['value'] }));
}

interface OutLine {
  egress: string;
  value: { id: string; value?: string; counter?: number };
}

function readOut(path: string): OutLine[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);
  return lines.map((l, i) => {
    try {
      return JSON.parse(l) as OutLine;
    } catch {
      throw new Error(`${path}:${i + 1}: not a JSON line (a torn write?): ${l.slice(0, 200)}`);
    }
  });
}

export async function runCrashTest(o: CrashOptions): Promise<CrashResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(`[crash] ${l}\n`));
  const seed = o.seed;
  const mode = o.mode;
  const instances = o.instances ?? INSTANCES_DEFAULT;
  const count = o.count ?? 10_000;
  const interruptions = Math.max(10, o.interruptions ?? 10);
  const workers = o.workers ?? 2;
  const interruptMaxMs = o.interruptMaxMs ?? (mode === 'clean' ? 1500 : 4000);
  // Spread the records over the interruption phase so every interruption hits a busy engine.
  const ratePerSec = o.ratePerSec ?? Math.max(1, Math.ceil(count / ((interruptions * interruptMaxMs * 0.5) / 1000)));
  const rerun = [
    o.kafka ? `CRASH_KAFKA_BROKERS=${o.kafka.brokers.join(',')} ` : '',
    o.remote ? 'CRASH_REMOTE=1 ' : '',
    `CRASH_MODE=${mode} CRASH_SEED=${seed} CRASH_INSTANCES=${instances} CRASH_COUNT=${count} `,
    `CRASH_INTERRUPTIONS=${interruptions} CRASH_INTERRUPT_MAX_MS=${interruptMaxMs} npx tsx test/crash/runner.ts`,
  ].join('');
  const eng = engineRoot(o.engineRoot ?? (process.env.CRASH_ENGINE_ROOT || undefined));
  const stateDir = mkdtempSync(join(tmpdir(), `statefn-crash-${mode}-${seed}-`));
  const outPath = join(stateDir, 'out.jsonl');
  const verifyPath = join(stateDir, 'verify.jsonl');
  const params: CommandAppParams = { seed, count, instances, outPath, ratePerSec };
  const brokers = o.kafka?.brokers;
  let kafka: CommandAppKafka | undefined;
  let verifyTopic = '';
  if (brokers !== undefined) {
    const tag = `${mode}-${seed}-${Date.now().toString(36)}`;
    kafka = {
      brokers: brokers.join(','),
      inTopic: `statefn-crash-in-${tag}`,
      outTopic: `statefn-crash-out-${tag}`,
      group: `statefn-crash-${tag}`,
    };
    verifyTopic = `statefn-crash-verify-${tag}`;
    await createTopics(brokers, [
      { topic: kafka.inTopic, numPartitions: 4 },
      { topic: kafka.outTopic, numPartitions: 3 },
      { topic: verifyTopic, numPartitions: 1 },
    ]);
    params.kafka = kafka;
  }
  let service: RemoteService | undefined;
  if (o.remote === true) {
    service = await startJsService();
    params.remoteUrl = service.url;
  }
  log(
    `seed=${seed} mode=${mode} instances=${instances} count=${count} interruptions=${interruptions} ratePerSec=${ratePerSec} ` +
      `stateDir=${stateDir} engine=${eng.root}${kafka ? ` kafka=${kafka.brokers} in=${kafka.inTopic} out=${kafka.outTopic}` : ''}`,
  );

  const expected: Expected = runModel({ seed, count, instances });
  log(
    `model: ${expected.invocations} invocations (${expected.delayed} delayed, ${expected.cancelled} cancelled), ` +
      `${[...expected.egress.values()].reduce((a, b) => a + b, 0)} egress records`,
  );

  const logs: string[] = [];
  const problems: string[] = [];
  let processedReported = 0;
  let allRunsClean = true;
  const record = (what: string, r: RunOutcome): void => {
    logs.push(`===== ${what}: code=${r.code} signal=${r.signal}\n${r.stderr}`);
    if (r.stopped) processedReported += r.stopped.processed;
    else allRunsClean = false;
  };

  // 1. Interruptions while the generator runs (seeded moments). In Kafka mode the harness is the
  // generator: it produces the records at the same rate meanwhile.
  const stopProducing = new AbortController();
  const producing =
    kafka !== undefined
      ? produceCommands(brokers!, kafka.inTopic, seed, count, instances, ratePerSec, stopProducing.signal)
      : Promise.resolve();
  producing.catch(() => {});
  const schedule = new Xoshiro128(seed, 0x7fffffff);
  const signal: NodeJS.Signals = mode === 'kill' ? 'SIGKILL' : 'SIGINT';
  for (let k = 0; k < interruptions; k++) {
    const after = 20 + schedule.int(interruptMaxMs - 20);
    // Remote mode: at every other run the function service crashes as the engine starts and
    // comes back 700 ms later on the same port (calls meanwhile fail and are retried).
    let serviceBack: Promise<RemoteService> | undefined;
    if (service !== undefined && k % 2 === 1) {
      const port = service.port;
      service.kill();
      await service.exited;
      serviceBack = new Promise((res) => setTimeout(res, 700)).then(() => startJsService({ port }));
      log(`interruption ${k + 1}: the remote function service is killed and restarts in 700 ms`);
    }
    const r = await runEngine(
      eng,
      stateDir,
      params,
      workers,
      mode === 'worker' ? { workerKillAfterMs: after, interruptAfterMs: 20 + schedule.int(1000) } : { interruptAfterMs: after, signal },
    );
    if (mode === 'worker' && !r.stderr.includes('running again with'))
      problems.push(`interruption run ${k + 1}: no in-process restore after the worker kill:\n${r.stderr.slice(-2000)}`);
    if (serviceBack !== undefined) service = await serviceBack;
    record(`interruption ${k + 1} (${signal} after ${after} ms)`, r);
    const pos = consumed(readPositions(stateDir)[COMMANDS_INGRESS]) ?? '?';
    log(
      `interruption ${k + 1}/${interruptions}: ${signal} ${after} ms after start -> ` +
        `${r.stopped ? `stopped cleanly, processed ${r.stopped.processed}` : `exit code=${r.code} signal=${r.signal}`}; ` +
        `generator position ${pos}/${count}`,
    );
    if (!r.ran)
      problems.push(
        `interruption run ${k + 1} never reached "running with" (code=${r.code}); the engine failed to start:\n${r.stderr.slice(-2000)}`,
      );
    if (mode === 'clean' && (r.code !== 0 || !r.stopped))
      problems.push(
        `interruption run ${k + 1}: SIGINT did not stop cleanly (code=${r.code}, signal=${r.signal}):\n${r.stderr.slice(-2000)}`,
      );
    if (problems.length > 0) break;
  }

  if (problems.length > 0) stopProducing.abort();
  try {
    await producing;
  } catch (e) {
    problems.push(`producing the command records to Kafka failed: ${(e as Error).message}`);
  }
  // A Kafka ingress needs a moment to join its group after start: give drain runs longer.
  const drainFor = kafka !== undefined ? '3s' : '1s';

  // 2. Drain: clean runs until one ingests nothing and processes nothing. The generator submits
  // its first record at once when it has any left (ratePerSec >= 1), so ingested == 0 means it
  // is exhausted. Delays are at most 200 ms and a restart delivers saved in-flight messages and
  // due timers at once, so a 1 s run with processed == 0 means nothing was in flight or pending
  // (the cancelled messages aside, which are due in an hour).
  let quiescent = false;
  for (let k = 0; problems.length === 0 && k < 30; k++) {
    const r = await runEngine(eng, stateDir, params, workers, { stopAfter: drainFor });
    record(`drain ${k + 1}`, r);
    if (r.code !== 0 || !r.stopped) {
      problems.push(`drain run ${k + 1} did not stop cleanly (code=${r.code}):\n${r.stderr.slice(-2000)}`);
      break;
    }
    const pos = consumed(readPositions(stateDir)[COMMANDS_INGRESS]);
    log(`drain ${k + 1}: ingested ${r.stopped.ingested}, processed ${r.stopped.processed}; generator position ${pos ?? '?'}/${count}`);
    if (r.stopped.ingested === 0 && r.stopped.processed === 0) {
      // A Kafka ingress that had not joined its group yet also ingests nothing: drain on.
      if (kafka !== undefined && pos !== count) continue;
      if (pos !== undefined && pos !== count)
        problems.push(`the generator ingested nothing in a 1 s run but its saved position is ${pos}, not ${count}`);
      quiescent = true;
      break;
    }
  }
  if (problems.length === 0 && !quiescent) problems.push('the engine never became quiescent in 30 drain runs (1 s each)');

  // 3. Final read: every instance gets one `verify` (a second generator), in clean runs.
  let verifyProcessed = 0;
  let verifyIngested = 0;
  if (problems.length === 0) {
    for (let k = 0; k < 10 && verifyIngested < instances; k++) {
      const verifyParams: CommandAppParams =
        kafka !== undefined
          ? { ...params, kafka: { ...kafka, outTopic: verifyTopic }, verify: true }
          : { ...params, outPath: verifyPath, verify: true };
      const r = await runEngine(eng, stateDir, verifyParams, workers, { stopAfter: kafka !== undefined ? '4s' : '2s' });
      record(`verify ${k + 1}`, r);
      if (r.code !== 0 || !r.stopped) {
        problems.push(`verify run ${k + 1} did not stop cleanly (code=${r.code}):\n${r.stderr.slice(-2000)}`);
        break;
      }
      verifyProcessed += r.stopped.processed;
      verifyIngested += r.stopped.ingested;
      log(`verify ${k + 1}: ingested ${r.stopped.ingested}, processed ${r.stopped.processed}`);
    }
    if (verifyIngested !== instances) problems.push(`the verify runs ingested ${verifyIngested} verify commands, expected ${instances}`);
    const vpos = readPositions(stateDir)[VERIFY_INGRESS];
    if (vpos !== undefined && vpos !== instances) problems.push(`the verify generator's saved position is ${vpos}, expected ${instances}`);
    // Only the verify commands may run now; anything else means the drain was not quiescent.
    if (verifyProcessed !== instances)
      problems.push(
        `the verify runs processed ${verifyProcessed} messages, expected exactly ${instances} (one verify per instance): ` +
          'the engine was not quiescent',
      );
  }

  // 4. Compare with the model.
  let overCounted = 0;
  let underCounted = 0;
  let egressDuplicates = 0;
  let egressLosses = 0;
  let egressUnexpected = 0;
  const diffs: string[] = [];
  if (problems.length === 0) {
    const actual = new Map<string, number>();
    const verifyOut = kafka !== undefined ? await readKafkaOut(brokers!, verifyTopic) : readOut(verifyPath);
    const runOut = kafka !== undefined ? await readKafkaOut(brokers!, kafka.outTopic) : readOut(outPath);
    for (const l of verifyOut) {
      if (l.egress !== OUT_EGRESS || typeof l.value?.counter !== 'number') {
        problems.push(`unexpected record in the verify output: ${JSON.stringify(l)}`);
        continue;
      }
      if (actual.has(l.value.id)) problems.push(`instance ${l.value.id} reported twice in the final verify`);
      actual.set(l.value.id, l.value.counter);
    }
    for (let n = 0; n < instances; n++) {
      const id = instanceId(n);
      const want = expected.counters.get(id) ?? 0;
      const got = actual.get(id);
      if (got === undefined) {
        problems.push(`instance ${id} never answered the final verify`);
        continue;
      }
      if (got > want) overCounted++;
      if (got < want) underCounted++;
      if (got !== want && diffs.length < 10)
        diffs.push(`  counter ${id}: actual ${got}, model ${want} (${got > want ? `+${got - want} duplicate` : `${got - want} lost`})`);
    }
    // The egress output of the run: `egress` records as a multiset; `verify` reports per instance.
    const gotEgress = new Map<string, number>();
    const gotVerifies = new Map<string, number>();
    for (const l of runOut) {
      if (typeof l.value?.value === 'string')
        gotEgress.set(egressKey(l.value.id, l.value.value), (gotEgress.get(egressKey(l.value.id, l.value.value)) ?? 0) + 1);
      else if (typeof l.value?.counter === 'number') gotVerifies.set(l.value.id, (gotVerifies.get(l.value.id) ?? 0) + 1);
      else problems.push(`unexpected record in ${outPath}: ${JSON.stringify(l)}`);
    }
    const egressDiffs: string[] = [];
    for (const [k, want] of expected.egress) {
      const got = gotEgress.get(k) ?? 0;
      if (got > want) egressDuplicates += got - want;
      if (got < want) egressLosses += want - got;
      if (got !== want && egressDiffs.length < 10) egressDiffs.push(`  egress ${k}: written ${got}, model ${want}`);
    }
    for (const [k, got] of gotEgress) {
      if (expected.egress.has(k)) continue;
      egressUnexpected += got;
      if (egressDiffs.length < 10) egressDiffs.push(`  egress ${k}: written ${got}, never expected (a cancelled message ran?)`);
    }
    diffs.push(...egressDiffs);
    let verifyDiffs = 0;
    for (let n = 0; n < instances; n++) {
      const id = instanceId(n);
      const want = expected.verifies.get(id) ?? 0;
      const got = gotVerifies.get(id) ?? 0;
      if (got !== want) {
        verifyDiffs++;
        if (verifyDiffs <= 5) diffs.push(`  verify reports of ${id} during the run: ${got}, model ${want}`);
      }
    }
    if (overCounted + underCounted > 0)
      problems.push(`${overCounted} instances over-counted (duplicates), ${underCounted} under-counted (losses)`);
    if (egressDuplicates + egressLosses + egressUnexpected > 0)
      problems.push(`egress: ${egressDuplicates} duplicate, ${egressLosses} lost, ${egressUnexpected} unexpected records`);
    if (verifyDiffs > 0) problems.push(`${verifyDiffs} instances emitted a different number of in-run verify reports than the model`);
    // With clean stops only, every run reported its processed count: it must be the model's
    // invocations (interruption and drain runs) plus one per instance (verify runs).
    // Only without worker kills: an in-process restore starts a new engine whose count starts at 0.
    if (mode === 'clean' && allRunsClean && processedReported !== expected.invocations + instances) {
      problems.push(
        `the runs processed ${processedReported} messages in all; ` +
          `the model has ${expected.invocations} invocations + ${instances} verifies = ${expected.invocations + instances}`,
      );
    }
  }

  await service?.stop();
  const ok = problems.length === 0;
  let report: string;
  if (ok) {
    report =
      `PASS seed=${seed} mode=${mode}: ${instances} counters and ${[...expected.egress.values()].reduce((a, b) => a + b, 0)} ` +
      `egress records match the model after ${interruptions} ${signal} interruptions`;
    if (!o.keep) rmSync(stateDir, { recursive: true, force: true });
  } else {
    writeFileSync(join(stateDir, 'runs.log'), logs.join('\n'));
    report = [
      `FAIL seed=${seed} mode=${mode}`,
      ...problems.map((p) => `- ${p}`),
      ...(diffs.length > 0 ? ['first differences:', ...diffs] : []),
      `state dir and every run's log (runs.log) kept in ${stateDir}`,
      `rerun: ${rerun}`,
    ].join('\n');
  }
  log(report);
  return { ok, seed, mode, overCounted, underCounted, egressDuplicates, egressLosses, egressUnexpected, report, stateDir };
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`${name}: expected an integer, got '${v}'`);
  return n;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const mode = process.env.CRASH_MODE ?? 'clean';
  if (mode !== 'clean' && mode !== 'kill' && mode !== 'worker')
    throw new Error(`CRASH_MODE: expected clean, kill or worker, got '${mode}'`);
  const seed = envInt('CRASH_SEED') ?? Math.floor(Math.random() * 2 ** 31);
  const o: CrashOptions = { seed, mode, keep: process.env.CRASH_KEEP === '1' };
  const instances = envInt('CRASH_INSTANCES');
  const count = envInt('CRASH_COUNT');
  const interruptions = envInt('CRASH_INTERRUPTIONS');
  const workers = envInt('CRASH_WORKERS');
  const interruptMaxMs = envInt('CRASH_INTERRUPT_MAX_MS');
  if (interruptMaxMs !== undefined) o.interruptMaxMs = interruptMaxMs;
  if (instances !== undefined) o.instances = instances;
  if (count !== undefined) o.count = count;
  if (interruptions !== undefined) o.interruptions = interruptions;
  if (workers !== undefined) o.workers = workers;
  const kafkaBrokers = process.env.CRASH_KAFKA_BROKERS;
  if (kafkaBrokers) o.kafka = { brokers: kafkaBrokers.split(',') };
  if (process.env.CRASH_REMOTE === '1') o.remote = true;
  const r = await runCrashTest(o);
  process.exitCode = r.ok ? 0 : 1;
}
