/**
 * The Apache Flink StateFun peer of `npm run bench -- --peers`: the workloads of
 * bench/peers/types.ts on StateFun 3.3.0 (`org.apache.flink:statefun-flink-harness:3.3.0`, Flink
 * 1.16.2) with embedded Java functions in a local Flink mini cluster, one JVM per run.
 *
 *   build     bench/peers/flink/ is a Maven project (pom.xml + our Java sources). The first run
 *             builds it with `mvn -q -B package` into
 *             node_modules/.cache/statefn-peers/flink/<hash of the sources> (the jar and its
 *             dependencies in lib/; a marker file makes later runs free; needs Maven then, and
 *             Java 11+ always);
 *   system    `java … statefn.bench.flink.Bench`: a StateFun `Harness` with parallelism 2,
 *             checkpointing every 1 s (EXACTLY_ONCE, aligned), the heap state backend (hashmap)
 *             and file-system checkpoint storage in a fresh temp dir; functions `statefn/counter`
 *             (PersistedValue<Long>, +1, one egress record) and `statefn/chain-0..9` (stateless:
 *             hop i forwards to chain-(i+1) at key hash(key, i+1); the last writes the egress
 *             record); payloads are protobuf Int64Value (StateFun's default protobuf serializer);
 *   load      an in-JVM parallel source (the harness's `withFlinkSourceFunction`) generating keys
 *             uniformly or Zipf over opts.keys, seeded; every message carries its creation time
 *             (closed loop) or intended time (open loop), and the egress consumer
 *             (`withConsumingEgress`) records now - that time and counts completions.
 *
 * Per workload: closed loop with at most 1,000, 4,000 and 16,000 messages in flight (quick: 4,000;
 * the source emits as fast as the job accepts within that bound; throughput = measured messages /
 * first-to-last completion; PeerResult.concurrency = the bound), then open loop at each of
 * opts.openRates up to 1.5 x the best closed-loop rate (plus 1.5 x that rate if no listed rate is
 * above it; quick: only the lowest rate), with at most 100,000 messages in flight. Each run:
 * warm-up (5 s; quick 2 s; not measured, covers the JIT: closed loop at the same bound, open loop
 * with the rate ramping up linearly from 0 so the window does not start with a backlog), a
 * measured window of opts.runMs (quick: at most 3 s), then a bounded drain. The JVM prints one
 * JSON line and halts; this side kills it on a timeout.
 *
 * `fraud`: statefn's fraud-detection example (examples/fraud_detection) ported to embedded Java
 * functions (bench/peers/flink/.../FraudModule.java: transaction-manager, fraud-count with a 30-day
 * delayed ExpireFraud, merchant-scorer, model; 7 messages per transaction; 10,000 accounts, Zipf(1.1)
 * over 1,000 merchants, one ConfirmFraud per 40 transactions, not measured). Its messages are plain
 * Java classes, so that run uses StateFun's Kryo payload serializer; latency = creation -> the
 * FraudScore handled by the transaction manager (which then writes one egress record).
 *
 * Environment: JAVA_HOME (which java), STATEFN_FLINK_HEAP (JVM heap, default 2g),
 * STATEFN_FLINK_BUFFER_TIMEOUT_MS (Flink's execution.buffer-timeout; default Flink's 100 ms),
 * STATEFN_FLINK_CONF (more Flink settings, `key=value;key=value`, e.g.
 * `execution.checkpointing.unaligned=true`), STATEFN_FLINK_VERBOSE=1 (log the JVM's progress lines).
 *
 * Standalone: node --import tsx bench/peers/flink_statefun.ts [--quick] [--workloads a,b]
 *   [--ms runMs] [--rates 500,2000] [--buffer-timeout-ms n] [--json results.json]
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { delimiter, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PEER_OPTIONS, type PeerResult, type PeerRunOptions, type Workload } from './types.js';
import { JAVA_MAVEN_INSTALL_HINT as INSTALL_HINT, requireJava, requireMaven, type JavaInfo } from '../../scripts/java_tools.js';

export const STATEFUN_VERSION = '3.3.0';
/** The Flink version StateFun 3.3.0 is built against (the JVM reports the one it ran). */
export const FLINK_VERSION = '1.16.2';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROJECT_DIR = fileURLToPath(new URL('./flink/', import.meta.url));
const MAIN_CLASS = 'statefn.bench.flink.Bench';
const RESULT_PREFIX = 'STATEFN_FLINK_RESULT ';
const MARKER = '.built';
const SUPPORTED: readonly Workload[] = ['counter-uniform', 'counter-zipf', 'chain', 'fraud'];
/** Messages handled per completed message, by workload (fraud: Transaction, 2 queries, 2 replies, FeatureVector, FraudScore). */
const MESSAGES_PER_COMPLETION: Record<Workload, number> = { 'counter-uniform': 1, 'counter-zipf': 1, chain: 10, fraud: 7 };
const PARALLELISM = 2;
const CHECKPOINT_INTERVAL_MS = 1_000;
const CHAIN_LENGTH = 10;
/** Closed loop: the bounds on messages in flight (source to egress) to try. */
const CLOSED_IN_FLIGHT = [1_000, 4_000, 16_000];
const CLOSED_IN_FLIGHT_QUICK = [4_000];
/** Open loop: a memory guard; a source held back by it still stamps messages with their intended time. */
const OPEN_MAX_IN_FLIGHT = 100_000;
const SEED = 42;
/** How long the JVM may take to start the mini cluster and the job. */
const STARTUP_LIMIT_MS = 120_000;

/**
 * Flink 1.16 predates Java 17 support; on 16+ its closure cleaner and serializers reflect into
 * java.base, which needs these (the set Flink 1.18 ships for Java 17).
 */
const JAVA17_OPENS = [
  '--add-opens=java.base/java.lang=ALL-UNNAMED',
  '--add-opens=java.base/java.lang.reflect=ALL-UNNAMED',
  '--add-opens=java.base/java.util=ALL-UNNAMED',
  '--add-opens=java.base/java.util.concurrent=ALL-UNNAMED',
  '--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED',
  '--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED',
  '--add-opens=java.base/java.io=ALL-UNNAMED',
  '--add-opens=java.base/java.net=ALL-UNNAMED',
  '--add-opens=java.base/java.nio=ALL-UNNAMED',
  '--add-opens=java.base/sun.nio.ch=ALL-UNNAMED',
  '--add-opens=java.base/java.text=ALL-UNNAMED',
  '--add-opens=java.base/java.time=ALL-UNNAMED',
];

// ---------------------------------------------------------------------------------------------
// Java, Maven and the build

/** The Java to run Flink with (11 or newer). */
function checkJava(): JavaInfo {
  return requireJava('the Flink StateFun peer', 11);
}

function checkMaven(): void {
  requireMaven('building the Flink StateFun peer (bench/peers/flink)');
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** A hash of the Maven project (pom.xml and src/): a new hash means a new build. */
function sourceHash(): string {
  const files = [join(PROJECT_DIR, 'pom.xml'), ...listFiles(join(PROJECT_DIR, 'src'))].sort();
  const h = createHash('sha256');
  for (const f of files) {
    h.update(relative(PROJECT_DIR, f).split('\\').join('/'));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

export interface FlinkPeerBuild {
  classpath: string;
  cacheDir: string;
  /** True if this call ran Maven. */
  built: boolean;
  /** How long this call took (the build, or reading the cache). */
  ms: number;
}

function readBuild(cacheDir: string): string | undefined {
  let marker: { jar?: unknown; lib?: unknown };
  try {
    marker = JSON.parse(readFileSync(join(cacheDir, MARKER), 'utf8')) as { jar?: unknown; lib?: unknown };
  } catch {
    return undefined;
  }
  if (typeof marker.jar !== 'string' || !Array.isArray(marker.lib) || marker.lib.length === 0) return undefined;
  const jars = [join(cacheDir, marker.jar), ...(marker.lib as unknown[]).map((j) => join(cacheDir, 'lib', String(j)))];
  if (!jars.every((j) => existsSync(j))) return undefined;
  return jars.join(delimiter);
}

/**
 * Build bench/peers/flink into node_modules/.cache/statefn-peers/flink/<hash> (once per source
 * version) and return the classpath. Concurrent callers build into private dirs and rename.
 */
export async function ensureFlinkPeerBuilt(log: (line: string) => void = () => {}): Promise<FlinkPeerBuild> {
  const started = Date.now();
  checkJava();
  const hash = sourceHash();
  const root = join(REPO_ROOT, 'node_modules', '.cache', 'statefn-peers', 'flink');
  const cacheDir = join(root, hash);
  const cached = readBuild(cacheDir);
  if (cached !== undefined) return { classpath: cached, cacheDir, built: false, ms: Date.now() - started };

  checkMaven();
  mkdirSync(root, { recursive: true });
  const work = `${cacheDir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  log(
    `flink-statefun: building bench/peers/flink with Maven (StateFun ${STATEFUN_VERSION}, Flink ${FLINK_VERSION}) ` +
      `into ${relative(REPO_ROOT, cacheDir)}; the first build downloads ~260 MB of jars`,
  );
  try {
    await new Promise<void>((res, rej) => {
      const child = spawn('mvn', ['-q', '-B', '-f', join(PROJECT_DIR, 'pom.xml'), 'package', `-Dstatefn.buildDir=${work}`], {
        cwd: PROJECT_DIR,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const keep = (b: Buffer): void => {
        output = (output + b.toString('utf8')).slice(-20_000);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      const timer = setTimeout(() => child.kill('SIGKILL'), 20 * 60_000);
      child.on('error', (e) => {
        clearTimeout(timer);
        rej(new Error(`could not run mvn: ${e.message}; ${INSTALL_HINT}`));
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) res();
        else rej(new Error(`\`mvn -q -B package\` in bench/peers/flink failed (${signal ?? `exit ${code}`}):\n${output.trim()}`));
      });
    });
    const jar = readdirSync(work).find((f) => f.startsWith('statefn-flink-statefun-peer-') && f.endsWith('.jar'));
    const lib = existsSync(join(work, 'lib'))
      ? readdirSync(join(work, 'lib'))
          .filter((f) => f.endsWith('.jar'))
          .sort()
      : [];
    if (jar === undefined || !lib.some((f) => f.startsWith(`statefun-flink-harness-${STATEFUN_VERSION}`))) {
      throw new Error(`Maven did not produce the peer jar and statefun-flink-harness-${STATEFUN_VERSION}.jar in ${work}`);
    }
    // Keep only what runs: the jar and lib/.
    for (const f of readdirSync(work)) if (f !== jar && f !== 'lib') rmSync(join(work, f), { recursive: true, force: true });
    writeFileSync(
      join(work, MARKER),
      JSON.stringify({ hash, statefun: STATEFUN_VERSION, flink: FLINK_VERSION, buildMs: Date.now() - started, jar, lib }, null, 2) + '\n',
    );
    try {
      renameSync(work, cacheDir);
    } catch (e) {
      if (readBuild(cacheDir) === undefined) {
        rmSync(cacheDir, { recursive: true, force: true });
        renameSync(work, cacheDir);
      } else if (!(e instanceof Error && 'code' in e && (e.code === 'ENOTEMPTY' || e.code === 'EEXIST'))) throw e;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const done = readBuild(cacheDir);
  if (done === undefined) throw new Error(`the Flink peer build at ${cacheDir} is incomplete`);
  // Older builds (other source hashes) are dead weight (~260 MB each); leave the ones finished
  // within the hour, which a bench started earlier may still be running from.
  for (const f of readdirSync(root)) {
    if (f === hash || !/^[0-9a-f]{16}$/.test(f)) continue;
    try {
      if (Date.now() - statSync(join(root, f, MARKER)).mtimeMs > 3_600_000) rmSync(join(root, f), { recursive: true, force: true });
    } catch {
      // no marker: an unfinished or foreign dir; leave it
    }
  }
  const ms = Date.now() - started;
  log(`flink-statefun: built in ${(ms / 1000).toFixed(1)} s`);
  return { classpath: done, cacheDir, built: true, ms };
}

// ---------------------------------------------------------------------------------------------
// One run: one JVM

interface RunConfig {
  workload: Workload;
  /** 0 = closed loop. */
  rate: number;
  keys: number;
  zipfExponent: number;
  warmupMs: number;
  measureMs: number;
  graceMs: number;
  maxInFlight: number;
  bufferTimeoutMs: number | undefined;
}

/** The JSON line the JVM prints. */
interface JvmResult {
  workload: string;
  mode: 'closed' | 'open';
  offeredPerSec: number | null;
  completed: number;
  completedInWindow: number;
  emittedMeasured: number;
  unsentMeasured: number;
  emittedTotal: number;
  completedTotal: number;
  invocations: number;
  alerts: number;
  payloadSerializer: string;
  windowMs: number | null;
  throughputPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
  timedOut: boolean;
  checkpointsCompleted: number;
  checkpointsCompletedInWindow: number;
  cpuCoresInWindow: number | null;
  startupMs: number;
  parallelism: number;
  maxInflight: number;
  flinkVersion: string;
  javaVersion: string;
  maxHeapBytes: number;
  availableProcessors: number;
}

function heap(): string {
  const h = process.env.STATEFN_FLINK_HEAP;
  if (h !== undefined && h !== '') {
    if (!/^\d+[kmgKMG]?$/.test(h)) throw new Error(`STATEFN_FLINK_HEAP: expected e.g. 2g, got ${h}`);
    return h;
  }
  return '2g';
}

function jvmFlags(): string[] {
  const java = checkJava();
  const h = heap();
  return [
    `-Xms${h}`,
    `-Xmx${h}`,
    '-XX:+UseG1GC',
    '-XX:+ExitOnOutOfMemoryError',
    '-Dlog4j.configuration=statefn-flink-log4j.properties',
    ...(java.major >= 16 ? JAVA17_OPENS : []),
  ];
}

/** STATEFN_FLINK_CONF: extra Flink settings, `key=value` separated by `;`. */
function extraFlinkConf(): string[] {
  const v = process.env.STATEFN_FLINK_CONF;
  if (v === undefined || v.trim() === '') return [];
  const kvs = v
    .split(';')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  for (const kv of kvs)
    if (kv.indexOf('=') <= 0) throw new Error(`STATEFN_FLINK_CONF: expected key=value;key=value, got ${JSON.stringify(kv)}`);
  return kvs;
}

function timeLimitMs(c: RunConfig): number {
  // Warm-up, window, the open loop's grace, and a drain.
  return c.warmupMs + c.measureMs + c.graceMs + 30_000;
}

async function runJvm(classpath: string, c: RunConfig, log: (line: string) => void): Promise<JvmResult> {
  const java = checkJava();
  const ckptDir = mkdtempSync(join(os.tmpdir(), 'statefn-flink-ckpt-'));
  const args = [
    ...jvmFlags(),
    '-cp',
    classpath,
    MAIN_CLASS,
    '--workload',
    c.workload,
    '--rate',
    String(c.rate),
    '--keys',
    String(c.keys),
    '--zipf-exponent',
    String(c.zipfExponent),
    '--seed',
    String(SEED),
    '--chain-length',
    String(CHAIN_LENGTH),
    '--warmup-ms',
    String(c.warmupMs),
    '--measure-ms',
    String(c.measureMs),
    '--grace-ms',
    String(c.graceMs),
    '--time-limit-ms',
    String(timeLimitMs(c)),
    '--max-inflight',
    String(c.maxInFlight),
    '--parallelism',
    String(PARALLELISM),
    '--checkpoint-interval-ms',
    String(CHECKPOINT_INTERVAL_MS),
    '--checkpoint-dir',
    ckptDir,
    ...(c.bufferTimeoutMs !== undefined ? ['--buffer-timeout-ms', String(c.bufferTimeoutMs)] : []),
    ...extraFlinkConf().flatMap((kv) => ['--flink-conf', kv]),
  ];
  const verbose = process.env.STATEFN_FLINK_VERBOSE === '1';
  const killAfter = STARTUP_LIMIT_MS + timeLimitMs(c) + 30_000;
  try {
    return await new Promise<JvmResult>((res, rej) => {
      const child = spawn(java.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderrTail: string[] = [];
      let partial = '';
      let killed = false;
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString('utf8');
      });
      child.stderr.on('data', (b: Buffer) => {
        const lines = (partial + b.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) {
          if (verbose) log(`  jvm: ${l}`);
          stderrTail.push(l);
        }
        if (stderrTail.length > 60) stderrTail = stderrTail.slice(-60);
      });
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, killAfter);
      child.on('error', (e) => {
        clearTimeout(timer);
        rej(new Error(`could not start ${java.bin}: ${e.message}`));
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const line = stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
        if (code === 0 && line !== undefined) {
          try {
            res(JSON.parse(line.slice(RESULT_PREFIX.length)) as JvmResult);
          } catch (e) {
            rej(new Error(`unreadable result line from the Flink JVM: ${line} (${String(e)})`));
          }
          return;
        }
        const why = killed ? `killed after ${killAfter / 1000} s` : signal !== null ? `signal ${signal}` : `exit ${code}`;
        const tail = [...stderrTail, partial]
          .filter((l) => l !== '')
          .slice(-30)
          .join('\n');
        rej(new Error(`the Flink StateFun JVM (${c.workload}, ${c.rate > 0 ? `open ${c.rate}/s` : 'closed'}) failed (${why}):\n${tail}`));
      });
    });
  } finally {
    rmSync(ckptDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Results

const GUARANTEE =
  'exactly-once state via Flink checkpoints every 1 s (aligned, EXACTLY_ONCE; local mini cluster in one JVM; ' +
  'HashMapStateBackend: state on the JVM heap; checkpoint storage: files in a local temp dir, written asynchronously, not fsynced); ' +
  'a completion (egress record) is final only after the next checkpoint completes, and a crash rolls state back to the last ' +
  'completed checkpoint (the harness egress is not transactional; the benchmark source does not replay, a real job would use Kafka)';

function round(x: number | null | undefined, digits = 2): number {
  if (x === null || x === undefined || !Number.isFinite(x)) return Number.NaN;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function toPeerResult(c: RunConfig, r: JvmResult): PeerResult {
  const notes: string[] = [];
  if (r.mode === 'closed') {
    notes.push(
      `closed loop: the source emits as fast as the job accepts, at most ${c.maxInFlight.toLocaleString('en-US')} messages in ` +
        `flight; throughput = measured messages / first-to-last completion`,
    );
  } else if (r.unsentMeasured > 0 || r.completed < r.emittedMeasured) {
    notes.push(
      `fell behind: of ${(r.emittedMeasured + r.unsentMeasured).toLocaleString('en-US')} messages due in the ` +
        `window, ${r.unsentMeasured.toLocaleString('en-US')} were never sent ` +
        `(the source stopped ${c.graceMs / 1000} s after the window) ` +
        `and ${(r.emittedMeasured - r.completed).toLocaleString('en-US')} sent ones had not completed`,
    );
  }
  if (c.workload === 'chain')
    notes.push(`${CHAIN_LENGTH} stateless hops (chain-i forwards to chain-(i+1) at hash(key, i+1)), one egress record at the end`);
  else if (c.workload === 'fraud') {
    notes.push(
      "fraud: the example's 4 functions in Java, 7 messages per transaction, Kryo payloads; latency = creation -> FraudScore handled; " +
        `${r.alerts.toLocaleString('en-US')} alerts in the run`,
    );
  } else notes.push('counter: PersistedValue<Long> +1, then one egress record per message');
  if (r.timedOut)
    notes.push(`timed out after ${timeLimitMs(c) / 1000} s with ${r.completed} of ${r.emittedMeasured} measured messages completed`);
  return {
    system: 'flink-statefun',
    version: STATEFUN_VERSION,
    workload: c.workload,
    path: 'harness',
    mode: r.mode,
    offeredPerSec: r.mode === 'open' ? c.rate : undefined,
    concurrency: r.mode === 'closed' ? c.maxInFlight : undefined,
    throughputPerSec: round(r.throughputPerSec, 0),
    completed: r.completed,
    errors: 0,
    p50Ms: round(r.p50Ms, 3),
    p99Ms: round(r.p99Ms, 3),
    p999Ms: round(r.p999Ms, 3),
    guarantee: GUARANTEE,
    settings: {
      statefunVersion: STATEFUN_VERSION,
      flinkVersion: r.flinkVersion,
      deployment:
        'statefun-flink-harness (Harness.withFlinkSourceFunction + withConsumingEgress), local mini cluster, embedded Java functions',
      parallelism: r.parallelism,
      checkpointIntervalMs: CHECKPOINT_INTERVAL_MS,
      checkpointingMode: 'EXACTLY_ONCE (aligned), max 1 concurrent (the harness forces it)',
      stateBackend: 'hashmap (HashMapStateBackend, state objects on the JVM heap)',
      checkpointStorage: 'filesystem: a fresh local temp dir (async snapshots, no fsync)',
      bufferTimeoutMs: c.bufferTimeoutMs ?? 'Flink default (100)',
      flinkConfExtra: extraFlinkConf().length > 0 ? extraFlinkConf() : undefined,
      payloadSerializer:
        r.payloadSerializer === 'kryo'
          ? 'kryo (StateFun WITH_KRYO_PAYLOADS: Harness.withKryoMessageSerializer), payloads plain Java classes'
          : 'protobuf (StateFun default WITH_PROTOBUF_PAYLOADS), payload com.google.protobuf.Int64Value',
      keys: c.workload === 'fraud' ? undefined : c.keys,
      zipfExponent: c.workload === 'counter-zipf' ? c.zipfExponent : undefined,
      fraud:
        c.workload === 'fraud'
          ? {
              accounts: 10_000,
              merchants: 1_000,
              merchantZipf: 1.1,
              confirmationsPerTransaction: 1 / 40,
              threshold: 0.8,
              pendingTtl: '1 h',
              fraudWindow: '30 days',
            }
          : undefined,
      functionInvocationsPerCompletion: r.completedTotal > 0 ? round(r.invocations / r.completedTotal, 2) : undefined,
      messagesPerCompletion: MESSAGES_PER_COMPLETION[c.workload],
      seed: SEED,
      chainLength: c.workload === 'chain' ? CHAIN_LENGTH : undefined,
      maxInFlight: r.maxInflight,
      warmupMs: c.warmupMs,
      measureMs: c.measureMs,
      java: r.javaVersion,
      jvmFlags: jvmFlags().join(' '),
      maxHeapMiB: Math.round(r.maxHeapBytes / 2 ** 20),
      jvmCpuCoresInWindow: round(r.cpuCoresInWindow, 2),
      jvmStartupMs: round(r.startupMs, 0),
      checkpointsInWindow: r.checkpointsCompletedInWindow,
      maxMs: round(r.maxMs, 3),
      meanMs: round(r.meanMs, 3),
    },
    notes: notes.join('; '),
  };
}

function openRates(opts: PeerRunOptions, closedMax: number): number[] {
  const cap = 1.5 * closedMax;
  const rates = [...new Set(opts.openRates)].filter((r) => r > 0 && r <= cap).sort((a, b) => a - b);
  if (opts.quick) return rates.slice(0, 1);
  if (!rates.some((r) => r > closedMax) && closedMax > 0) {
    const over = Number(cap.toPrecision(2));
    if (!rates.includes(over)) rates.push(over);
  }
  return rates;
}

export interface FlinkPeerExtraOptions {
  /** Flink's execution.buffer-timeout (ms); undefined = Flink's default (100 ms). */
  bufferTimeoutMs?: number;
}

function bufferTimeoutFromEnv(): number | undefined {
  const v = process.env.STATEFN_FLINK_BUFFER_TIMEOUT_MS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`STATEFN_FLINK_BUFFER_TIMEOUT_MS: expected a whole number of ms, got ${v}`);
  return n;
}

export async function runFlinkStatefun(opts: PeerRunOptions, extra: FlinkPeerExtraOptions = {}): Promise<PeerResult[]> {
  const log = opts.log;
  for (const w of opts.workloads) {
    if (!SUPPORTED.includes(w)) log(`flink-statefun: ${w}: not implemented for Flink StateFun; skipped`);
  }
  const workloads = opts.workloads.filter((w) => SUPPORTED.includes(w));
  if (workloads.length === 0) return [];
  const build = await ensureFlinkPeerBuilt(log);
  if (!build.built) log(`flink-statefun: using the cached build in ${relative(REPO_ROOT, build.cacheDir)}`);
  const bufferTimeoutMs = extra.bufferTimeoutMs ?? bufferTimeoutFromEnv();
  const warmupMs = opts.quick ? 2_000 : 5_000;
  const measureMs = opts.quick ? Math.min(opts.runMs, 3_000) : opts.runMs;
  const results: PeerResult[] = [];
  for (const workload of workloads) {
    const base: RunConfig = {
      workload,
      rate: 0,
      keys: opts.keys,
      zipfExponent: opts.zipfExponent,
      warmupMs,
      measureMs,
      graceMs: 5_000,
      maxInFlight: OPEN_MAX_IN_FLIGHT,
      bufferTimeoutMs,
    };
    let closedMax = 0;
    for (const maxInFlight of opts.quick ? CLOSED_IN_FLIGHT_QUICK : CLOSED_IN_FLIGHT) {
      const c: RunConfig = { ...base, maxInFlight };
      try {
        const t = Date.now();
        const r = await runJvm(build.classpath, c, log);
        const p = toPeerResult(c, r);
        results.push(p);
        if (p.throughputPerSec > closedMax) closedMax = p.throughputPerSec;
        log(
          `flink-statefun ${workload} closed (${maxInFlight.toLocaleString('en-US')} in ` +
            `flight): ${Math.round(p.throughputPerSec).toLocaleString('en-US')} msg/s, ` +
            `p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms (JVM start ${(r.startupMs / 1000).toFixed(1)} s, ` +
            `run ${((Date.now() - t) / 1000).toFixed(1)} s, ` +
            `${r.checkpointsCompletedInWindow} checkpoints in the window, JVM ${round(r.cpuCoresInWindow, 2)} cores)`,
        );
      } catch (e) {
        log(`flink-statefun ${workload} closed (${maxInFlight} in flight): FAILED: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (closedMax <= 0) {
      log(`flink-statefun ${workload}: no closed-loop result, so no open-loop runs`);
      continue;
    }
    for (const rate of openRates(opts, closedMax)) {
      const c: RunConfig = { ...base, rate };
      try {
        const r = await runJvm(build.classpath, c, log);
        const p = toPeerResult(c, r);
        results.push(p);
        log(
          `flink-statefun ${workload} open ${rate.toLocaleString('en-US')}/s: ` +
            `${Math.round(p.throughputPerSec).toLocaleString('en-US')} msg/s, ` +
            `p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms, p99.9 ${p.p999Ms} ms (JVM ${round(r.cpuCoresInWindow, 2)} cores)`,
        );
      } catch (e) {
        log(`flink-statefun ${workload} open ${rate}/s: FAILED: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Standalone

function parseCli(argv: string[]): { opts: PeerRunOptions; extra: FlinkPeerExtraOptions; json: string | undefined } {
  const opts: PeerRunOptions = {
    ...DEFAULT_PEER_OPTIONS,
    workloads: [...DEFAULT_PEER_OPTIONS.workloads],
    openRates: [...DEFAULT_PEER_OPTIONS.openRates],
    log: (l) => console.log(l),
  };
  const extra: FlinkPeerExtraOptions = {};
  let msGiven = false;
  let json: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') opts.quick = true;
    else if (a === '--workloads') opts.workloads = value().split(',') as Workload[];
    else if (a === '--ms') {
      opts.runMs = Number(value());
      msGiven = true;
    } else if (a === '--rates') opts.openRates = value().split(',').map(Number);
    else if (a === '--buffer-timeout-ms') extra.bufferTimeoutMs = Number(value());
    else if (a === '--json') json = value();
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: node --import tsx bench/peers/flink_statefun.ts [--quick] [--workloads a,b] [--ms runMs] [--rates 500,2000] ' +
          '[--buffer-timeout-ms n] [--json results.json]',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (opts.quick && !msGiven) opts.runMs = 3_000;
  return { opts, extra, json };
}

function printTable(results: PeerResult[]): void {
  const rows = results.map((r) => [
    r.workload,
    r.mode,
    r.offeredPerSec !== undefined ? r.offeredPerSec.toLocaleString('en-US') : '-',
    r.concurrency !== undefined ? r.concurrency.toLocaleString('en-US') : '-',
    Math.round(r.throughputPerSec).toLocaleString('en-US'),
    r.completed.toLocaleString('en-US'),
    String(r.p50Ms),
    String(r.p99Ms),
    String(r.p999Ms),
    String(r.settings.jvmCpuCoresInWindow),
  ]);
  const head = ['workload', 'mode', 'offered/s', 'in flight', 'throughput/s', 'completed', 'p50 ms', 'p99 ms', 'p99.9 ms', 'JVM cores'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmt(r));
}

if (process.argv[1] !== undefined && resolve(fileURLToPath(import.meta.url)) === resolve(process.argv[1])) {
  const { opts, extra, json } = parseCli(process.argv.slice(2));
  runFlinkStatefun(opts, extra).then(
    (results) => {
      if (json !== undefined) writeFileSync(json, JSON.stringify(results, null, 2) + '\n');
      console.log('');
      printTable(results);
      if (results[0] !== undefined) {
        console.log(
          `\nflink-statefun ${STATEFUN_VERSION} (Flink ${String(results[0].settings.flinkVersion)}), ` +
            `parallelism ${PARALLELISM}, ${String(results[0].settings.jvmFlags)}`,
        );
        console.log(`guarantee: ${results[0].guarantee}`);
      }
    },
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
}
