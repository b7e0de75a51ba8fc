/**
 * Kafka benchmarks: Kafka -> counter -> Kafka, statefn against a plain kafkajs consume-produce
 * loop with the same client settings, in the same run, on the same broker.
 *
 * Systems, one after another, each on fresh topics (input and output: 4 partitions each):
 *   statefn.exactly-once   bench/apps/kafka_counter_app.ts on the engine (2 workers, default
 *                          checkpoint interval): KafkaIngress -> `kb/counter` (a `Types.long` per
 *                          id in LMDB, checkpointed with snapshots) -> KafkaEgress, one Kafka
 *                          transaction per checkpoint;
 *   statefn.at-least-once  the same with the egress's at-least-once semantic (idempotent producer,
 *                          records written as they arrive, the checkpoint waits for their acks);
 *   kafkajs.at-least-once  consumer eachBatch -> counts in a JS Map -> producer.sendBatch(acks -1, in requests of <= 4,096)
 *                          -> commitOffsets;
 *   kafkajs.exactly-once   consume-transform-produce: a transactional producer, one transaction
 *                          per checkpoint interval with the records and `sendOffsets` for the
 *                          consumer's offsets; consumer read_committed.
 * The kafkajs loops keep their counts in memory only (lost on a crash, no durable state); statefn's
 * state is durable (LMDB + snapshot store). That difference is part of what the ratio shows.
 *
 * Same client settings everywhere (those the connectors use): consumer maxBytesPerPartition 1 MiB,
 * maxBytes 8 MiB, maxWaitTimeInMs 100, read_committed, one partition batch at a time; producer
 * idempotent, maxInFlightRequests 1, acks -1; requests of at most 4,096 records (at-least-once, as
 * the engine's egress dispatcher hands KafkaEgress) or 2,000 (in a transaction, as KafkaEgress).
 *
 * Per system:
 *   1. throughput (closed loop): N records (keys uniform over 100,000 ids, the same seeded
 *      sequence for every system) are produced to the input topic first (not measured); then the
 *      system starts, and the rate is N / (time the last output became visible to a
 *      read_committed consumer - time the system handed over its first input record);
 *   2. latency (open loop), on the same running system: records produced at a fixed rate, each
 *      value the time it was due to be produced; a read_committed consumer on the output records
 *      receive time - that time (p50/p99/p99.9/max), dropping the first second (warm-up).
 * The producing and watching clients run in a worker thread of their own (not on the event loop
 * of the system under test), with the same kafkajs settings.
 *
 * The broker: STATEFN_KAFKA_BROKERS (host:port[,...]) if set, else a local KRaft broker started
 * from the Maven jars (scripts/kafka_broker.ts; needs java and, the first time, mvn) and stopped
 * at the end. Every wait is bounded; a timeout fails the section with what it was waiting for.
 *
 * A system whose run fails is reported with its error (the section then fails: exit code 1) and
 * the others still run.
 *
 * Standalone: node --import tsx bench/kafka_bench.ts [--quick] [--records n] [--systems statefn.exactly-once,...]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHistogram } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  Kafka,
  logLevel,
  Partitioners,
  type Consumer,
  type ConsumerConfig,
  type EachBatchPayload,
  type Message as KafkaMessage,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../api/connector_api.js';
import type { KafkaEgress } from '../connectors/kafka/kafka_egress.js';
import type { BenchKafkaIngress, KafkaCounterParams } from './apps/kafka_counter_app.js';
import { nowMs } from './apps/latency_egress.js';

// ---------------------------------------------------------------------------------------------
// Settings

export type KafkaSemantic = 'exactly-once' | 'at-least-once';
export type KafkaSystem = 'statefn' | 'kafkajs';

const APP_URL = new URL('./apps/kafka_counter_app.ts', import.meta.url).href;
const KEYS = 100_000;
const PARTITIONS = 4;
const WORKERS = 2;
/** The engine's default checkpoint interval (limits.ts), also the kafkajs EOS loop's transaction interval. */
const CHECKPOINT_INTERVAL_MS = 1000;
/** Records per produce request inside a transaction, as KafkaEgress. */
const TX_CHUNK = 2_000;
/**
 * Records per at-least-once produce request: the most the engine's egress dispatcher hands
 * KafkaEgress in one write. (A whole fetched batch in one request can exceed the broker's
 * message.max.bytes, and kafkajs groups a request's records by partition in quadratic time.)
 */
const ALO_CHUNK = 4_096;
/** Records per request when filling the input topic. */
const PRELOAD_CHUNK = 10_000;
const SEED = 1;
/** Open-loop producer tick. */
const TICK_MS = 5;

/** Consumer settings, as KafkaIngress's. */
const CONSUMER: Partial<ConsumerConfig> = {
  maxBytesPerPartition: 1 << 20,
  maxBytes: 8 << 20,
  maxWaitTimeInMs: 100,
  readUncommitted: false,
  allowAutoTopicCreation: false,
};
/** Producer settings, as KafkaEgress's (at-least-once; exactly-once adds the transactional id). */
const PRODUCER: Partial<ProducerConfig> = {
  createPartitioner: Partitioners.DefaultPartitioner,
  idempotent: true,
  maxInFlightRequests: 1,
  allowAutoTopicCreation: false,
};

interface Plan {
  records: number;
  latencyRatePerSec: number;
  latencyMs: number;
  warmupMs: number;
}

function plan(quick: boolean): Plan {
  return quick
    ? { records: 50_000, latencyRatePerSec: 2_000, latencyMs: 5_000, warmupMs: 1_000 }
    : { records: 200_000, latencyRatePerSec: 5_000, latencyMs: 10_000, warmupMs: 1_000 };
}

const START_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 30_000;
const DRAIN_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
const SETTLE_TIMEOUT_MS = 60_000;
/** The closed-loop run fails below this rate (rather than waiting for ever). */
const MIN_RATE_PER_SEC = 2_000;

const GUARANTEE: Record<`${KafkaSystem}.${KafkaSemantic}`, string> = {
  'statefn.exactly-once': 'EOS: output + offsets + state per checkpoint; durable state',
  'statefn.at-least-once': 'ALO output; offsets + state per checkpoint; durable state',
  'kafkajs.exactly-once': 'EOS: Kafka txn (output + offsets); state in memory only',
  'kafkajs.at-least-once': 'ALO; state in memory only',
};

// ---------------------------------------------------------------------------------------------
// Results

export interface KafkaLatency {
  offeredPerSec: number;
  durationMs: number;
  warmupMs: number;
  produced: number;
  /** Outputs of this phase seen (>= produced once drained; more means duplicates). */
  seen: number;
  /** Outputs measured (after the warm-up). */
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
  /** Outputs of this phase received between the end of the warm-up and the end of producing, per second. */
  achievedPerSec: number;
  /** From the last record's due time until the last output was seen. */
  drainMs: number;
  /** How late the load generator's producer ran at worst (its own queueing; included in the latencies). */
  producerLagMaxMs: number;
}

export interface KafkaSystemResult {
  name: `${KafkaSystem}.${KafkaSemantic}`;
  system: KafkaSystem;
  semantic: KafkaSemantic;
  guarantee: string;
  durableState: boolean;
  throughput: {
    records: number;
    recordsPerSec: number;
    /** First input record handed over -> last output visible to read_committed. */
    elapsedMs: number;
    /** Start call -> first input record handed over (engine start, connect, group join). */
    startToFirstRecordMs: number;
    preloadMs: number;
    outputsSeen: number;
    cpu: Record<string, unknown> | undefined;
  };
  /** Throughput over the kafkajs loop's with the same semantic (statefn systems only). */
  ratioToKafkajs?: number;
  latency: KafkaLatency;
  detail: Record<string, unknown>;
}

/** A system whose run failed (the others still run; the section then reports failure). */
export interface KafkaSystemFailure {
  name: `${KafkaSystem}.${KafkaSemantic}`;
  system: KafkaSystem;
  semantic: KafkaSemantic;
  error: string;
}

export interface KafkaResult {
  broker: { source: 'STATEFN_KAFKA_BROKERS' | 'started'; bootstrap: string; version?: string; startMs?: number };
  settings: Record<string, unknown>;
  systems: (KafkaSystemResult | KafkaSystemFailure)[];
  /** Names of the systems whose run failed (see their `error`). */
  failed: string[];
  notes: string[];
  elapsedMs: number;
}

export interface KafkaOptions {
  quick: boolean;
  /** Records of the closed-loop run (default 200,000; quick 50,000): for experiments. */
  records?: number;
  /** Only these systems (default all four, in the order above). */
  systems?: `${KafkaSystem}.${KafkaSemantic}`[];
}

// ---------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A deterministic PRNG (mulberry32): the same key sequence for every system. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  return `${e.name}: ${e.message}${cause instanceof Error && cause.message !== e.message ? ` (cause: ${cause.message})` : ''}`;
}

/**
 * Wait for `p`, checking `failed()` every 100 ms; reject with `what` after `timeoutMs`, with
 * `progress()` in the message.
 */
async function bounded<T>(
  p: Promise<T>,
  timeoutMs: number,
  what: string,
  failed: () => Error | undefined = () => undefined,
  progress: () => string = () => '',
): Promise<T> {
  let settled = false;
  let value: T | undefined;
  let error: Error | undefined;
  p.then(
    (v) => {
      settled = true;
      value = v;
    },
    (e: unknown) => {
      settled = true;
      error = e instanceof Error ? e : new Error(e === undefined || e === null ? 'rejected' : errorText(e), { cause: e });
    },
  );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (settled) {
      if (error !== undefined) throw error;
      return value as T;
    }
    const f = failed();
    if (f !== undefined) throw new Error(`kafka bench: failed while waiting for ${what}: ${errorText(f)}`, { cause: f });
    if (Date.now() > deadline) {
      const pr = progress();
      throw new Error(`kafka bench: timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${pr === '' ? '' : ` (${pr})`}`);
    }
    await sleep(100);
  }
}

/** Keep the engine's info lines out of the output; warnings and errors still show. */
function benchLogger(): Logger & { warnings: number; errors: number } {
  const l = {
    warnings: 0,
    errors: 0,
    info: () => {},
    warn: (m: string, f?: Record<string, unknown>) => {
      l.warnings++;
      if (l.warnings <= 5) console.error(`kafka bench: engine warning: ${m}${f ? ' ' + JSON.stringify(f) : ''}`);
    },
    error: (m: string, f?: Record<string, unknown>) => {
      l.errors++;
      console.error(`kafka bench: engine error: ${m}${f ? ' ' + JSON.stringify(f) : ''}`);
    },
  };
  return l;
}

// ---- CPU per thread (Linux /proc; empty elsewhere) ----

const TICK_S = 0.01; // USER_HZ

function ticksOf(statPath: string): number | undefined {
  try {
    const stat = readFileSync(statPath, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

interface CpuMark {
  t: number;
  threads: Map<number, number>;
  broker: number | undefined;
}

function cpuMark(brokerPid: number | undefined): CpuMark {
  const threads = new Map<number, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const t = ticksOf(`/proc/self/task/${tid}/stat`);
      if (t !== undefined) threads.set(Number(tid), t);
    }
  } catch {
    // not Linux
  }
  return { t: nowMs(), threads, broker: brokerPid === undefined ? undefined : ticksOf(`/proc/${brokerPid}/stat`) };
}

/** Cores busy between two marks: this process's main thread, the load worker, the rest, and the broker JVM. */
function cpuBetween(a: CpuMark, b: CpuMark, loadTid: number | undefined, records: number): Record<string, unknown> | undefined {
  if (b.threads.size === 0) return undefined;
  const secs = (b.t - a.t) / 1000;
  let main = 0;
  let load = 0;
  let rest = 0;
  const others: number[] = [];
  for (const [tid, t1] of b.threads) {
    const cores = ((t1 - (a.threads.get(tid) ?? 0)) * TICK_S) / secs;
    if (tid === process.pid) main += cores;
    else if (tid === loadTid) load += cores;
    else {
      rest += cores;
      others.push(cores);
    }
  }
  others.sort((x, y) => y - x);
  const broker = a.broker !== undefined && b.broker !== undefined ? ((b.broker - a.broker) * TICK_S) / secs : undefined;
  const us = (cores: number): number => round((cores * secs * 1e6) / records, 1);
  return {
    mainCores: round(main),
    otherThreadsCores: round(rest),
    busiestOtherThreads: others.slice(0, 5).map((x) => round(x)),
    loadClientCores: round(load),
    ...(broker === undefined ? {} : { brokerCores: round(broker) }),
    systemUsPerRecord: us(main + rest),
    mainUsPerRecord: us(main),
    otherThreadsUsPerRecord: us(rest),
    ...(broker === undefined ? {} : { brokerUsPerRecord: us(broker) }),
  };
}

/** The pid of the broker JVM started with `logDir` (Linux), for its CPU time. */
function findBrokerPid(logDir: string): number | undefined {
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      let cmd: string;
      try {
        cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (cmd.includes('kafka.Kafka') && cmd.includes(logDir)) return Number(d);
    }
  } catch {
    // not Linux
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Load worker: the producing and watching clients, in a thread of their own

interface LoadInit {
  kafkaBenchLoad: true;
  brokers: string[];
  inTopic: string;
  outTopic: string;
  keys: number;
  seed: number;
}

type ToLoad =
  | { op: 'expect'; count: number }
  | { op: 'openLoop'; ratePerSec: number; durationMs: number; warmupMs: number; drainTimeoutMs: number }
  | { op: 'stop' };

type FromLoad =
  | { op: 'ready'; tid: number | undefined }
  | { op: 'progress'; count: number }
  | { op: 'reached'; count: number; atMs: number }
  | { op: 'latency'; result: KafkaLatency }
  | { op: 'error'; message: string }
  | { op: 'stopped' };

function threadId(): number | undefined {
  try {
    return Number(/task\/(\d+)/.exec(readlinkSync('/proc/thread-self'))?.[1]);
  } catch {
    return undefined;
  }
}

async function loadWorkerMain(init: LoadInit): Promise<void> {
  const port = parentPort!;
  const post = (m: FromLoad): void => port.postMessage(m);
  const kafka = new Kafka({ clientId: 'statefn-bench-load', brokers: init.brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `statefn-bench-watch-${randomBytes(4).toString('hex')}`, ...CONSUMER });
  const producer = kafka.producer(PRODUCER);
  const random = rng(init.seed + 1);
  let count = 0;
  let expect: number | undefined;
  interface Phase {
    startMs: number;
    measureFromMs: number;
    endMs: number;
    seen: number;
    inWindow: number;
    lastSeenAtMs: number;
    histogram: ReturnType<typeof createHistogram>;
  }
  let phase: Phase | undefined;
  let stopping = false;

  consumer.on(consumer.events.GROUP_JOIN, () => post({ op: 'ready', tid: threadId() }));
  consumer.on(consumer.events.CRASH, (e) => {
    if (!stopping) post({ op: 'error', message: `the watching consumer crashed: ${errorText(e.payload.error)}` });
  });
  const progress = setInterval(() => post({ op: 'progress', count }), 1000);
  progress.unref();

  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [init.outTopic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: ({ batch }: EachBatchPayload) => {
      const now = nowMs();
      count += batch.messages.length;
      const ph = phase;
      if (ph !== undefined) {
        for (const m of batch.messages) {
          const v = m.value;
          if (v === null) continue;
          const colon = v.indexOf(0x3a);
          const ts = Number(v.toString('latin1', 0, colon < 0 ? v.length : colon));
          if (!(ts >= ph.startMs)) continue; // an output of the closed-loop run
          ph.seen++;
          ph.lastSeenAtMs = now;
          if (ts >= ph.measureFromMs) ph.histogram.record(Math.max(1, Math.round((now - ts) * 1000)));
          if (now >= ph.measureFromMs && now <= ph.endMs) ph.inWindow++;
        }
      }
      if (expect !== undefined && count >= expect) {
        expect = undefined;
        post({ op: 'reached', count, atMs: now });
      }
      return Promise.resolve();
    },
  });

  const openLoop = async (o: Extract<ToLoad, { op: 'openLoop' }>): Promise<KafkaLatency> => {
    const total = Math.round((o.ratePerSec * o.durationMs) / 1000);
    // A whole millisecond: every due time (startMs + i / rate) then survives its 3-decimal text form.
    const startMs = Math.ceil(nowMs()) + TICK_MS;
    const ph: Phase = {
      startMs,
      measureFromMs: startMs + o.warmupMs,
      endMs: startMs + o.durationMs,
      seen: 0,
      inWindow: 0,
      lastSeenAtMs: 0,
      histogram: createHistogram(),
    };
    phase = ph;
    let sent = 0;
    let sendError: unknown;
    let lagMax = 0;
    const sends: Promise<unknown>[] = [];
    while (sent < total && sendError === undefined) {
      const now = nowMs();
      const due = Math.min(total, Math.floor(((now - startMs) * o.ratePerSec) / 1000) + 1);
      if (due > sent) {
        const messages: KafkaMessage[] = [];
        for (let i = sent; i < due; i++) {
          const dueAt = startMs + (i * 1000) / o.ratePerSec;
          messages.push({ key: `k${Math.floor(random() * init.keys)}`, value: Buffer.from(dueAt.toFixed(3)) });
        }
        lagMax = Math.max(lagMax, now - (startMs + (sent * 1000) / o.ratePerSec));
        sent = due;
        sends.push(
          producer.send({ topic: init.inTopic, acks: -1, messages }).catch((e: unknown) => {
            sendError = e;
          }),
        );
      }
      await sleep(TICK_MS);
    }
    await Promise.all(sends);
    if (sendError !== undefined) throw new Error(`the open-loop producer failed: ${errorText(sendError)}`);
    const lastDue = startMs + ((total - 1) * 1000) / o.ratePerSec;
    const deadline = Date.now() + o.drainTimeoutMs;
    while (ph.seen < total) {
      if (Date.now() > deadline) {
        throw new Error(
          `only ${ph.seen} of the ${total} open-loop records reached the output topic within ${o.drainTimeoutMs / 1000} s ` +
            `after producing ended`,
        );
      }
      await sleep(20);
    }
    phase = undefined;
    const h = ph.histogram;
    const windowS = (ph.endMs - ph.measureFromMs) / 1000;
    return {
      offeredPerSec: o.ratePerSec,
      durationMs: o.durationMs,
      warmupMs: o.warmupMs,
      produced: total,
      seen: ph.seen,
      count: h.count,
      p50Ms: round(h.percentile(50) / 1000, 3),
      p90Ms: round(h.percentile(90) / 1000, 3),
      p99Ms: round(h.percentile(99) / 1000, 3),
      p999Ms: round(h.percentile(99.9) / 1000, 3),
      maxMs: round(h.max / 1000, 3),
      meanMs: round(h.mean / 1000, 3),
      achievedPerSec: round(ph.inWindow / windowS, 0),
      drainMs: round(Math.max(0, ph.lastSeenAtMs - lastDue), 0),
      producerLagMaxMs: round(lagMax, 1),
    };
  };

  port.on('message', (m: ToLoad) => {
    if (m.op === 'expect') {
      if (count >= m.count) post({ op: 'reached', count, atMs: nowMs() });
      else expect = m.count;
    } else if (m.op === 'openLoop') {
      openLoop(m).then(
        (result) => post({ op: 'latency', result }),
        (e: unknown) => post({ op: 'error', message: errorText(e) }),
      );
    } else if (m.op === 'stop') {
      stopping = true;
      clearInterval(progress);
      void Promise.allSettled([consumer.disconnect(), producer.disconnect()]).then(() => {
        post({ op: 'stopped' });
        port.close();
      });
    }
  });
}

/** The main thread's handle on a load worker. */
class LoadClient {
  count = 0;
  tid: number | undefined;
  private failure: Error | undefined;
  private readyWaiter: (() => void) | undefined;
  private reachedWaiter: ((r: { atMs: number; count: number }) => void) | undefined;
  private latencyWaiter: ((r: KafkaLatency) => void) | undefined;
  private stoppedWaiter: (() => void) | undefined;
  private stopping = false;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: FromLoad) => {
      if (m.op === 'ready') {
        this.tid = m.tid;
        this.readyWaiter?.();
      } else if (m.op === 'progress') this.count = Math.max(this.count, m.count);
      else if (m.op === 'reached') {
        this.count = Math.max(this.count, m.count);
        this.reachedWaiter?.({ atMs: m.atMs, count: m.count });
      } else if (m.op === 'latency') this.latencyWaiter?.(m.result);
      else if (m.op === 'error') this.failure ??= new Error(`load client: ${m.message}`);
      else if (m.op === 'stopped') this.stoppedWaiter?.();
    });
    worker.on('error', (e) => {
      this.failure ??= new Error(`load client worker failed: ${errorText(e)}`, { cause: e });
    });
    worker.on('exit', (code) => {
      if (!this.stopping) this.failure ??= new Error(`load client worker exited (code ${code})`);
      this.stoppedWaiter?.();
    });
  }

  failed(): Error | undefined {
    return this.failure;
  }

  /** Start the worker; resolves once its output consumer has joined its group. */
  static async start(init: Omit<LoadInit, 'kafkaBenchLoad'>): Promise<LoadClient> {
    const data: LoadInit = { kafkaBenchLoad: true, ...init };
    const self = import.meta.url;
    let worker: Worker;
    if (self.endsWith('.ts')) {
      // Under tsx: register its loader in the worker before importing this file.
      const tsxApi = import.meta.resolve('tsx/esm/api');
      const code =
        `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(self)}); })` +
        '.catch((e) => { setImmediate(() => { throw e; }); });';
      worker = new Worker(code, { eval: true, workerData: data, name: 'statefn-kafka-bench-load' });
    } else {
      worker = new Worker(new URL(self), { workerData: data, name: 'statefn-kafka-bench-load' });
    }
    const client = new LoadClient(worker);
    try {
      await bounded(
        new Promise<void>((r) => {
          client.readyWaiter = r;
        }),
        READY_TIMEOUT_MS,
        "the output topic's watching consumer to join its group",
        () => client.failure,
      );
    } catch (e) {
      await client.stop();
      throw e;
    }
    return client;
  }

  /** Resolves with the time (nowMs) when at least `count` outputs were visible, and how many. */
  reached(count: number): Promise<{ atMs: number; count: number }> {
    const p = new Promise<{ atMs: number; count: number }>((r) => {
      this.reachedWaiter = r;
    });
    this.worker.postMessage({ op: 'expect', count } satisfies ToLoad);
    return p;
  }

  openLoop(o: Omit<Extract<ToLoad, { op: 'openLoop' }>, 'op'>): Promise<KafkaLatency> {
    const p = new Promise<KafkaLatency>((r) => {
      this.latencyWaiter = r;
    });
    this.worker.postMessage({ op: 'openLoop', ...o } satisfies ToLoad);
    return p;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const stopped = new Promise<void>((r) => {
      this.stoppedWaiter = r;
    });
    this.worker.postMessage({ op: 'stop' } satisfies ToLoad);
    await Promise.race([stopped, sleep(10_000)]);
    await this.worker.terminate();
  }
}

if (!isMainThread && (workerData as Partial<LoadInit> | null)?.kafkaBenchLoad === true) {
  loadWorkerMain(workerData as LoadInit).catch((e: unknown) =>
    parentPort?.postMessage({ op: 'error', message: errorText(e) } satisfies FromLoad),
  );
}

// ---------------------------------------------------------------------------------------------
// Systems under test

interface Topics {
  brokers: string[];
  inTopic: string;
  outTopic: string;
  group: string;
  txId: string;
}

interface SystemUnderTest {
  /** nowMs() when the system handed over (statefn) or processed (kafkajs) its first input record. */
  firstRecordAtMs(): number | undefined;
  /**
   * Resolves once the work of the closed-loop run is behind it: statefn, a checkpoint begun after
   * this call has completed (the first checkpoints after a burst are large); the kafkajs EOS loop,
   * nothing consumed is waiting for a transaction.
   */
  settled(): Promise<void>;
  failed(): Error | undefined;
  detail(): Record<string, unknown>;
  stop(): Promise<void>;
}

async function startStatefn(semantic: KafkaSemantic, t: Topics): Promise<SystemUnderTest> {
  const { Engine } = await import('../index.js');
  const stateDir = mkdtempSync(join(tmpdir(), 'statefn-kafka-bench-'));
  const logger = benchLogger();
  const params: KafkaCounterParams = {
    brokers: t.brokers.join(','),
    inTopic: t.inTopic,
    outTopic: t.outTopic,
    group: t.group,
    semantic,
    txId: t.txId,
  };
  let engine: Engine;
  try {
    engine = await Engine.start({ module: APP_URL, params }, { stateDir, workers: WORKERS, logger });
  } catch (e) {
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  let failure: Error | undefined;
  engine.failed().catch((e: Error) => {
    failure = e;
  });
  const ingress = engine.app.ingresses[0]!.connector as unknown as BenchKafkaIngress;
  const egress = engine.app.egresses.get('kb/out') as unknown as KafkaEgress;
  let stopped = false;
  return {
    firstRecordAtMs: () => ingress.firstSubmitAtMs,
    settled: async () => {
      const since = Date.now();
      while (!engine.checkpoints.some((f) => f.atMs - f.durationMs >= since)) {
        if (failure !== undefined) throw failure;
        await sleep(50);
      }
    },
    failed: () => failure ?? (logger.errors > 0 ? new Error(`the engine logged ${logger.errors} error(s) (above)`) : undefined),
    detail: () => {
      const s = engine.stats();
      const fl = engine.checkpoints;
      return {
        engine: {
          ingested: s.ingested,
          processed: s.processed,
          egressed: s.egressed,
          failures: s.failures,
          deadLetters: s.deadLetters,
          warnings: logger.warnings,
        },
        checkpoints: {
          // The engine keeps the last 16.
          recent: fl.length,
          durationMsMean: fl.length === 0 ? null : round(fl.reduce((a, f) => a + f.durationMs, 0) / fl.length, 0),
          durationMsMax: Math.max(0, ...fl.map((f) => f.durationMs)),
          writesMax: Math.max(0, ...fl.map((f) => f.writes)),
          durationsMs: fl.map((f) => f.durationMs),
        },
        ingress: { ...ingress.stats },
        egress: { ...egress.stats },
      };
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        // A failed engine tears itself down (its failure is what the run reports).
        if (failure !== undefined) await bounded(engine.tornDown(), STOP_TIMEOUT_MS, 'the failed engine to tear down');
        else await bounded(engine.stop(), STOP_TIMEOUT_MS, 'the engine to stop');
      } finally {
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
}

/** The plain kafkajs consume-produce loop (see the file comment). */
async function startKafkajs(semantic: KafkaSemantic, t: Topics): Promise<SystemUnderTest> {
  const kafka = new Kafka({ clientId: 'statefn-bench-kafkajs-loop', brokers: t.brokers, logLevel: logLevel.NOTHING });
  const consumer: Consumer = kafka.consumer({ groupId: t.group, ...CONSUMER });
  const eos = semantic === 'exactly-once';
  const producer: Producer = kafka.producer(eos ? { ...PRODUCER, transactionalId: t.txId, transactionTimeout: 60_000 } : PRODUCER);
  const counts = new Map<string, number>();
  let first: number | undefined;
  let failure: Error | undefined;
  let stopping = false;
  const stats = {
    consumed: 0,
    produced: 0,
    batches: 0,
    transactions: 0,
    offsetCommits: 0,
    txRecordsMax: 0,
    txMsMax: 0,
    txMsTotal: 0,
    waitsForTx: 0,
  };
  const colon = Buffer.from(':');

  const transform = (key: Buffer | null, value: Buffer | null): KafkaMessage => {
    const id = key === null ? '' : key.toString();
    const n = (counts.get(id) ?? 0) + 1;
    counts.set(id, n);
    return { key: id, value: Buffer.concat([value ?? Buffer.alloc(0), colon, Buffer.from(String(n))]) };
  };

  // Exactly-once: what the next transaction carries.
  let pending: KafkaMessage[] = [];
  const pendingOffsets = new Map<number, string>();
  const BUFFER_MAX = 100_000;
  let txLoop: Promise<void> = Promise.resolve();
  let txBusy = false;

  const commitTransaction = async (): Promise<void> => {
    if (pending.length === 0) return;
    const records = pending;
    const offsets = [...pendingOffsets].map(([partition, offset]) => ({ partition, offset }));
    pending = [];
    pendingOffsets.clear();
    const t0 = Date.now();
    const tx = await producer.transaction();
    try {
      for (let i = 0; i < records.length; i += TX_CHUNK) {
        await tx.sendBatch({ acks: -1, topicMessages: [{ topic: t.outTopic, messages: records.slice(i, i + TX_CHUNK) }] });
      }
      await tx.sendOffsets({ consumerGroupId: t.group, topics: [{ topic: t.inTopic, partitions: offsets }] });
      await tx.commit();
    } catch (e) {
      if (tx.isActive()) await tx.abort().catch(() => {});
      throw e;
    }
    const ms = Date.now() - t0;
    stats.transactions++;
    stats.produced += records.length;
    stats.txRecordsMax = Math.max(stats.txRecordsMax, records.length);
    stats.txMsMax = Math.max(stats.txMsMax, ms);
    stats.txMsTotal += ms;
  };

  consumer.on(consumer.events.CRASH, (e) => {
    if (!stopping) failure ??= new Error(`the kafkajs loop's consumer crashed: ${errorText(e.payload.error)}`);
  });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [t.inTopic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: 1,
    eachBatch: async (payload: EachBatchPayload) => {
      const { batch } = payload;
      if (batch.messages.length === 0) return;
      first ??= nowMs();
      stats.batches++;
      stats.consumed += batch.messages.length;
      const next = String(Number(batch.lastOffset()) + 1);
      try {
        if (eos) {
          for (const m of batch.messages) pending.push(transform(m.key, m.value));
          pendingOffsets.set(batch.partition, next);
          // Bound what waits for the next transaction.
          while (pending.length >= BUFFER_MAX && payload.isRunning() && !stopping && failure === undefined) {
            stats.waitsForTx++;
            await sleep(10);
            await payload.heartbeat();
          }
        } else {
          const out = batch.messages.map((m) => transform(m.key, m.value));
          for (let i = 0; i < out.length; i += ALO_CHUNK) {
            await producer.sendBatch({ acks: -1, topicMessages: [{ topic: t.outTopic, messages: out.slice(i, i + ALO_CHUNK) }] });
          }
          stats.produced += out.length;
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
          stats.offsetCommits++;
        }
      } catch (e) {
        failure ??= new Error(`the kafkajs loop failed: ${errorText(e)}`, { cause: e });
        throw e;
      }
    },
  });
  if (eos) {
    // One transaction per checkpoint interval, the next one starting when the last is done.
    txLoop = (async () => {
      let next = Date.now() + CHECKPOINT_INTERVAL_MS;
      while (!stopping && failure === undefined) {
        await sleep(Math.max(0, next - Date.now()));
        next += CHECKPOINT_INTERVAL_MS;
        if (stopping) break;
        txBusy = true;
        try {
          await commitTransaction();
        } catch (e) {
          failure ??= new Error(`the kafkajs loop's transaction failed: ${errorText(e)}`, { cause: e });
        } finally {
          txBusy = false;
        }
        if (Date.now() > next) next = Date.now();
      }
    })();
  }
  return {
    firstRecordAtMs: () => first,
    settled: async () => {
      while (pending.length > 0 || txBusy) {
        if (failure !== undefined) throw failure;
        await sleep(50);
      }
    },
    failed: () => failure,
    detail: () => ({
      loop: { ...stats, txMsMean: stats.transactions === 0 ? null : round(stats.txMsTotal / stats.transactions, 0), keys: counts.size },
    }),
    stop: async () => {
      stopping = true;
      await bounded(txLoop, STOP_TIMEOUT_MS, "the kafkajs loop's last transaction");
      await bounded(Promise.allSettled([consumer.disconnect(), producer.disconnect()]), STOP_TIMEOUT_MS, 'the kafkajs loop to disconnect');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Running

/** Fill `topic` with `n` records: keys uniform over KEYS ids (seeded), value the produce time. */
async function preload(brokers: string[], topic: string, n: number): Promise<number> {
  const t0 = nowMs();
  const kafka = new Kafka({ clientId: 'statefn-bench-preload', brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer(PRODUCER);
  await producer.connect();
  try {
    const random = rng(SEED);
    for (let i = 0; i < n; i += PRELOAD_CHUNK) {
      const messages: KafkaMessage[] = [];
      const value = Buffer.from(nowMs().toFixed(3));
      for (let j = i; j < Math.min(n, i + PRELOAD_CHUNK); j++) messages.push({ key: `k${Math.floor(random() * KEYS)}`, value });
      await producer.send({ topic, acks: -1, messages });
    }
  } finally {
    await producer.disconnect();
  }
  return nowMs() - t0;
}

async function adminDo<T>(brokers: string[], f: (admin: ReturnType<Kafka['admin']>) => Promise<T>): Promise<T> {
  const admin = new Kafka({ clientId: 'statefn-bench-admin', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return await f(admin);
  } finally {
    await admin.disconnect();
  }
}

async function runSystem(
  name: `${KafkaSystem}.${KafkaSemantic}`,
  brokers: string[],
  p: Plan,
  runId: string,
  brokerPid: number | undefined,
): Promise<KafkaSystemResult> {
  const [system, semantic] = name.split('.') as [KafkaSystem, KafkaSemantic];
  const label = `${system}-${semantic}-${runId}`;
  const topics: Topics = {
    brokers,
    inTopic: `statefn-bench-in-${label}`,
    outTopic: `statefn-bench-out-${label}`,
    group: `statefn-bench-${label}`,
    txId: `statefn-bench-tx-${label}`,
  };
  const { createTopics } = await import('../test/fixtures/kafka_io.js');
  await bounded(
    createTopics(brokers, [
      { topic: topics.inTopic, numPartitions: PARTITIONS },
      { topic: topics.outTopic, numPartitions: PARTITIONS },
    ]),
    START_TIMEOUT_MS,
    `topics ${topics.inTopic} and ${topics.outTopic} to be created`,
  );
  let sut: SystemUnderTest | undefined;
  let load: LoadClient | undefined;
  try {
    const preloadMs = await bounded(
      preload(brokers, topics.inTopic, p.records),
      120_000,
      `${p.records} records to be produced to ${topics.inTopic}`,
    );
    load = await LoadClient.start({ brokers, inTopic: topics.inTopic, outTopic: topics.outTopic, keys: KEYS, seed: SEED });
    const l = load;

    // 1. Closed loop: everything is in the input topic; start and time until all outputs are visible.
    const reached = l.reached(p.records);
    const startCall = nowMs();
    const starting = system === 'statefn' ? startStatefn(semantic, topics) : startKafkajs(semantic, topics);
    try {
      sut = await bounded(starting, START_TIMEOUT_MS, `${name} to start`, () => l.failed());
    } catch (e) {
      // Should it start after all, stop it.
      starting
        .then(
          (late) => late.stop(),
          () => {},
        )
        .catch(() => {});
      throw e;
    }
    const s = sut;
    const cpu0 = cpuMark(brokerPid);
    const timeoutMs = Math.max(60_000, (p.records / MIN_RATE_PER_SEC) * 1000);
    const done = await bounded(
      reached,
      timeoutMs,
      `${name}: ${p.records} outputs visible to a read_committed consumer`,
      () => s.failed() ?? l.failed(),
      () => `${l.count} seen so far`,
    );
    const cpu1 = cpuMark(brokerPid);
    const first = s.firstRecordAtMs();
    if (first === undefined) throw new Error(`kafka bench: ${name}: all outputs arrived but no first input record was noted`);
    const elapsedMs = done.atMs - first;
    const tpDetail = s.detail();
    const recordsPerSec = (p.records * 1000) / elapsedMs;
    console.log(
      `  ${name.padEnd(22)} throughput ${round(recordsPerSec / 1000, 1)} K rec/s (${p.records} in ${round(elapsedMs, 0)} ms; ` +
        `first record ${round(first - startCall, 0)} ms after start)`,
    );

    // 2. Open loop on the same running system, once the closed-loop run's work is behind it.
    const settleStart = nowMs();
    await bounded(s.settled(), SETTLE_TIMEOUT_MS, `${name} to settle after the closed-loop run`, () => s.failed() ?? l.failed());
    const settleMs = nowMs() - settleStart;
    const loadAverage = os.loadavg().map((x) => round(x));
    const latency = await bounded(
      l.openLoop({ ratePerSec: p.latencyRatePerSec, durationMs: p.latencyMs, warmupMs: p.warmupMs, drainTimeoutMs: DRAIN_TIMEOUT_MS }),
      p.latencyMs + DRAIN_TIMEOUT_MS + 15_000,
      `${name}: the open-loop latency run`,
      () => s.failed() ?? l.failed(),
    );
    console.log(
      `  ${''.padEnd(22)} latency at ${p.latencyRatePerSec}/s: p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms, ` +
        `p99.9 ${latency.p999Ms} ms, max ${latency.maxMs} ms ` +
        `(achieved ${latency.achievedPerSec}/s, ${latency.count} measured, producer lag max ${latency.producerLagMaxMs} ms)`,
    );
    const result: KafkaSystemResult = {
      name,
      system,
      semantic,
      guarantee: GUARANTEE[name],
      durableState: system === 'statefn',
      throughput: {
        records: p.records,
        recordsPerSec: round(recordsPerSec, 0),
        elapsedMs: round(elapsedMs, 0),
        startToFirstRecordMs: round(first - startCall, 0),
        preloadMs: round(preloadMs, 0),
        outputsSeen: done.count,
        cpu: cpuBetween(cpu0, cpu1, l.tid, p.records),
      },
      latency,
      detail: {
        afterThroughput: tpDetail,
        afterLatency: s.detail(),
        settleMs: round(settleMs, 0),
        // 1, 5 and 15 minute load averages before the latency run: anything above ~2 on 2 cores is other work competing.
        loadAverage,
        topics: { in: topics.inTopic, out: topics.outTopic },
      },
    };
    return result;
  } finally {
    const closing: Promise<unknown>[] = [];
    if (sut !== undefined)
      closing.push(sut.stop().catch((e: unknown) => console.error(`kafka bench: ${name}: stopping failed: ${errorText(e)}`)));
    if (load !== undefined) closing.push(load.stop().catch(() => {}));
    await Promise.all(closing);
    // Best effort: leave nothing behind on a shared broker.
    const created = [topics.inTopic, topics.outTopic, ...(name === 'statefn.exactly-once' ? [`${topics.txId}.statefn-epochs`] : [])];
    await adminDo(brokers, (a) => a.deleteTopics({ topics: created, timeout: 10_000 })).catch(() => {});
  }
}

export const KAFKA_SYSTEMS: `${KafkaSystem}.${KafkaSemantic}`[] = [
  'statefn.exactly-once',
  'statefn.at-least-once',
  'kafkajs.at-least-once',
  'kafkajs.exactly-once',
];

export async function runKafka(opts: KafkaOptions): Promise<KafkaResult> {
  const t0 = nowMs();
  const p = plan(opts.quick);
  if (opts.records !== undefined) p.records = opts.records;
  const systems = opts.systems ?? KAFKA_SYSTEMS;
  const env = process.env.STATEFN_KAFKA_BROKERS?.trim();
  let stopBroker: (() => Promise<void>) | undefined;
  let broker: KafkaResult['broker'];
  let brokerPid: number | undefined;
  if (env !== undefined && env !== '') {
    broker = { source: 'STATEFN_KAFKA_BROKERS', bootstrap: env };
  } else {
    const { startKafkaBroker } = await import('../scripts/kafka_broker.js');
    const b0 = nowMs();
    console.log('\nkafka: starting a local KRaft broker (scripts/kafka_broker.ts; set STATEFN_KAFKA_BROKERS to use another) ...');
    const b = await startKafkaBroker();
    // Its log dir is a fresh temp dir (with every topic's data): remove it with the broker.
    stopBroker = async () => {
      await b.stop();
      rmSync(b.logDir, { recursive: true, force: true });
    };
    brokerPid = findBrokerPid(b.logDir);
    broker = { source: 'started', bootstrap: b.bootstrap, version: b.version, startMs: round(nowMs() - b0, 0) };
  }
  const brokers = broker.bootstrap
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  try {
    const brokerVersion = broker.version === undefined ? '' : ` (Kafka ${broker.version}, started in ${broker.startMs} ms)`;
    console.log(
      `kafka: broker ${broker.bootstrap}${brokerVersion}; ` +
        `${p.records} records closed loop, then ${p.latencyRatePerSec}/s open loop for ${p.latencyMs / 1000} s ` +
        `(first ${p.warmupMs / 1000} s dropped); ` +
        `keys uniform over ${KEYS}; topics of ${PARTITIONS} partitions`,
    );
    const results: (KafkaSystemResult | KafkaSystemFailure)[] = [];
    for (const name of systems) {
      try {
        results.push(await runSystem(name, brokers, p, runId, brokerPid));
      } catch (e) {
        // Loud, but the other systems still run: their figures are worth having.
        const [system, semantic] = name.split('.') as [KafkaSystem, KafkaSemantic];
        const error = e instanceof Error ? e.message : String(e);
        console.error(`  ${name.padEnd(22)} FAILED: ${error}`);
        results.push({ name, system, semantic, error });
      }
    }
    const ok = results.filter((r): r is KafkaSystemResult => !('error' in r));
    for (const r of ok) {
      if (r.system !== 'statefn') continue;
      const base = ok.find((x) => x.system === 'kafkajs' && x.semantic === r.semantic);
      if (base !== undefined) r.ratioToKafkajs = round(r.throughput.recordsPerSec / base.throughput.recordsPerSec, 3);
    }
    return {
      broker,
      settings: {
        records: p.records,
        keys: KEYS,
        partitions: PARTITIONS,
        statefnWorkers: WORKERS,
        checkpointIntervalMs: CHECKPOINT_INTERVAL_MS,
        latencyRatePerSec: p.latencyRatePerSec,
        latencyMs: p.latencyMs,
        warmupMs: p.warmupMs,
        consumer: { ...CONSUMER, partitionsConsumedConcurrently: 1 },
        producer: {
          idempotent: true,
          maxInFlightRequests: 1,
          partitioner: 'default (murmur2)',
          acks: -1,
          requestRecordsMax: { atLeastOnce: ALO_CHUNK, transaction: TX_CHUNK },
        },
      },
      systems: results,
      failed: results.filter((r) => 'error' in r).map((r) => r.name),
      notes: [
        'kafkajs.* keep their counts in memory only (lost on a crash); statefn keeps them durable (LMDB, checkpoints uploaded ' +
          'to the local snapshot store).',
        'throughput: N pre-produced records; first input record handed over -> last output visible to a read_committed consumer.',
        'latency: open loop; output receive time (read_committed) - the time the input was due to be produced; the first ' +
          'second is dropped.',
        'exactly-once latency includes waiting for the transaction: statefn commits one per checkpoint (every 1 s, after the ' +
          'checkpoint is durable), the kafkajs loop one per second.',
      ],
      elapsedMs: round(nowMs() - t0, 0),
    };
  } finally {
    if (stopBroker !== undefined)
      await stopBroker().catch((e: unknown) => console.error(`kafka bench: stopping the broker failed: ${errorText(e)}`));
  }
}

// ---- standalone ----

async function main(argv: string[]): Promise<void> {
  let quick = false;
  let systems: KafkaOptions['systems'];
  let records: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--records') {
      records = Number(argv[++i]);
      if (!Number.isInteger(records) || records < 1) throw new Error('--records: expected a positive integer');
    } else if (a === '--systems') {
      const v = (argv[++i] ?? '').split(',').filter((s) => s !== '');
      for (const s of v)
        if (!(KAFKA_SYSTEMS as string[]).includes(s)) throw new Error(`--systems: unknown system ${s}; known: ${KAFKA_SYSTEMS.join(', ')}`);
      systems = v as KafkaOptions['systems'];
    } else
      throw new Error(
        `unknown argument ${a}; usage: node --import tsx bench/kafka_bench.ts [--quick] [--records n] ` +
          `[--systems ${KAFKA_SYSTEMS.join(',')}]`,
      );
  }
  const r = await runKafka({ quick, ...(systems === undefined ? {} : { systems }), ...(records === undefined ? {} : { records }) });
  console.log(JSON.stringify(r, null, 2));
  if (r.failed.length > 0) process.exitCode = 1;
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exitCode = 1;
  });
}
