/**
 * Remote-function benchmark: the counter over 100,000 uniform keys, run by the engine with the
 * function (a) embedded, (b) as a remote function served by statefn's TS SDK
 * (bench/fixtures/ts_counter_service.ts) and (c) served by Apache Flink StateFun's official JS SDK
 * 3.3.0 (test/fixtures/remote/js_functions.mjs, installed on first use into node_modules/.cache),
 * all in the same run, with the identical app (bench/apps/remote_counter_app.ts) and engine setup.
 * Each service is its own process on 127.0.0.1, reached over HTTP keep-alive (StateFun's
 * request-reply protocol, protobuf); the engine is one process (main thread + 2 worker threads).
 *
 * Per system, each on a fresh engine and state directory:
 *   max      closed loop: the generator submits as fast as the engine is writable; rate =
 *            processed / elapsed between a warm-up mark and the end of the window (the engine's
 *            shared counters, as bench/macro.ts). Checkpointing on (the engine's default).
 *   latency  open loop at 50% of that system's measured max rate; p50/p99/p99.9 of ingress ->
 *            egress latency of the probes (1 in 64 records goes to `remote-test/counter-echo/probe`,
 *            whose egress carries the new count, which identifies the probe: see the app). Egress
 *            released at once (checkpointing off, as macro's `counter.latency.*.egressAtOnce`);
 *            with exactly-once egress every latency is about the checkpoint interval instead.
 * Windows: warm-up 2 s + 8 s measured (quick: 1 s + 3 s). For remote systems the window's
 * `engine.stats().remote` deltas give calls, messages per call (mean batch) and the batch-size
 * histogram. CPU in cores (CPU seconds per second) from /proc: the engine's main thread, its
 * workers, the rest of the engine process (GC helpers, lmdb, libuv), and the service process.
 *
 * Every step is bounded (engine start/stop 60 s, service start 30 s, a run stalled for 15 s, a
 * service that exits) and fails loudly; a failing system is reported with its error and the
 * others still run. Remote closed-loop runs end by terminating the engine's workers instead of a
 * clean stop, which would first handle the ring backlog at the function's rate (tens of seconds);
 * the run reports that backlog and the estimate.
 *
 * Exported: `runRemote({quick})` -> RemoteResult (it prints progress and the table), and
 * `printRemote(result)`. Standalone:
 *   node --import tsx bench/remote_bench.ts [--quick] [--systems embedded,remote-ts-sdk,remote-js-sdk]
 *        [--limit name=value ...] [--json]
 * (`--limit` overrides an engine limit for experiments, as in bench/macro.ts.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Engine, type EngineStats } from '../index.js';
import type { Logger } from '../api/connector_api.js';
import type { GeneratorIngress } from '../connectors/generator/generator_ingress.js';
import { startJsService } from '../test/fixtures/remote/services.js';
import { JS_SDK_SPEC } from '../test/fixtures/remote/install.js';
import { COUNTS_EGRESS_ID, type ProbeEgress, type RemoteCounterParams } from './apps/remote_counter_app.js';
import { threadTicks } from './machine.js';

// ---- settings ----

export type RemoteSystem = 'embedded' | 'remote-ts-sdk' | 'remote-js-sdk';
export const REMOTE_SYSTEMS: readonly RemoteSystem[] = ['embedded', 'remote-ts-sdk', 'remote-js-sdk'];

const APP = new URL('./apps/remote_counter_app.ts', import.meta.url).href;
const TS_SERVICE = fileURLToPath(new URL('./fixtures/ts_counter_service.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEYS = 100_000;
const KEY_GROUPS = 256;
const PROBE_EVERY = 64;
const LATENCY_FRACTION = 0.5;
/** Upper bound of records per run (the generator is count-limited); the time bound ends runs first. */
const COUNT_MAX = 50_000_000;
const SAMPLE_MS = 100;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 60_000;
const SERVICE_START_TIMEOUT_MS = 30_000;
const SERVICE_STOP_TIMEOUT_MS = 5_000;
/** A run whose processed count does not move for this long fails. */
const STALL_MS = 15_000;
/** Remote calls: fail (dead-letter, which fails the run) after this long instead of the 2 min default. */
const CALL_TIMEOUT_MS = 20_000;

interface Timing {
  warmupMs: number;
  runMs: number;
}

function timing(quick: boolean): Timing {
  return quick ? { warmupMs: 1000, runMs: 3000 } : { warmupMs: 2000, runMs: 8000 };
}

const SERVICE_NAME: Record<RemoteSystem, string> = {
  embedded: 'none (embedded in the worker threads)',
  'remote-ts-sdk': 'statefn TS SDK (sdk/index.ts serve), bench/fixtures/ts_counter_service.ts',
  'remote-js-sdk': `official JS SDK ${JS_SDK_SPEC}, test/fixtures/remote/js_functions.mjs`,
};

// ---- result types ----

export interface RemoteLatency {
  /** Probes recorded in the window (1 in 64 records). */
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface RemoteCalls {
  /** HTTP requests in the window (spec negotiation rounds included). */
  calls: number;
  /** Messages those requests carried. */
  batched: number;
  /** batched / calls. */
  meanBatch: number;
  retries: number;
  failures: number;
  /** Requests by batch size in the window: `{'1': n, '2-3': n, ..., '1024+': n}`. */
  batchSizes: Record<string, number>;
}

export interface RemoteCpu {
  /** Cores busy (CPU s per s) over the window. */
  engineProcess: number;
  main: number;
  /** The busiest threads of the engine process other than main (the statefn workers). */
  workers: number[];
  /** The rest of the engine process: V8 GC helpers, lmdb's write thread, libuv, tsx's loader. */
  rest: number;
  /** The function service process (all its threads); 0 embedded. */
  service: number;
  /** CPU µs per processed message. */
  usPerMessage: { engine: number; main: number; workers: number; rest: number; service: number; total: number };
}

export interface RemoteRun {
  mode: 'closed loop' | 'open loop';
  /** Open loop only. */
  targetRatePerSec?: number;
  messagesPerSec: number;
  ingestedPerSec: number;
  elapsedMs: number;
  processed: number;
  /** Probe latency over the window (at max rate: queueing at saturation, not a service time). */
  latency: RemoteLatency;
  remote?: RemoteCalls;
  cpu: RemoteCpu | undefined;
  checkpointing: boolean;
  backPressuredFraction: number;
  pendingMax: number;
  mailboxedMax: number;
  startMs: number;
  /** engine.stop() (clean), or the teardown of an abandoned engine. */
  stopMs: number;
  /**
   * Remote closed-loop runs are not stopped cleanly: their workers are terminated after the
   * measurement. A clean stop first handles every message already routed (this backlog) at the
   * function's rate, i.e. about `backlog / messagesPerSec` seconds (see bench/README.md).
   */
  abandoned?: { backlogMessages: number; cleanStopEstimateS: number };
}

export interface RemoteSystemResult {
  system: RemoteSystem;
  name: string;
  service: string;
  /** Closed-loop throughput. */
  messagesPerSec: number;
  /** messagesPerSec / the embedded system's, same run. */
  ratioToEmbedded?: number;
  /** Open-loop latency at LATENCY_FRACTION of messagesPerSec. */
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** Mean messages per HTTP request at max rate (remote only). */
  meanBatch?: number;
  /** Batch-size histogram at max rate (remote only). */
  batchSizes?: Record<string, number>;
  max: RemoteRun;
  latency: RemoteRun;
}

export interface RemoteSystemFailure {
  system: RemoteSystem;
  name: string;
  error: string;
}

export interface RemoteResult {
  settings: {
    quick: boolean;
    keys: number;
    workers: number;
    keyGroups: number;
    probeEvery: number;
    latencyFraction: number;
    warmupMs: number;
    runMs: number;
    callTimeoutMs: number;
    limits: Record<string, number>;
    endpointDefaults: string;
  };
  systems: (RemoteSystemResult | RemoteSystemFailure)[];
  /** Names of the systems that failed (the section then failed). */
  failed: string[];
  /** os.loadavg() (1, 5, 15 min) at the start and the end of the section: how shared the machine was. */
  loadAverage: { start: number[]; end: number[] };
}

export interface RemoteOptions {
  quick: boolean;
  /** Subset of systems (default all three); the embedded one is needed for the ratios. */
  systems?: readonly RemoteSystem[];
  /** Print the table at the end (default true). */
  print?: boolean;
  /** Engine limit overrides for experiments (e.g. `{ checkpointIntervalMs: 3600000 }`); the reported figures use the defaults. */
  limits?: Record<string, number>;
}

// ---- helpers ----

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `p`, or a rejection naming `what` after `ms`. */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keep the engine's info lines out of the output; warnings and errors still show (not while `quiet.on`). */
function benchLogger(quiet: { on: boolean }): Logger {
  let warnings = 0;
  return {
    info: () => {},
    warn: (m: string, f?: Record<string, unknown>) => {
      if (++warnings <= 5) console.error(`remote bench: engine warning: ${m}${f ? ' ' + JSON.stringify(f) : ''}`);
    },
    error: (m: string, f?: Record<string, unknown>) => {
      // The workers of an abandoned engine die on purpose.
      if (quiet.on && f?.code === 'STATEFN_WORKER_DIED') return;
      console.error(`remote bench: engine error: ${m}${f ? ' ' + JSON.stringify(f) : ''}`);
    },
  };
}

const TICK_S = 0.01; // USER_HZ = 100 on Linux

/** utime + stime in clock ticks from a /proc/.../stat file; undefined if unreadable. */
function statTicks(path: string): number | undefined {
  try {
    const stat = readFileSync(path, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

interface Mark {
  t: number;
  stats: EngineStats;
  cpu: NodeJS.CpuUsage;
  threads: Map<number, number>;
  service: number | undefined;
}

function mark(engine: Engine, servicePid: number | undefined): Mark {
  return {
    t: performance.now(),
    stats: engine.stats(),
    cpu: process.cpuUsage(),
    threads: threadTicks(),
    service: servicePid === undefined ? undefined : statTicks(`/proc/${servicePid}/stat`),
  };
}

function cpuBetween(a: Mark, b: Mark, workers: number, processed: number): RemoteCpu | undefined {
  if (a.threads.size === 0) return undefined;
  const secs = (b.t - a.t) / 1000;
  let main = 0;
  const others: number[] = [];
  for (const [tid, t1] of b.threads) {
    const d = ((t1 - (a.threads.get(tid) ?? t1)) * TICK_S) / secs;
    if (tid === process.pid) main = d;
    else others.push(d);
  }
  others.sort((x, y) => y - x);
  const top = others.slice(0, workers);
  const rest = others.slice(workers).reduce((s, x) => s + x, 0);
  const service = a.service !== undefined && b.service !== undefined ? ((b.service - a.service) * TICK_S) / secs : 0;
  const engineProcess = (b.cpu.user - a.cpu.user + (b.cpu.system - a.cpu.system)) / 1e6 / secs;
  const us = (cores: number): number => (processed > 0 ? round((cores * secs * 1e6) / processed, 2) : 0);
  const w = top.reduce((s, x) => s + x, 0);
  return {
    engineProcess: round(engineProcess),
    main: round(main),
    workers: top.map((x) => round(x)),
    rest: round(rest),
    service: round(service),
    usPerMessage: {
      engine: us(engineProcess),
      main: us(main),
      workers: us(w),
      rest: us(rest),
      service: us(service),
      total: us(engineProcess + service),
    },
  };
}

function remoteBetween(a: EngineStats['remote'], b: EngineStats['remote']): RemoteCalls {
  const calls = b.calls - a.calls;
  const batched = b.batched - a.batched;
  const batchSizes: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.batchSizes)) batchSizes[k] = v - (a.batchSizes[k] ?? 0);
  return {
    calls,
    batched,
    meanBatch: calls > 0 ? round(batched / calls, 3) : 0,
    retries: b.retries - a.retries,
    failures: b.failures - a.failures,
    batchSizes,
  };
}

// ---- function services ----

interface Service {
  url: string;
  pid: number;
  /** Resolves when the process exited, however. */
  exited: Promise<void>;
  stop(): Promise<void>;
  stderr(): string;
}

const children = new Set<ChildProcess>();
let exitHook = false;

/** Spawn the TS SDK service (its own process) and wait for `LISTENING <port>`. */
function startTsService(): Promise<Service> {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
  const child = spawn(process.execPath, ['--conditions=statefn-source', '--import', 'tsx', TS_SERVICE], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PORT: '0' },
  });
  children.add(child);
  const exited = new Promise<void>((res) => {
    if (child.exitCode !== null || child.signalCode !== null) res();
    else child.once('exit', () => res());
  });
  void exited.then(() => children.delete(child));
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (err.length < 65536) err += d;
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const t = setTimeout(() => child.kill('SIGKILL'), SERVICE_STOP_TIMEOUT_MS);
    child.kill('SIGTERM');
    await exited;
    clearTimeout(t);
  };
  return new Promise<Service>((resolve, reject) => {
    let out = '';
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`TS SDK service: ${why}; its stderr:\n${err}`));
    };
    const timer = setTimeout(() => fail(`no "LISTENING <port>" within ${SERVICE_START_TIMEOUT_MS} ms`), SERVICE_START_TIMEOUT_MS);
    child.once('error', (e) => fail(`could not be started: ${e.message}`));
    child.once('exit', (code, signal) => fail(`exited during startup (code ${code}, signal ${signal})`));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (settled) return;
      out += d;
      const m = /^LISTENING (\d+)\r?$/m.exec(out);
      if (m === null) return;
      settled = true;
      clearTimeout(timer);
      resolve({ url: `http://127.0.0.1:${m[1]}/statefun`, pid: child.pid ?? -1, exited, stop, stderr: () => err });
    });
  });
}

async function startJs(): Promise<Service> {
  const s = await startJsService({ startTimeoutMs: SERVICE_START_TIMEOUT_MS });
  return { url: s.url, pid: s.pid, exited: s.exited, stop: () => s.stop(), stderr: () => s.stderr() };
}

// ---- one engine run ----

interface RunSpec {
  name: string;
  /** End with terminated workers instead of engine.stop() (remote closed loop: see RemoteRun.abandoned). */
  abandon: boolean;
  /** Engine limit overrides (experiments only: the reported figures use the defaults). */
  limits: Record<string, number>;
  params: RemoteCounterParams;
  workers: number;
  timing: Timing;
  checkpointing: boolean;
  service: Service | undefined;
}

async function runEngine(spec: RunSpec): Promise<RemoteRun> {
  const stateDir = mkdtempSync(join(tmpdir(), 'statefn-remote-bench-'));
  const t0 = performance.now();
  let engine: Engine | undefined;
  const quiet = { on: false };
  let serviceGone = false;
  void spec.service?.exited.then(() => {
    serviceGone = true;
  });
  const check = (failure: Error | undefined): void => {
    if (failure !== undefined) throw failure;
    if (serviceGone)
      throw new Error(`${spec.name}: the function service exited during the run; its stderr:\n${spec.service?.stderr() ?? ''}`);
  };
  try {
    engine = await bounded(
      Engine.start(
        { module: APP, params: spec.params },
        {
          stateDir,
          workers: spec.workers,
          logger: benchLogger(quiet),
          checkpointing: spec.checkpointing,
          limits: { ...spec.limits, keyGroups: KEY_GROUPS },
        },
      ),
      START_TIMEOUT_MS,
      `${spec.name}: Engine.start`,
    );
    const startMs = performance.now() - t0;
    let failure: Error | undefined;
    engine.failed().catch((e: Error) => {
      failure = e;
    });
    const gen = engine.app.ingresses[0]!.connector as unknown as GeneratorIngress<unknown>;
    let genDone = false;
    void gen.done.then(
      () => {
        genDone = true;
      },
      () => {},
    );
    const probes = engine.app.egresses.get(COUNTS_EGRESS_ID) as unknown as ProbeEgress;
    probes.recording = false;

    // Warm-up, watching for failures and stalls.
    let lastProcessed = -1;
    let lastMoved = performance.now();
    const watch = (s: EngineStats): void => {
      const now = performance.now();
      if (s.processed !== lastProcessed) {
        lastProcessed = s.processed;
        lastMoved = now;
      } else if (now - lastMoved > STALL_MS) {
        throw new Error(
          `${spec.name}: stalled: processed stayed at ${s.processed} for ${STALL_MS} ms (ingested ${s.ingested}, ` +
            `pending ${s.pending}, mailboxed ${s.mailboxed}, remote ${JSON.stringify(s.remote)})`,
        );
      }
    };
    // Warm-up: warmupMs from the first handled message (a remote function's first calls also
    // negotiate its state specs: every batch started before the first reply is sent twice).
    let warmEnd = Infinity;
    while (performance.now() < warmEnd) {
      await sleep(SAMPLE_MS);
      check(failure);
      const s = engine.stats();
      watch(s);
      if (warmEnd === Infinity && s.processed > 0) warmEnd = performance.now() + spec.timing.warmupMs;
    }

    probes.reset();
    const a = mark(engine, spec.service?.pid);
    const samples = { n: 0, backPressured: 0, pendingMax: 0, mailboxedMax: 0 };
    const until = a.t + spec.timing.runMs;
    while (performance.now() < until) {
      await sleep(SAMPLE_MS);
      check(failure);
      const s = engine.stats();
      watch(s);
      samples.n++;
      if (s.backPressured) samples.backPressured++;
      samples.pendingMax = Math.max(samples.pendingMax, s.pending);
      samples.mailboxedMax = Math.max(samples.mailboxedMax, s.mailboxed);
      if (genDone && s.processed >= s.ingested) break;
    }
    const b = mark(engine, spec.service?.pid);
    check(failure);
    const latency = probes.summary();
    probes.recording = false;
    const st = b.stats;
    const remote = spec.params.url === undefined ? undefined : remoteBetween(a.stats.remote, st.remote);
    if (
      st.failures !== 0 ||
      st.deadLetters !== 0 ||
      probes.malformed !== 0 ||
      probes.outOfOrder !== 0 ||
      st.remote.retries !== 0 ||
      st.remote.failures !== 0
    ) {
      throw new Error(
        `${spec.name}: the run had ${st.failures} handler failures, ${st.deadLetters} dead letters, ${st.remote.retries} remote retries, ` +
          `${st.remote.failures} failed remote batches, ${probes.malformed} malformed and ${probes.outOfOrder} out-of-order probe counts`,
      );
    }
    const elapsedMs = b.t - a.t;
    const processed = st.processed - a.stats.processed;
    const s0 = performance.now();
    const e = engine;
    engine = undefined;
    let abandoned: RemoteRun['abandoned'];
    if (spec.abandon) {
      const s = e.stats();
      const backlogMessages = s.ingested - s.processed;
      quiet.on = true;
      await bounded(
        Promise.all(Array.from({ length: spec.workers }, (_, w) => e.terminateWorker(w))),
        STOP_TIMEOUT_MS,
        `${spec.name}: terminating the workers`,
      );
      await bounded(e.tornDown(), STOP_TIMEOUT_MS, `${spec.name}: teardown`);
      abandoned = { backlogMessages, cleanStopEstimateS: round(backlogMessages / Math.max(1, (processed * 1000) / elapsedMs), 1) };
    } else {
      await bounded(e.stop(), STOP_TIMEOUT_MS, `${spec.name}: engine.stop`);
    }
    const stopMs = performance.now() - s0;
    return {
      mode: spec.params.ratePerSec ? 'open loop' : 'closed loop',
      ...(spec.params.ratePerSec ? { targetRatePerSec: spec.params.ratePerSec } : {}),
      messagesPerSec: round((processed * 1000) / elapsedMs, 0),
      ingestedPerSec: round(((st.ingested - a.stats.ingested) * 1000) / elapsedMs, 0),
      elapsedMs: round(elapsedMs, 0),
      processed,
      latency,
      ...(remote === undefined ? {} : { remote }),
      cpu: cpuBetween(a, b, spec.workers, processed),
      checkpointing: spec.checkpointing,
      backPressuredFraction: samples.n > 0 ? round(samples.backPressured / samples.n) : 0,
      pendingMax: samples.pendingMax,
      mailboxedMax: samples.mailboxedMax,
      startMs: round(startMs, 0),
      stopMs: round(stopMs, 0),
      ...(abandoned === undefined ? {} : { abandoned }),
    };
  } finally {
    // Let a service finish requests an engine torn down left behind before the next run.
    if (spec.service !== undefined) await sleep(500);
    if (engine !== undefined) {
      // After a failure: stop, or tear down what failed.
      const e = engine;
      await bounded(
        e.stop().catch(() => e.tornDown()),
        STOP_TIMEOUT_MS,
        `${spec.name}: engine.stop after a failure`,
      ).catch((err: unknown) => console.error(`remote bench: ${errorText(err)}`));
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---- reporting ----

function fmtRate(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} K`;
  return x.toFixed(0);
}

function fmtMs(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** Non-empty buckets as percentages of requests, e.g. `1:93% 2-3:6% 4-7:1%`. */
export function compactBatchSizes(h: Record<string, number> | undefined): string {
  if (h === undefined) return '-';
  const total = Object.values(h).reduce((s, x) => s + x, 0);
  if (total === 0) return '-';
  return Object.entries(h)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => {
      const pct = (v * 100) / total;
      return `${k}:${pct >= 10 ? pct.toFixed(0) : pct >= 1 ? pct.toFixed(1) : pct.toFixed(2)}%`;
    })
    .join(' ');
}

function progress(name: string, r: RemoteRun): void {
  const c = r.cpu;
  const calls =
    r.remote === undefined ? '' : `; ${r.remote.calls} calls, mean batch ${r.remote.meanBatch}, ${compactBatchSizes(r.remote.batchSizes)}`;
  const cpu =
    c === undefined
      ? ''
      : `; cores: main ${c.main}, workers ${c.workers.join('+')}, rest ${c.rest}, service ${c.service}; µs/msg ` +
        `engine ${c.usPerMessage.engine}, service ${c.usPerMessage.service}`;
  const target = r.targetRatePerSec === undefined ? '' : ` (target ${fmtRate(r.targetRatePerSec)})`;
  const latency =
    r.latency.count === 0
      ? 'no probe egress in the window'
      : `p50 ${fmtMs(r.latency.p50Ms)} p99 ${fmtMs(r.latency.p99Ms)} p99.9 ${fmtMs(r.latency.p999Ms)} ms (${r.latency.count} probes)`;
  const stop =
    r.abandoned === undefined
      ? `stop ${r.stopMs} ms`
      : `abandoned with ${r.abandoned.backlogMessages} messages routed but not handled ` +
        `(a clean stop would take ~${r.abandoned.cleanStopEstimateS} s)`;
  console.log(
    `  ${name.padEnd(34)} ${fmtRate(r.messagesPerSec).padStart(8)} msg/s${target}  ` +
      `${latency}${calls}${cpu}; start ${r.startMs} ms, ${stop}`,
  );
}

/** Print the section's table (one line per system). */
export function printRemote(r: RemoteResult): void {
  const header = [
    'system',
    'msg/s',
    'ratio',
    'p50 ms',
    'p99 ms',
    'p99.9 ms',
    'latency at msg/s',
    'mean batch',
    'batch sizes (max rate, % of requests)',
    'cores eng+svc',
    'µs/msg eng+svc',
  ];
  const right = [false, true, true, true, true, true, true, true, false, true, true];
  const rows = r.systems.map((s): string[] => {
    if ('error' in s) return [s.system, 'FAILED', '-', '-', '-', '-', '-', '-', s.error.split('\n')[0]!.slice(0, 100), '-', '-'];
    const c = s.max.cpu;
    return [
      s.system,
      fmtRate(s.messagesPerSec),
      s.ratioToEmbedded === undefined ? '-' : s.ratioToEmbedded.toFixed(3),
      fmtMs(s.p50Ms),
      fmtMs(s.p99Ms),
      fmtMs(s.p999Ms),
      `${fmtRate(s.latency.messagesPerSec)} of ${fmtRate(s.latency.targetRatePerSec ?? 0)}`,
      s.meanBatch === undefined ? '-' : s.meanBatch.toFixed(2),
      compactBatchSizes(s.batchSizes),
      c === undefined ? '-' : `${c.engineProcess.toFixed(2)}+${c.service.toFixed(2)}`,
      c === undefined ? '-' : `${c.usPerMessage.engine.toFixed(1)}+${c.usPerMessage.service.toFixed(1)}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const st = r.settings;
  console.log(
    `\nremote functions (counter over ${st.keys} keys, ${st.workers} workers; msg/s closed loop; latency open loop ` +
      `at ${st.latencyFraction * 100}% of each system's max, ` +
      `1 in ${st.probeEvery} timed, egress at once; warm-up ${st.warmupMs} ms + ${st.runMs} ms per run)`,
  );
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  console.log(
    'ratio = msg/s / embedded msg/s (same run). cores and µs/msg at max rate: engine process (main + workers + rest) + ' +
      'function service process.',
  );
  console.log(
    `load average at start ${r.loadAverage.start.join(' ')}, at end ${r.loadAverage.end.join(' ')} (${st.workers} cores): ` +
      `above ~${st.workers} other processes took CPU from the runs.`,
  );
  for (const s of r.systems) if ('error' in s) console.error(`remote: ${s.name} FAILED: ${s.error}`);
}

// ---- the section ----

export async function runRemote(opts: RemoteOptions): Promise<RemoteResult> {
  const t = timing(opts.quick);
  const workers = availableParallelism();
  const systems = opts.systems ?? REMOTE_SYSTEMS;
  const limits = opts.limits ?? {};
  const result: RemoteResult = {
    settings: {
      quick: opts.quick,
      keys: KEYS,
      workers,
      keyGroups: KEY_GROUPS,
      probeEvery: PROBE_EVERY,
      latencyFraction: LATENCY_FRACTION,
      warmupMs: t.warmupMs,
      runMs: t.runMs,
      callTimeoutMs: CALL_TIMEOUT_MS,
      limits,
      endpointDefaults: 'maxNumBatchRequests 1000, poolSize 64 per worker, asyncInvocationsMax 1024 per worker',
    },
    systems: [],
    failed: [],
    loadAverage: { start: loadavg().map((x) => round(x)), end: [] },
  };
  console.log(`\nremote: counter over ${KEYS} keys, ${workers} workers; warm-up ${t.warmupMs} ms, run ${t.runMs} ms per case`);

  // Start the services first (in parallel): a service that cannot start fails only its system.
  const services = new Map<RemoteSystem, Promise<Service>>();
  if (systems.includes('remote-ts-sdk')) services.set('remote-ts-sdk', startTsService());
  if (systems.includes('remote-js-sdk')) services.set('remote-js-sdk', startJs());
  for (const p of services.values()) p.catch(() => {});

  let embeddedRate: number | undefined;
  try {
    for (const system of systems) {
      const name = `remote.counter.${system}`;
      try {
        const service = system === 'embedded' ? undefined : await services.get(system)!;
        const base: RemoteCounterParams = {
          keys: KEYS,
          count: COUNT_MAX,
          probeEvery: PROBE_EVERY,
          ...(service === undefined ? {} : { url: service.url, callTimeoutMs: CALL_TIMEOUT_MS }),
        };
        const max = await runEngine({
          name: `${name}.max`,
          params: { ...base, ratePerSec: 0 },
          workers,
          timing: t,
          checkpointing: true,
          service,
          limits,
          abandon: service !== undefined,
        });
        progress(`${name}.max`, max);
        const rate = Math.max(100, Math.round((max.messagesPerSec * LATENCY_FRACTION) / 100) * 100);
        const lat = await runEngine({
          name: `${name}.latency`,
          params: { ...base, ratePerSec: rate },
          workers,
          timing: t,
          checkpointing: false,
          service,
          limits,
          abandon: false,
        });
        progress(`${name}.latency`, lat);
        if (system === 'embedded') embeddedRate = max.messagesPerSec;
        result.systems.push({
          system,
          name,
          service: SERVICE_NAME[system],
          messagesPerSec: max.messagesPerSec,
          ...(embeddedRate === undefined ? {} : { ratioToEmbedded: round(max.messagesPerSec / embeddedRate, 4) }),
          p50Ms: lat.latency.p50Ms,
          p99Ms: lat.latency.p99Ms,
          p999Ms: lat.latency.p999Ms,
          ...(max.remote === undefined ? {} : { meanBatch: max.remote.meanBatch, batchSizes: max.remote.batchSizes }),
          max,
          latency: lat,
        });
      } catch (e) {
        const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
        console.error(`remote: ${name} failed: ${errorText(e)}`);
        result.systems.push({ system, name, error });
        result.failed.push(name);
      }
    }
  } finally {
    await Promise.all(
      [...services.values()].map((p) =>
        p.then(
          (s) => s.stop(),
          () => {},
        ),
      ),
    );
  }
  result.loadAverage.end = loadavg().map((x) => round(x));
  if (opts.print !== false) printRemote(result);
  return result;
}

// ---- standalone ----

async function main(argv: string[]): Promise<void> {
  let quick = false;
  let json = false;
  let systems: RemoteSystem[] | undefined;
  const limits: Record<string, number> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--json') json = true;
    else if (a === '--limit') {
      const [k, v] = (argv[++i] ?? '').split('=');
      if (k === undefined || k === '' || v === undefined || !Number.isFinite(Number(v))) throw new Error('--limit: expected name=number');
      limits[k] = Number(v);
    } else if (a === '--systems') {
      const v = (argv[++i] ?? '').split(',').filter((x) => x !== '');
      for (const s of v)
        if (!REMOTE_SYSTEMS.includes(s as RemoteSystem))
          throw new Error(`--systems: unknown system ${s} (expected ${REMOTE_SYSTEMS.join(', ')})`);
      systems = v as RemoteSystem[];
    } else
      throw new Error(
        `unknown argument ${a}\nusage: node --import tsx bench/remote_bench.ts [--quick] ` +
          `[--systems ${REMOTE_SYSTEMS.join(',')}] [--limit name=value ...] [--json]`,
      );
  }
  const r = await runRemote({ quick, limits, ...(systems === undefined ? {} : { systems }) });
  if (json) console.log(JSON.stringify(r, null, 2));
  if (r.failed.length > 0) process.exitCode = 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    // Nothing of ours should be left running; exit even if a stray handle would keep the loop alive.
    () => process.exit(),
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : e);
      process.exit(1);
    },
  );
}
