/**
 * statefn's side of `npm run bench -- --peers`: the peer workloads (bench/peers/types.ts) on the
 * real engine (main thread + worker threads + rings + LMDB, checkpoints on), through two ingresses:
 *
 *   generator  the app's seeded `GeneratorIngress` inside the engine process: closed loop (as fast
 *              as the engine takes records) and open loop at fixed rates. Latency = the record's
 *              creation time (carried in the message) -> processing of the last hop, sampled
 *              (1 in 64 counter messages, 1 in 8 chains / transactions per worker), as bench/macro.ts.
 *   http       the app's `HttpIngress` (durable replies: 202 once the checkpoint covering the
 *              message is complete), driven by a pipelining HTTP/1.1 client in a child process
 *              (apps/http_load.ts): closed loop at fixed concurrencies and open loop at fixed
 *              rates. Latency = request sent (open loop: due) -> durable reply, at the client.
 *
 * Every run starts a fresh engine on a fresh temporary state directory, warms up, measures a
 * bounded window, stops the engine and deletes the directory. CPU: the engine process per thread
 * from /proc/self/task (main = the thread whose tid is the pid, workers = the `workers` busiest
 * others, rest = GC helpers, lmdb's write thread, the checkpoint uploader, libuv), the client
 * process from its own `process.cpuUsage()`.
 *
 * Standalone, one case (experiments):
 *   node --import tsx bench/peers/statefn.ts [--quick] [--workload counter-uniform|counter-zipf|chain|fraud]
 *        [--path generator|http] [--mode closed|open] [--rate r] [--concurrency c] [--workers n]
 *        [--ms measureMs] [--limit name=value ...]
 *   node --import tsx bench/peers/statefn.ts --all [--quick]      (what runStatefn does)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Engine } from '../../index.js';
import type { Logger } from '../../api/connector_api.js';
import type { HttpIngress } from '../../connectors/http/http_ingress.js';
import { DEFAULT_PEER_OPTIONS, type LoadMode, type LoadPath, type PeerResult, type PeerRunOptions, type Workload } from './types.js';
import { LATENCY_EGRESS_ID, type PeerLatencyEgress } from './apps/common.js';
import { HOPS } from './apps/chain.js';
import { FRAUD_MESSAGES_PER_TRANSACTION } from './apps/fraud.js';
import { LoadClient, type LoadJob, type LoadResult } from './apps/http_load.js';
import { CONFIRMED_FRAUD_INGRESS } from '../../examples/fraud_detection/types.js';
import { threadTicks } from '../machine.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const APP: Record<'counter' | 'chain' | 'fraud', string> = {
  counter: new URL('./apps/counter.ts', import.meta.url).href,
  chain: new URL('./apps/chain.ts', import.meta.url).href,
  fraud: new URL('./apps/fraud.ts', import.meta.url).href,
};
const KEY_GROUPS = 256;
/**
 * A clean stop handles every message already admitted; a closed-loop chain run admits up to a
 * ring plus an outbox of chains (~2 MiB, tens of thousands, each 10 hops), which on a loaded
 * 2-core machine took longer than the engine's default 30 s stop timeout. Raised for the bench;
 * a stop that still fails is recorded in the row's notes (the window was measured before it).
 */
const STOP_TIMEOUT_MS = 60_000;
/**
 * HTTP open loop: requests outstanding above which the client drops arrivals (counted as errors).
 * Durable replies wait ~1 checkpoint, so a rate r needs ~r x 1.5 s outstanding at 1 s checkpoints;
 * the cap bounds the engine's backlog when a rate is not sustained (Restate's client: 4,096).
 */
const OPEN_MAX_IN_FLIGHT = 16_384;
const SAMPLE_MS = 100;
/** Engine defaults of every run (reported in settings). */
export const STATEFN_ENGINE_DEFAULTS = { workers: 2, checkpointIntervalMs: 1000, keyGroups: KEY_GROUPS, checkpointing: true } as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 2): number => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);

export function statefnVersion(): string {
  let v = 'unknown';
  try {
    v = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // keep 'unknown'
  }
  try {
    const c = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'engine', 'workers', 'connectors'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return `${v} (${c}${dirty.length > 0 ? ', engine sources modified' : ''})`;
  } catch {
    return v;
  }
}

/** Keep the engine's info lines out of the output; warnings and errors still show. */
function benchLogger(log: (l: string) => void): Logger {
  let warnings = 0;
  return {
    info: () => {},
    warn: (m, f) => {
      if (++warnings <= 5) log(`statefn: engine warning: ${m}${f ? ' ' + JSON.stringify(f) : ''}`);
    },
    error: (m, f) => log(`statefn: engine error: ${m}${f ? ' ' + JSON.stringify(f) : ''}`),
  };
}

interface Mark {
  t: number;
  processed: number;
  ingested: number;
  cpu: NodeJS.CpuUsage;
  threads: Map<number, number>;
  positions: Record<string, number>;
}

function mark(engine: Engine): Mark {
  const s = engine.stats();
  const positions: Record<string, number> = {};
  for (const r of engine.app.ingresses) {
    const p = r.connector.position?.();
    if (typeof p === 'number') positions[r.connector.id] = p;
  }
  return { t: performance.now(), processed: s.processed, ingested: s.ingested, cpu: process.cpuUsage(), threads: threadTicks(), positions };
}

export interface EngineCpu {
  /** Cores busy in the engine process (all threads). */
  processCores: number;
  main: number;
  workers: number[];
  rest: number;
}

function engineCpu(a: Mark, b: Mark, workers: number): EngineCpu {
  const secs = (b.t - a.t) / 1000;
  const processCores = (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1e6 / secs;
  let main = 0;
  const others: number[] = [];
  for (const [tid, t1] of b.threads) {
    const d = ((t1 - (a.threads.get(tid) ?? 0)) * 0.01) / secs;
    if (tid === process.pid) main = d;
    else others.push(d);
  }
  others.sort((x, y) => y - x);
  return {
    processCores: round(processCores),
    main: round(main),
    workers: others.slice(0, workers).map((x) => round(x)),
    rest: round(others.slice(workers).reduce((s, x) => s + x, 0)),
  };
}

// ---- engine lifecycle ----

interface Started {
  engine: Engine;
  stateDir: string;
  startMs: number;
}

async function startEngine(
  app: string,
  params: unknown,
  workers: number,
  limits: Record<string, number>,
  log: (l: string) => void,
): Promise<Started> {
  const stateDir = mkdtempSync(join(tmpdir(), 'statefn-peers-'));
  const t0 = performance.now();
  try {
    const engine = await Engine.start(
      { module: app, params },
      {
        stateDir,
        workers,
        logger: benchLogger(log),
        checkpointing: true,
        limits: { keyGroups: KEY_GROUPS, stopTimeoutMs: STOP_TIMEOUT_MS, ...limits },
      },
    );
    return { engine, stateDir, startMs: performance.now() - t0 };
  } catch (e) {
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Stop cleanly; never throws. A stop that fails (the engine's stopTimeoutMs) fails the engine,
 * which tears itself down (workers terminated); that is awaited, and the error returned.
 */
async function stopEngine(s: Started): Promise<{ ms: number; error?: string }> {
  const t0 = performance.now();
  let error: string | undefined;
  try {
    await s.engine.stop();
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    await s.engine.tornDown().catch(() => {});
  } finally {
    rmSync(s.stateDir, { recursive: true, force: true });
  }
  return { ms: performance.now() - t0, ...(error === undefined ? {} : { error }) };
}

/**
 * The chain touches 10 function types x `keys` addresses (1,000,000): per checkpoint interval a
 * worker's dirty set can pass `dirtyEntriesMax` (200,000), and with every worker over it at once
 * the engine deadlocks (see the Peers section of bench/README.md: a pressured worker stops reading
 * the main ring, which carries the barrier that would clear its dirty set). The chain runs
 * therefore raise the state cache and dirty bounds above the chain's address count.
 */
export const CHAIN_LIMITS = { stateCacheEntriesMax: 1 << 21, dirtyEntriesMax: 1 << 21 } as const;

function appOf(w: Workload): {
  module: string;
  limits: Record<string, number>;
  params: (o: PeerRunOptions, source: 'generator' | 'http', rate: number, count: number) => Record<string, unknown>;
} {
  switch (w) {
    case 'counter-uniform':
    case 'counter-zipf':
      return {
        module: APP.counter,
        limits: {},
        params: (o, source, rate, count) => ({
          source,
          keys: o.keys,
          zipfExponent: w === 'counter-zipf' ? o.zipfExponent : 0,
          ratePerSec: rate,
          count,
        }),
      };
    case 'chain':
      return {
        module: APP.chain,
        limits: { ...CHAIN_LIMITS },
        params: (o, source, rate, count) => ({ source, keys: o.keys, ratePerSec: rate, count }),
      };
    case 'fraud':
      return { module: APP.fraud, limits: {}, params: (_o, source, rate, count) => ({ source, ratePerSec: rate, count }) };
  }
}

// ---- guarantees ----

const CRASH =
  'After a crash (kill -9, a worker dying, or power loss: the checkpoint record and the snapshot store are fsynced; LMDB ' +
  'itself runs noSync) ' +
  'every worker rolls back to the last complete checkpoint and resumes from it';

export function guaranteeText(path: LoadPath, w: Workload, checkpointIntervalMs: number): string {
  if (path === 'generator') {
    return (
      `Latency is to processing, not to durability: an effect becomes durable with the next checkpoint ` +
      `(every ${checkpointIntervalMs} ms, complete when its ` +
      `snapshot and record are fsynced to the local snapshot store, typically 0.1-2 s later). ${CRASH}; the generator restarts ` +
      `from its checkpointed position, ` +
      "so every record's effects (state, messages, exactly-once egress) happen exactly once; work since that checkpoint is " +
      'redone, not lost. Egress becomes visible only when its checkpoint completes.'
    );
  }
  const base =
    'Reply (202) only once the checkpoint covering the message is complete (snapshot + checkpoint record fsynced to the local ' +
    'snapshot store): ' +
    'an acknowledged message survives any crash and its effects happen exactly once.';
  if (w === 'chain' || w === 'fraud') {
    return (
      `${base} For the ${w === 'chain' ? '10 hops' : '7 messages of a transaction'}: that checkpoint holds each later step ` +
      `either as its state effect or as the message ` +
      'that leads to it (pending, or recorded in flight across the cut), so the whole ' +
      (w === 'chain' ? 'chain' : 'scoring') +
      ' completes exactly once after any crash; at reply time the later steps may still be running (Restate replies after all of them ran).'
    );
  }
  return base;
}

/** The engine's last (up to 16) checkpoints: durations, and what their uploads wrote. */
function checkpointSummary(
  flushes: readonly { durationMs: number }[],
  uploads: readonly { objects: number; changedKeys: number; ms: number }[],
): Record<string, unknown> {
  const mean = (xs: number[]): number | null => (xs.length === 0 ? null : round(xs.reduce((a, b) => a + b, 0) / xs.length, 1));
  const d = flushes.map((f) => f.durationMs);
  return {
    recent: d.length,
    durationMsMean: mean(d),
    durationMsMax: d.length === 0 ? null : Math.max(...d),
    uploadMsMean: mean(uploads.map((u) => u.ms)),
    uploadObjectsMean: mean(uploads.map((u) => u.objects)),
    uploadChangedKeysMean: mean(uploads.map((u) => u.changedKeys)),
  };
}

// ---- one generator run ----

export interface StatefnCaseOptions {
  workload: Workload;
  path: LoadPath;
  mode: LoadMode;
  /** Open loop rate (records or requests per second). */
  ratePerSec?: number;
  /** HTTP closed loop: requests outstanding. */
  concurrency?: number;
  workers: number;
  limits: Record<string, number>;
  warmupMs: number;
  measureMs: number;
  /** A label for variants of the engine settings (e.g. `ckpt 20 ms`). */
  variant?: string;
}

type Detailed = PeerResult & { detail: Record<string, unknown> };

function baseSettings(c: StatefnCaseOptions, o: PeerRunOptions): Record<string, unknown> {
  return {
    workers: c.workers,
    checkpointIntervalMs: c.limits.checkpointIntervalMs ?? STATEFN_ENGINE_DEFAULTS.checkpointIntervalMs,
    checkpointing: true,
    snapshotStore: 'local directory <stateDir>/snapshots (fsync)',
    keyGroups: KEY_GROUPS,
    limits: { stopTimeoutMs: STOP_TIMEOUT_MS, ...appOf(c.workload).limits, ...c.limits },
    keys: c.workload === 'fraud' ? { accounts: 10_000, merchants: 1_000 } : o.keys,
    ...(c.workload === 'counter-zipf' ? { zipfExponent: o.zipfExponent } : {}),
    warmupMs: c.warmupMs,
    measureMs: c.measureMs,
    stateDir: 'fresh temporary directory per run (os.tmpdir())',
    ...(c.variant === undefined ? {} : { variant: c.variant }),
  };
}

export async function generatorCase(c: StatefnCaseOptions, o: PeerRunOptions): Promise<Detailed> {
  const rate = c.mode === 'open' ? (c.ratePerSec ?? 0) : 0;
  const count = rate > 0 ? Math.ceil((rate * (c.warmupMs + c.measureMs + 5000)) / 1000) : 50_000_000;
  const app = appOf(c.workload);
  const s = await startEngine(app.module, app.params(o, 'generator', rate, count), c.workers, { ...app.limits, ...c.limits }, o.log);
  let stopped = false;
  try {
    let failure: Error | undefined;
    s.engine.failed().catch((e: Error) => {
      failure = e;
    });
    const egress = s.engine.app.egresses.get(LATENCY_EGRESS_ID) as unknown as PeerLatencyEgress;
    await sleep(c.warmupMs);
    egress.open();
    const a = mark(s.engine);
    const samples = { n: 0, backPressured: 0, pendingMax: 0, rssMaxBytes: 0, checkpointPendingMsMax: 0 };
    const until = a.t + c.measureMs;
    while (performance.now() < until && failure === undefined) {
      await sleep(SAMPLE_MS);
      const st = s.engine.stats();
      samples.n++;
      if (st.backPressured) samples.backPressured++;
      samples.pendingMax = Math.max(samples.pendingMax, st.pending);
      samples.checkpointPendingMsMax = Math.max(samples.checkpointPendingMsMax, st.checkpointPendingMs);
      samples.rssMaxBytes = Math.max(samples.rssMaxBytes, process.memoryUsage.rss());
    }
    if (failure !== undefined) throw failure;
    const b = mark(s.engine);
    egress.close();
    const st = s.engine.stats();
    if (st.failures !== 0 || st.deadLetters !== 0)
      throw new Error(`statefn ${c.workload}: ${st.failures} handler failures, ${st.deadLetters} dead letters`);
    const secs = (b.t - a.t) / 1000;
    const processed = b.processed - a.processed;
    let units = processed;
    if (c.workload === 'chain') units = processed / HOPS;
    else if (c.workload === 'fraud') {
      const conf = (b.positions[CONFIRMED_FRAUD_INGRESS] ?? 0) - (a.positions[CONFIRMED_FRAUD_INGRESS] ?? 0);
      units = Math.max(0, processed - conf) / FRAUD_MESSAGES_PER_TRANSACTION;
    }
    const flushes = [...s.engine.checkpoints];
    const uploads = [...s.engine.uploads];
    const cpu = engineCpu(a, b, c.workers);
    const stalled = st.checkpointPendingMs > 3 * (c.limits.checkpointIntervalMs ?? STATEFN_ENGINE_DEFAULTS.checkpointIntervalMs) + 5000;
    // The final checkpoint of a clean stop releases every held sample (counted by processing time).
    const stop = await stopEngine(s);
    stopped = true;
    const lat = egress.summary();
    const notes: string[] = [];
    if (c.mode === 'closed') notes.push('closed loop: latency is queueing at saturation (behind back-pressure)');
    if (stalled)
      notes.push(
        `a checkpoint was pending for ${Math.round(st.checkpointPendingMs / 1000)} s at the window's end (stalled, or very ` +
          `slow checkpoints)`,
      );
    if (stop.error !== undefined) notes.push(`clean stop failed: ${stop.error}; latency from the samples released before it`);
    const stopMs = stop.ms;
    const thr = units / secs;
    return {
      system: 'statefn',
      version: statefnVersion(),
      workload: c.workload,
      path: 'generator',
      mode: c.mode,
      ...(c.mode === 'open' ? { offeredPerSec: rate } : {}),
      throughputPerSec: round(thr, 1),
      completed: Math.round(units),
      errors: 0,
      p50Ms: round(lat.processed.p50Ms, 3),
      p99Ms: round(lat.processed.p99Ms, 3),
      p999Ms: round(lat.processed.p999Ms, 3),
      guarantee: guaranteeText('generator', c.workload, c.limits.checkpointIntervalMs ?? STATEFN_ENGINE_DEFAULTS.checkpointIntervalMs),
      settings: {
        ...baseSettings(c, o),
        ingress: 'GeneratorIngress in the engine process (batch 256, seeded)',
        latency: `record creation -> last hop processed, sampled 1 in ${c.workload.startsWith('counter') ? 64 : 8} per worker`,
        throughputUnit:
          c.workload === 'chain'
            ? 'chains/s (handled hops / 10)'
            : c.workload === 'fraud'
              ? 'transactions/s ((handled - confirmations) / 7)'
              : 'messages/s',
        ...(c.workload === 'fraud' ? { confirmationsPerSec: rate > 0 ? rate * 0.025 : 1000 } : {}),
      },
      ...(notes.length > 0 ? { notes: notes.join('; ') } : {}),
      detail: {
        elapsedMs: round(b.t - a.t, 0),
        processedMessagesPerSec: round(processed / secs, 0),
        ingestedPerSec: round((b.ingested - a.ingested) / secs, 0),
        latencySamples: lat.processed.count,
        latencyProcessed: lat.processed,
        latencyVisibleAtExactlyOnceEgress: {
          ...lat.visible,
          note:
            'creation -> written to the exactly-once egress (released when the checkpoint completes); only records ' +
            'released before the window ended',
        },
        engineCpu: cpu,
        cpuUsPerUnit: thr > 0 ? round((cpu.processCores * 1e6) / thr, 2) : null,
        backPressuredFraction: samples.n > 0 ? round(samples.backPressured / samples.n) : null,
        pendingMax: samples.pendingMax,
        checkpointPendingMsMax: samples.checkpointPendingMsMax,
        rssMaxMiB: round(samples.rssMaxBytes / 2 ** 20, 0),
        checkpoints: checkpointSummary(flushes, uploads),
        startMs: round(s.startMs, 0),
        stopMs: round(stopMs, 0),
      },
    };
  } finally {
    if (!stopped) await stopEngine(s);
  }
}

// ---- one HTTP run ----

export async function httpCase(c: StatefnCaseOptions, o: PeerRunOptions, client: LoadClient): Promise<Detailed> {
  const app = appOf(c.workload);
  const s = await startEngine(
    app.module,
    { ...app.params(o, 'http', 0, 0), http: { requestsInFlightMax: 1 << 20, connectionsMax: 8192 } },
    c.workers,
    { ...app.limits, ...c.limits },
    o.log,
  );
  let stopped = false;
  try {
    let failure: Error | undefined;
    s.engine.failed().catch((e: Error) => {
      failure = e;
    });
    const ingress = s.engine.app.ingresses[0]!.connector as unknown as HttpIngress;
    const { host, port } = ingress.address();
    const rate = c.ratePerSec ?? 0;
    const concurrency = c.concurrency ?? 0;
    const job: LoadJob = {
      host,
      port,
      workload: c.workload,
      keys: o.keys,
      zipfExponent: o.zipfExponent,
      seed: 11,
      mode: c.mode,
      ...(c.mode === 'closed' ? { concurrency } : { ratePerSec: rate }),
      // Closed loop: one connection per outstanding request up to 256 (as Restate's client),
      // pipelined beyond. Open loop: 64 pipelined connections.
      connections: c.mode === 'closed' ? Math.min(concurrency, 256) : 64,
      warmupMs: c.warmupMs,
      measureMs: c.measureMs,
      drainMs: 15_000,
      maxInFlight: OPEN_MAX_IN_FLIGHT,
    };
    let a: Mark | undefined;
    let b: Mark | undefined;
    const ingressA = { v: ingress.stats() };
    const samples = { n: 0, rssMaxBytes: 0, checkpointPendingMsMax: 0, pendingMax: 0 };
    const sampler = setInterval(() => {
      const st = s.engine.stats();
      samples.n++;
      samples.pendingMax = Math.max(samples.pendingMax, st.pending);
      samples.checkpointPendingMsMax = Math.max(samples.checkpointPendingMsMax, st.checkpointPendingMs);
      samples.rssMaxBytes = Math.max(samples.rssMaxBytes, process.memoryUsage.rss());
    }, SAMPLE_MS);
    let r: LoadResult;
    try {
      r = await client.run(job, (phase) => {
        if (phase === 'start') {
          a = mark(s.engine);
          ingressA.v = ingress.stats();
        } else b = mark(s.engine);
      });
    } finally {
      clearInterval(sampler);
    }
    if (failure !== undefined) throw failure;
    // NaN travels over IPC as null.
    for (const k of ['p50Ms', 'p90Ms', 'p99Ms', 'p999Ms', 'maxMs', 'meanMs'] as const) if (typeof r[k] !== 'number') r[k] = Number.NaN;
    const st = s.engine.stats();
    const ingressB = ingress.stats();
    const flushes = [...s.engine.checkpoints];
    const uploads = [...s.engine.uploads];
    const cpu = a !== undefined && b !== undefined ? engineCpu(a, b, c.workers) : undefined;
    const stop = await stopEngine(s);
    stopped = true;
    const stopMs = stop.ms;
    const thr = r.throughputPerSec;
    const perReq = (cores: number): number | null => (thr > 0 ? round((cores * 1e6) / thr, 1) : null);
    const notes: string[] = [];
    if (r.errors > 0) notes.push(`${r.errors} errors (${r.dropped} dropped by the client's in-flight cap); first: ${r.firstError ?? '?'}`);
    if (r.completed === 0)
      notes.push(
        r.firstAnswerMs === null
          ? 'no reply at all'
          : `no 202 inside the window; the first reply came ${r.firstAnswerMs} ms after the start ` +
              `(window ${c.warmupMs}-${c.warmupMs + c.measureMs} ms)`,
      );
    if (r.undrained > 0) notes.push(`${r.undrained} requests unanswered ${job.drainMs} ms after the window`);
    if (st.failures !== 0 || st.deadLetters !== 0) notes.push(`${st.failures} handler failures, ${st.deadLetters} dead letters`);
    if (stop.error !== undefined) notes.push(`clean stop failed: ${stop.error}`);
    return {
      system: 'statefn',
      version: statefnVersion(),
      workload: c.workload,
      path: 'http',
      mode: c.mode,
      ...(c.mode === 'open' ? { offeredPerSec: rate } : { concurrency }),
      throughputPerSec: round(thr, 1),
      completed: r.completed,
      errors: r.errors,
      p50Ms: round(r.p50Ms, 3),
      p99Ms: round(r.p99Ms, 3),
      p999Ms: round(r.p999Ms, 3),
      guarantee: guaranteeText('http', c.workload, c.limits.checkpointIntervalMs ?? STATEFN_ENGINE_DEFAULTS.checkpointIntervalMs),
      settings: {
        ...baseSettings(c, o),
        ingress:
          'HttpIngress, replyWhen durable, 127.0.0.1, requestsInFlightMax 1048576, connectionsMax 8192; group commit (durableWaitMs 2)',
        client:
          `pipelining HTTP/1.1 client in a child process (bench/peers/apps/http_load.ts), ${r.connections} keep-alive connections` +
          (c.mode === 'closed' ? `, ${concurrency} requests outstanding` : `, open loop, in-flight cap ${job.maxInFlight}`),
        latency:
          c.mode === 'closed'
            ? 'request sent -> durable reply (202), at the client'
            : 'request due -> durable reply (202), at the client (no coordinated omission)',
        throughputUnit: 'requests/s answered 202 inside the window',
      },
      ...(notes.length > 0 ? { notes: notes.join('; ') } : {}),
      detail: {
        client: r,
        cpu: {
          clientCores: r.clientCpuCores,
          clientEventLoopUtilization: r.clientEventLoopUtilization,
          engine: cpu ?? null,
          usPerRequest:
            cpu === undefined
              ? null
              : {
                  client: perReq(r.clientCpuCores),
                  main: perReq(cpu.main),
                  workers: perReq(cpu.workers.reduce((x, y) => x + y, 0)),
                  rest: perReq(cpu.rest),
                },
        },
        ingress: {
          accepted: ingressB.requestsAccepted - ingressA.v.requestsAccepted,
          overloaded503: ingressB.requestsOverloaded - ingressA.v.requestsOverloaded,
          rejected4xx: ingressB.requestsRejected - ingressA.v.requestsRejected,
        },
        engine: {
          processed: st.processed,
          pendingMax: samples.pendingMax,
          checkpointPendingMsMax: samples.checkpointPendingMsMax,
          rssMaxMiB: round(samples.rssMaxBytes / 2 ** 20, 0),
        },
        checkpoints: checkpointSummary(flushes, uploads),
        startMs: round(s.startMs, 0),
        stopMs: round(stopMs, 0),
      },
    };
  } finally {
    if (!stopped) await stopEngine(s);
  }
}

// ---- the whole statefn side ----

export interface StatefnTiming {
  warmupMs: number;
  measureMs: number;
}

export function statefnTiming(o: PeerRunOptions): StatefnTiming {
  return o.quick ? { warmupMs: 1500, measureMs: Math.min(o.runMs, 4000) } : { warmupMs: 3000, measureMs: Math.min(o.runMs, 10_000) };
}

function fmt(r: PeerResult): string {
  const at = r.mode === 'open' ? `open ${r.offeredPerSec}/s` : r.concurrency !== undefined ? `closed c=${r.concurrency}` : 'closed max';
  const v = typeof r.settings.variant === 'string' ? ` [${r.settings.variant}]` : '';
  return (
    `statefn ${r.workload} ${r.path}${v} ${at}: ${r.throughputPerSec.toFixed(0)}/s p50 ${r.p50Ms.toFixed(2)} ` +
    `p99 ${r.p99Ms.toFixed(2)} p99.9 ${r.p999Ms.toFixed(2)} ms` +
    (r.errors > 0 ? ` (${r.errors} errors)` : '')
  );
}

function failed(c: StatefnCaseOptions, e: unknown, o: PeerRunOptions): PeerResult {
  const message = e instanceof Error ? e.message : String(e);
  o.log(`statefn ${c.workload} ${c.path} ${c.mode} FAILED: ${message}`);
  return {
    system: 'statefn',
    version: statefnVersion(),
    workload: c.workload,
    path: c.path,
    mode: c.mode,
    ...(c.ratePerSec !== undefined ? { offeredPerSec: c.ratePerSec } : {}),
    ...(c.concurrency !== undefined ? { concurrency: c.concurrency } : {}),
    throughputPerSec: 0,
    completed: 0,
    errors: 1,
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
    p999Ms: Number.NaN,
    guarantee: guaranteeText(c.path, c.workload, c.limits.checkpointIntervalMs ?? 1000),
    settings: { workers: c.workers, limits: c.limits },
    notes: `FAILED: ${message}`,
  };
}

interface HttpVariant {
  limits: Record<string, number>;
  variant?: string;
  workloads: Workload[];
  concurrencies: number[];
}

/**
 * The HTTP cases: statefn as shipped, every workload. (Earlier runs also tried 50 ms checkpoint
 * intervals and a runtime patch of the ingress's abort waits; group commit and the O(1) stop
 * waits made both the default.)
 */
function httpVariants(o: PeerRunOptions): HttpVariant[] {
  return [
    { limits: {}, workloads: o.workloads, concurrencies: o.quick ? [o.httpConcurrency, 4096] : [16, o.httpConcurrency, 256, 1024, 4096] },
  ];
}

/**
 * Every statefn case of the peer comparison, per workload in `o.workloads`:
 *   generator: closed loop, then open loop at `o.openRates` up to 1.2x the closed-loop rate;
 *   http: closed loop at concurrency 16, `o.httpConcurrency` and 256 (Restate's), plus 4,096
 *         (pipelined; how far durable replies scale with outstanding requests), then open loop at
 *         `o.openRates` ascending until a rate is not sustained (achieved < 80% or > 1% errors).
 * Durable replies use group commit: a waiting request starts a checkpoint within the engine's
 * durableWaitMs (docs/checkpoints.md), so they do not wait for the 1 s interval.
 */
export async function runStatefn(opts: PeerRunOptions): Promise<PeerResult[]> {
  const t = statefnTiming(opts);
  const workers = STATEFN_ENGINE_DEFAULTS.workers;
  const out: PeerResult[] = [];
  const add = (r: PeerResult): void => {
    out.push(r);
    opts.log(fmt(r));
  };
  opts.log(
    `statefn: ${workers} workers, checkpoints every ${STATEFN_ENGINE_DEFAULTS.checkpointIntervalMs} ms; warm-up ${t.warmupMs} ` +
      `ms, window ${t.measureMs} ms per case`,
  );
  const sustained = (r: PeerResult): boolean =>
    r.offeredPerSec !== undefined && r.throughputPerSec >= 0.8 * r.offeredPerSec && r.errors <= 0.01 * Math.max(1, r.completed);

  // Generator path.
  for (const w of opts.workloads) {
    const base: StatefnCaseOptions = { workload: w, path: 'generator', mode: 'closed', workers, limits: {}, ...t };
    let max = 0;
    try {
      const r = await generatorCase(base, opts);
      add(r);
      max = r.throughputPerSec;
    } catch (e) {
      add(failed(base, e, opts));
    }
    for (const rate of opts.openRates) {
      if (max > 0 && rate > 1.2 * max) {
        opts.log(`statefn ${w} generator: open loop at ${rate}/s skipped (closed-loop max ${max.toFixed(0)}/s)`);
        continue;
      }
      const c: StatefnCaseOptions = { ...base, mode: 'open', ratePerSec: rate };
      try {
        add(await generatorCase(c, opts));
      } catch (e) {
        add(failed(c, e, opts));
      }
    }
  }

  // HTTP path.
  const client = LoadClient.start();
  try {
    for (const v of httpVariants(opts)) {
      for (const w of v.workloads) {
        const base: StatefnCaseOptions = {
          workload: w,
          path: 'http',
          mode: 'closed',
          workers,
          limits: v.limits,
          ...t,
          ...(v.variant === undefined ? {} : { variant: v.variant }),
        };
        const concurrencies = [...new Set(v.concurrencies)].sort((x, y) => x - y);
        for (const cc of concurrencies) {
          const c = { ...base, concurrency: cc };
          try {
            add(await httpCase(c, opts, client));
          } catch (e) {
            add(failed(c, e, opts));
          }
        }
        for (const rate of opts.openRates) {
          const c: StatefnCaseOptions = { ...base, mode: 'open', ratePerSec: rate };
          let r: PeerResult;
          try {
            r = await httpCase(c, opts, client);
          } catch (e) {
            r = failed(c, e, opts);
          }
          add(r);
          if (!sustained(r)) {
            opts.log(`statefn ${w} http${v.variant === undefined ? '' : ` [${v.variant}]`}: ${rate}/s not sustained; higher rates skipped`);
            break;
          }
        }
      }
    }
  } finally {
    await client.close();
  }
  return out;
}

// ---- standalone ----

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o: PeerRunOptions = { ...DEFAULT_PEER_OPTIONS, log: (l) => console.log(l) };
  let workload: Workload = 'counter-uniform';
  let path: LoadPath = 'generator';
  let mode: LoadMode = 'closed';
  let rate = 0;
  let concurrency = 64;
  let workers = 2;
  let ms: number | undefined;
  let all = false;
  const limits: Record<string, number> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a}: missing value`);
      return x;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--all') all = true;
    else if (a === '--workload') workload = v() as Workload;
    else if (a === '--path') path = v() as LoadPath;
    else if (a === '--mode') mode = v() as LoadMode;
    else if (a === '--rate') {
      rate = Number(v());
      mode = 'open';
    } else if (a === '--concurrency') concurrency = Number(v());
    else if (a === '--workers') workers = Number(v());
    else if (a === '--ms') ms = Number(v());
    else if (a === '--limit') {
      const [k, x] = v().split('=');
      limits[k!] = Number(x);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (o.quick) o.openRates = [2_000, 50_000];
  if (all) {
    const rs = await runStatefn(o);
    console.log(JSON.stringify(rs, null, 2));
    return;
  }
  const t = statefnTiming(o);
  const c: StatefnCaseOptions = {
    workload,
    path,
    mode,
    workers,
    limits,
    ...t,
    ...(ms === undefined ? {} : { measureMs: ms }),
    ...(mode === 'open' ? { ratePerSec: rate } : { concurrency }),
  };
  if (path === 'http') {
    const client = LoadClient.start();
    try {
      const r = await httpCase(c, o, client);
      console.log(fmt(r));
      console.log(JSON.stringify(r.detail, null, 1));
    } finally {
      await client.close();
    }
  } else {
    const r = await generatorCase(c, o);
    console.log(fmt(r));
    console.log(JSON.stringify(r.detail, null, 1));
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exitCode = 1;
  });
}
