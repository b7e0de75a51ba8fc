/**
 * End-to-end (macro) benchmarks: the real engine (main thread + worker threads + rings + LMDB)
 * driven by a generator ingress.
 *
 *   counter.max.<n>w     counter over 100,000 uniform keys at the highest rate the engine takes
 *                        (closed loop: the generator submits as long as the engine is writable),
 *                        with n = 1, 2 and os.availableParallelism() workers;
 *   counter.latency.<n>w the same at a fixed open-loop rate of about half the measured max, with
 *                        p50/p99 of ingress -> egress latency (1 in 64 messages is timed);
 *   pingpong.<c>chains   messages hopping worker -> worker -> ... (stateless), c chains in flight;
 *                        1 chain gives the per-hop latency.
 *
 * Rates are `processed / elapsed` between a warm-up mark and the end of the run (the engine's
 * shared counters, sampled on the main thread). Each run uses a fresh temporary state directory
 * and is bounded in time (quick: ~0.7 s warm-up + 2 s; full: 2 s + 8 s). CPU is the whole
 * process's (all threads) `process.cpuUsage()` over the measured window divided by its length,
 * i.e. cores busy; the main thread's event-loop utilisation is reported beside it.
 *
 * Standalone (e.g. for profiling one scenario):
 *   node --import tsx bench/macro.ts [--quick] [--scenario counter|latency|pingpong|all]
 *        [--workers n] [--rate r] [--chains c] [--ms runMs] [--limit name=value ...]
 * (`--limit` overrides an engine limit for experiments, e.g. `--limit checkpointIntervalMs=3600000`
 * shows latency without the periodic state flush; the figures of `runMacro` use the defaults.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Engine } from '../index.js';
import type { Logger } from '../api/connector_api.js';
import type { GeneratorIngress } from '../connectors/generator/generator_ingress.js';
import type { LatencyEgress } from './apps/latency_egress.js';
import type { CounterBenchParams } from './apps/counter_bench.js';
import type { PingPongParams } from './apps/pingpong_bench.js';
import type { MicroResult } from './micro.js';
import { threadTicks } from './machine.js';

export interface MacroResult {
  name: string;
  messagesPerSec: number;
  p50Ms?: number;
  p99Ms?: number;
  detail?: Record<string, unknown>;
}

export interface MacroOptions {
  quick?: boolean;
  /** The raw ring limits measured by the micro benchmarks, printed beside engine throughput. */
  rawRing?: MicroResult[];
}

const COUNTER_APP = new URL('./apps/counter_bench.ts', import.meta.url).href;
const PINGPONG_APP = new URL('./apps/pingpong_bench.ts', import.meta.url).href;
const KEYS = 100_000;
const EGRESS_EVERY = 64;
const KEY_GROUPS = 256;
/** Upper bound of records per run (the generator is count-limited); the time bound ends runs first. */
const COUNT_MAX = 50_000_000;
const SAMPLE_MS = 100;
/**
 * Limits from docs' "Measured limits" (2 vCPUs, Node 20), used when the micro benchmarks did not
 * run: raw 64 B frames main -> worker over a 1 MiB ring, and msgpackr addressed messages over it.
 */
const BRIEF_RAW_RING_64B_PER_SEC = 18_000_000;
const BRIEF_CODEC_RING_MSGS_PER_SEC = 2_000_000;

interface Timing {
  warmupMs: number;
  runMs: number;
}

function timing(quick: boolean): Timing {
  return quick ? { warmupMs: 700, runMs: 2000 } : { warmupMs: 2000, runMs: 8000 };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Keep the engine's info lines out of the benchmark output; warnings and errors still show. */
function benchLogger(): Logger & { warnings: number } {
  const l = {
    warnings: 0,
    info: () => {},
    warn: (m: string, f?: Record<string, unknown>) => {
      l.warnings++;
      if (l.warnings <= 5) console.error(`bench: engine warning: ${m}${f ? ' ' + JSON.stringify(f) : ''}`);
    },
    error: (m: string, f?: Record<string, unknown>) => console.error(`bench: engine error: ${m}${f ? ' ' + JSON.stringify(f) : ''}`),
  };
  return l;
}

interface Mark {
  t: number;
  processed: number;
  ingested: number;
  cpu: NodeJS.CpuUsage;
  elu: ReturnType<typeof performance.eventLoopUtilization>;
  threads: Map<number, number>;
}

function mark(engine: Engine): Mark {
  const s = engine.stats();
  return {
    t: performance.now(),
    processed: s.processed,
    ingested: s.ingested,
    cpu: process.cpuUsage(),
    elu: performance.eventLoopUtilization(),
    threads: threadTicks(),
  };
}

/** Cores used per thread between two marks: the main thread, the `workers` busiest others, the rest. */
function threadCores(a: Mark, b: Mark, workers: number, processed: number): Record<string, unknown> | undefined {
  if (a.threads.size === 0) return undefined;
  const secs = (b.t - a.t) / 1000;
  const tick = 0.01; // USER_HZ is 100 on Linux
  let main = 0;
  const others: number[] = [];
  for (const [tid, t1] of b.threads) {
    const d = ((t1 - (a.threads.get(tid) ?? 0)) * tick) / secs;
    if (tid === process.pid) main = d;
    else others.push(d);
  }
  others.sort((x, y) => y - x);
  const top = others.slice(0, workers);
  const rest = others.slice(workers).reduce((s, x) => s + x, 0);
  const perMsgUs = (cores: number): number | null => (processed > 0 ? round((cores * secs * 1e6) / processed, 3) : null);
  return {
    main: round(main),
    busiestOthers: top.map((x) => round(x)),
    rest: round(rest),
    mainUsPerMessage: perMsgUs(main),
    workersUsPerMessage: perMsgUs(top.reduce((s, x) => s + x, 0)),
    restUsPerMessage: perMsgUs(rest),
  };
}

interface Window {
  elapsedMs: number;
  processed: number;
  ingested: number;
  messagesPerSec: number;
  detail: Record<string, unknown>;
}

/** Rates and CPU between two marks, plus what the samples in between saw. */
function window(
  a: Mark,
  b: Mark,
  workers: number,
  samples: { backPressured: number; n: number; pendingMax: number; parkedMax: number },
): Window {
  const elapsedMs = b.t - a.t;
  const processed = b.processed - a.processed;
  const ingested = b.ingested - a.ingested;
  const cpuMs = (b.cpu.user - a.cpu.user + (b.cpu.system - a.cpu.system)) / 1000;
  const elu = performance.eventLoopUtilization(b.elu, a.elu);
  return {
    elapsedMs,
    processed,
    ingested,
    messagesPerSec: (processed * 1000) / elapsedMs,
    detail: {
      elapsedMs: round(elapsedMs, 0),
      processed,
      ingestedPerSec: round((ingested * 1000) / elapsedMs, 0),
      processCpuCores: round(cpuMs / elapsedMs, 2),
      processCpuUserMs: round((b.cpu.user - a.cpu.user) / 1000, 0),
      processCpuSystemMs: round((b.cpu.system - a.cpu.system) / 1000, 0),
      cpuUsPerMessage: processed > 0 ? round((cpuMs * 1000) / processed, 3) : null,
      mainEventLoopUtilization: round(elu.utilization, 2),
      threadCores: threadCores(a, b, workers, processed),
      backPressuredFraction: samples.n > 0 ? round(samples.backPressured / samples.n, 2) : null,
      pendingMax: samples.pendingMax,
      parkedBytesMax: samples.parkedMax,
    },
  };
}

interface RunSpec {
  name: string;
  app: string;
  params: CounterBenchParams | PingPongParams;
  workers: number;
  timing: Timing;
  /** Ingress id of the generator, to know when a count-limited run is done early. */
  egressId: string;
  latency: boolean;
  /**
   * End the run early once the count-limited generator is done and everything it ingested was
   * handled (only where one ingress record leads to one handled message, as in the counter).
   */
  endWhenDrained: boolean;
  /** Engine limit overrides (experiments only: the reported figures use the defaults). */
  limits?: Record<string, number>;
  /** Exactly-once egress (released per checkpoint); default true, as the engine's default. */
  checkpointing?: boolean;
  /** `false`: no snapshot store uploads (local LMDB only); default: the engine's local-dir store. */
  snapshots?: false;
}

interface RunOutcome {
  win: Window;
  latency: ReturnType<LatencyEgress['summary']> | undefined;
  egressRecords: number;
  startMs: number;
  stopMs: number;
  flushes: { count: number; durationMsMax: number; writesMax: number };
}

/** One engine run: start, warm up, measure, stop, clean up. */
async function runEngine(spec: RunSpec): Promise<RunOutcome> {
  const stateDir = mkdtempSync(join(tmpdir(), 'statefn-bench-'));
  const logger = benchLogger();
  const t0 = performance.now();
  let engine: Engine | undefined;
  try {
    engine = await Engine.start(
      { module: spec.app, params: spec.params },
      {
        stateDir,
        workers: spec.workers,
        logger,
        checkpointing: spec.checkpointing !== false,
        ...(spec.snapshots === false ? { snapshots: false as const } : {}),
        limits: { ...spec.limits, keyGroups: KEY_GROUPS },
      },
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
    const egress = engine.app.egresses.get(spec.egressId) as unknown as LatencyEgress;
    egress.recording = false;
    await sleep(spec.timing.warmupMs);
    if (spec.latency) egress.reset();
    const a = mark(engine);
    const samples = { backPressured: 0, n: 0, pendingMax: 0, parkedMax: 0 };
    const until = a.t + spec.timing.runMs;
    while (performance.now() < until && failure === undefined) {
      await sleep(SAMPLE_MS);
      const s = engine.stats();
      samples.n++;
      if (s.backPressured) samples.backPressured++;
      samples.pendingMax = Math.max(samples.pendingMax, s.pending);
      samples.parkedMax = Math.max(samples.parkedMax, s.parkedBytes);
      // A count-limited run that finished early ends when everything ingested was handled.
      if (spec.endWhenDrained && genDone && s.processed >= s.ingested) break;
    }
    if (failure !== undefined) throw failure;
    const b = mark(engine);
    const latency = spec.latency ? egress.summary() : undefined;
    egress.recording = false;
    const st = engine.stats();
    if (st.failures !== 0 || st.deadLetters !== 0 || egress.malformed !== 0) {
      throw new Error(
        `${spec.name}: the run had ${st.failures} handler failures, ${st.deadLetters} dead letters, ${egress.malformed} ` +
          `malformed egress records`,
      );
    }
    const fl = engine.checkpoints;
    const flushes = {
      count: fl.length,
      durationMsMax: Math.max(0, ...fl.map((f) => f.durationMs)),
      writesMax: Math.max(0, ...fl.map((f) => f.writes)),
    };
    const s0 = performance.now();
    await engine.stop();
    const stopMs = performance.now() - s0;
    engine = undefined;
    return { win: window(a, b, spec.workers, samples), latency, egressRecords: egress.records, startMs, stopMs, flushes };
  } finally {
    if (engine !== undefined) await engine.stop().catch(() => {});
    rmSync(stateDir, { recursive: true, force: true });
  }
}

interface Limits {
  rawRing64BPerSec: number;
  rawRingSource: string;
}

function limitsFrom(rawRing: MicroResult[] | undefined): Limits {
  const r = rawRing?.find((m) => m.name === 'ring.crossThread.64B');
  return r === undefined
    ? { rawRing64BPerSec: BRIEF_RAW_RING_64B_PER_SEC, rawRingSource: 'brief (18 M frames/s, 64 B, 1 MiB ring)' }
    : { rawRing64BPerSec: r.opsPerSec, rawRingSource: 'micro ring.crossThread.64B (this run)' };
}

function result(name: string, o: RunOutcome, limits: Limits, extra: Record<string, unknown>): MacroResult {
  const mps = o.win.messagesPerSec;
  const r: MacroResult = {
    name,
    messagesPerSec: mps,
    detail: {
      ...extra,
      ...o.win.detail,
      egressRecords: o.egressRecords,
      flushes: o.flushes,
      startMs: round(o.startMs, 0),
      stopMs: round(o.stopMs, 0),
      rawRing64BFramesPerSec: round(limits.rawRing64BPerSec, 0),
      rawRingSource: limits.rawRingSource,
      ratioToRawRing: round(mps / limits.rawRing64BPerSec, 4),
      ratioToCodecRingLimit: round(mps / BRIEF_CODEC_RING_MSGS_PER_SEC, 3),
    },
  };
  if (o.latency !== undefined) {
    r.p50Ms = o.latency.p50Ms;
    r.p99Ms = o.latency.p99Ms;
    r.detail!.latency = { ...o.latency };
  }
  return r;
}

function report(r: MacroResult): void {
  const d = r.detail ?? {};
  const lat = r.p99Ms === undefined ? '' : `  p50 ${r.p50Ms!.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms`;
  console.log(
    `  ${r.name.padEnd(26)} ${(r.messagesPerSec / 1e6).toFixed(3)} M msg/s${lat}  ` +
      `(${((d.ratioToRawRing as number) * 100).toFixed(2)}% of raw ` +
      `ring ${((d.rawRing64BFramesPerSec as number) / 1e6).toFixed(1)} M frames/s; ` +
      `${((d.ratioToCodecRingLimit as number) * 100).toFixed(0)}% of the 2.0 M msg/s codec+ring limit; ` +
      `cpu ${String(d.processCpuCores)} cores, ${String(d.cpuUsPerMessage)} µs/msg, main ELU ${String(d.mainEventLoopUtilization)}` +
      `${d.threadCores === undefined ? '' : `, threads ${JSON.stringify(d.threadCores)}`})`,
  );
}

export interface CounterRunOptions {
  workers: number;
  timing: Timing;
  ratePerSec?: number;
  limits?: Record<string, number>;
  checkpointing?: boolean;
  snapshots?: false;
}

export async function counterRun(o: CounterRunOptions): Promise<RunOutcome> {
  const latency = o.ratePerSec !== undefined && o.ratePerSec > 0;
  return runEngine({
    name: latency ? `counter.latency.${o.workers}w` : `counter.max.${o.workers}w`,
    app: COUNTER_APP,
    params: { keys: KEYS, count: COUNT_MAX, egressEvery: EGRESS_EVERY, ratePerSec: o.ratePerSec ?? 0 } satisfies CounterBenchParams,
    workers: o.workers,
    timing: o.timing,
    egressId: 'bench/latency',
    // The max-rate runs record latency too (it shows queueing at saturation).
    latency: true,
    endWhenDrained: true,
    ...(o.limits === undefined ? {} : { limits: o.limits }),
    ...(o.checkpointing === undefined ? {} : { checkpointing: o.checkpointing }),
    ...(o.snapshots === false ? { snapshots: false as const } : {}),
  });
}

export async function pingPongRun(workers: number, chains: number, t: Timing): Promise<RunOutcome> {
  return runEngine({
    name: `pingpong.${chains}chains`,
    app: PINGPONG_APP,
    params: { workers, keyGroups: KEY_GROUPS, chains } satisfies PingPongParams,
    workers,
    timing: t,
    egressId: 'bench/done',
    latency: false,
    // The chains never end within a run; every hop counts as processed.
    endWhenDrained: false,
  });
}

export async function runMacro(opts: MacroOptions = {}): Promise<MacroResult[]> {
  const t = timing(opts.quick === true);
  const limits = limitsFrom(opts.rawRing);
  const cores = availableParallelism();
  const workerCounts = [...new Set([1, 2, cores])].sort((a, b) => a - b);
  const results: MacroResult[] = [];
  const add = (r: MacroResult): void => {
    results.push(r);
    report(r);
  };
  console.log(
    `\nmacro: counter over ${KEYS} keys, 1 in ${EGRESS_EVERY} timed; warm-up ${t.warmupMs} ms, run ${t.runMs} ms per case; ${cores} cores`,
  );
  let maxAtCores = 0;
  for (const w of workerCounts) {
    const o = await counterRun({ workers: w, timing: t });
    const r = result(`counter.max.${w}w`, o, limits, { workers: w, keys: KEYS, mode: 'closed loop (max rate)' });
    add(r);
    if (w === cores) maxAtCores = r.messagesPerSec;
  }
  const rate = Math.max(1000, Math.round(maxAtCores / 2 / 1000) * 1000);
  {
    const o = await counterRun({ workers: cores, timing: t, ratePerSec: rate });
    add(result(`counter.latency.${cores}w`, o, limits, { workers: cores, keys: KEYS, mode: 'open loop', targetRatePerSec: rate }));
  }
  // Exactly-once egress against egress released at once, same run: the cost of the guarantee.
  // (State and messages are checkpointed in both; with checkpointing on, an egress record
  // becomes visible only when its epoch's checkpoint completes, which is what p99 shows.)
  {
    const off = await counterRun({ workers: cores, timing: t, checkpointing: false });
    const rOff = result(`counter.max.${cores}w.egressAtOnce`, off, limits, {
      workers: cores,
      keys: KEYS,
      mode: 'closed loop, checkpointing off',
    });
    rOff.detail = { ...rOff.detail, throughputRatioCheckpointingOnToOff: round(maxAtCores / Math.max(1, rOff.messagesPerSec), 3) };
    add(rOff);
    const offLat = await counterRun({ workers: cores, timing: t, ratePerSec: rate, checkpointing: false });
    add(
      result(`counter.latency.${cores}w.egressAtOnce`, offLat, limits, {
        workers: cores,
        keys: KEYS,
        mode: 'open loop, checkpointing off',
        targetRatePerSec: rate,
      }),
    );
  }
  for (const chains of [256, 1]) {
    const o = await pingPongRun(cores, chains, t);
    const r = result(`pingpong.${chains}chains.${cores}w`, o, limits, {
      workers: cores,
      chains,
      unit: 'hops/s',
      perHopUs: chains === 1 && o.win.messagesPerSec > 0 ? round(1e6 / o.win.messagesPerSec, 2) : undefined,
    });
    add(r);
  }
  return results;
}

// ---- standalone ----

function parseCli(argv: string[]): {
  quick: boolean;
  scenario: string;
  workers: number;
  rate: number;
  chains: number;
  ms: number | undefined;
  limits: Record<string, number>;
} {
  const out = {
    quick: false,
    scenario: 'all',
    workers: availableParallelism(),
    rate: 0,
    chains: 256,
    ms: undefined as number | undefined,
    limits: {} as Record<string, number>,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a}: missing value`);
      return x;
    };
    if (a === '--quick') out.quick = true;
    else if (a === '--scenario') out.scenario = v();
    else if (a === '--workers') out.workers = Number(v());
    else if (a === '--rate') out.rate = Number(v());
    else if (a === '--chains') out.chains = Number(v());
    else if (a === '--ms') out.ms = Number(v());
    else if (a === '--limit') {
      const [k, x] = v().split('=');
      out.limits[k!] = Number(x);
    } else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

async function main(): Promise<void> {
  const c = parseCli(process.argv.slice(2));
  const t = timing(c.quick);
  if (c.ms !== undefined) t.runMs = c.ms;
  const limits = limitsFrom(undefined);
  if (c.scenario === 'all') {
    const rs = await runMacro({ quick: c.quick });
    console.log(JSON.stringify(rs, null, 2));
  } else if (c.scenario === 'counter' || c.scenario === 'latency') {
    const o = await counterRun({
      workers: c.workers,
      timing: t,
      ...(c.rate > 0 ? { ratePerSec: c.rate } : {}),
      ...(Object.keys(c.limits).length === 0 ? {} : { limits: c.limits }),
    });
    const r = result(`counter.${c.rate > 0 ? 'latency' : 'max'}.${c.workers}w`, o, limits, {
      workers: c.workers,
      targetRatePerSec: c.rate || undefined,
    });
    report(r);
    console.log(JSON.stringify(r.detail));
  } else if (c.scenario === 'pingpong') {
    const o = await pingPongRun(c.workers, c.chains, t);
    const r = result(`pingpong.${c.chains}chains.${c.workers}w`, o, limits, { workers: c.workers, chains: c.chains });
    report(r);
    console.log(JSON.stringify(r.detail));
  } else {
    throw new Error(`--scenario: expected counter, latency, pingpong or all, got ${c.scenario}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exitCode = 1;
  });
}
