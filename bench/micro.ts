/**
 * Micro benchmarks of the parts every message crosses: the ring (one thread, and main -> worker),
 * the frame codec, and the LMDB operations a worker's state store does. They give the "limit"
 * figures the macro benchmark prints beside engine throughput.
 *
 * tinybench runs the single-thread tasks; each task iteration does a whole batch (1024 frames,
 * one 256-message frame, 1000 gets, one transaction of puts) so timer overhead is negligible and
 * the rate is `batch / mean iteration time`. Two figures are plain timed runs instead: the
 * cross-thread ring (tinybench cannot time two threads) and the one-shot sorted LMDB load that
 * fills the store the other LMDB tasks use.
 *
 * Sizes: ring frames of 64 B and 512 B are payload bytes (each takes 4 more for its length word);
 * LMDB keys are 40 random bytes, values 100 bytes, in a store of 1 M entries (20 K with quick).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { open, type Database } from 'lmdb';
import { Bench, type Task } from 'tinybench';
import { Doorbells, allocateDoorbells } from '../shared/doorbell.js';
import { FrameKind, MESSAGE_FIELDS, createCodec, decodeFrame, type Envelope } from '../shared/frames.js';
import { RingConsumer, RingProducer, allocateRing, frameFootprint } from '../shared/ring_buffer.js';
import type { Payload } from '../api/types.js';
import type { RingConsumerData, RingConsumerReport } from './fixtures/ring_consumer.js';

export interface MicroResult {
  /** Stable name, e.g. `ring.crossThread.64B`. */
  name: string;
  opsPerSec: number;
  /** What one op is: `frames/s`, `messages/s`, `ops/s`. */
  unit: string;
  detail?: Record<string, unknown>;
}

export interface MicroOptions {
  /** Run each measurement briefly (smoke runs, CI). */
  quick?: boolean;
}

const MiB = 1024 * 1024;
const RING_BYTES = 1 * MiB;
const RING_BATCH_FRAMES = 1024;
const CODEC_MESSAGES = 256;
const LMDB_KEY_BYTES = 40;
const LMDB_VALUE_BYTES = 100;
const LMDB_GETS_PER_ITERATION = 1000;
const LMDB_PUTS_PER_TXN = 10_000;

interface Timing {
  benchTimeMs: number;
  warmupTimeMs: number;
  crossThreadMs: number;
  lmdbKeys: number;
}

function timing(quick: boolean): Timing {
  return quick
    ? { benchTimeMs: 100, warmupTimeMs: 20, crossThreadMs: 200, lmdbKeys: 20_000 }
    : { benchTimeMs: 1000, warmupTimeMs: 250, crossThreadMs: 1500, lmdbKeys: 1_000_000 };
}

/** Rate of one tinybench task where each iteration did `opsPerIteration` ops. */
function rateOf(task: Task, opsPerIteration: number): { opsPerSec: number; detail: Record<string, unknown> } {
  const r = task.result;
  if (r.state === 'errored') throw r.error;
  if (r.state !== 'completed') throw new Error(`benchmark ${task.name} did not complete (${r.state})`);
  return {
    opsPerSec: (opsPerIteration * 1000) / r.period,
    detail: {
      iterations: r.latency.samplesCount,
      opsPerIteration,
      meanIterationMs: round(r.period, 4),
      p99IterationMs: round(r.latency.p99, 4),
      rmePct: round(r.latency.rme, 2),
    },
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Deterministic pseudo-random bytes (xorshift32) so runs are comparable. */
function fillRandom(out: Uint8Array, seed: number): number {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return s >>> 0;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

// ---- ring, one thread ----

function addRingTasks(bench: Bench, out: Map<string, () => MicroResult>): void {
  for (const size of [64, 512]) {
    const buffer = allocateRing(RING_BYTES);
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    const payload = new Uint8Array(size).fill(7);
    let sink = 0;
    const onFrame = (p: Uint8Array): void => {
      sink += p[0]!; // touch the frame as a decoder would
    };
    const name = `ring.pushDrain.${size}B`;
    bench.add(name, () => {
      for (let i = 0; i < RING_BATCH_FRAMES; i++) {
        if (!producer.tryPush(payload)) throw new Error('ring unexpectedly full');
      }
      if (consumer.drain(onFrame, RING_BATCH_FRAMES) !== RING_BATCH_FRAMES) throw new Error('lost frames');
    });
    out.set(name, () => {
      const { opsPerSec, detail } = rateOf(bench.getTask(name)!, RING_BATCH_FRAMES);
      return {
        name,
        opsPerSec,
        unit: 'frames/s',
        detail: {
          ...detail,
          ringBytes: RING_BYTES,
          payloadBytes: size,
          mbPerSec: round((opsPerSec * frameFootprint(size)) / MiB, 1),
          sink: sink > 0,
        },
      };
    });
  }
}

// ---- frame codec ----

function sampleEnvelopes(n: number): Envelope[] {
  const out: Envelope[] = [];
  const bytes = new Uint8Array(24);
  for (let i = 0; i < n; i++) {
    // A realistic mix: built-in values travel natively, custom types as bytes; half the
    // messages come from a function (caller set), half from an ingress (no caller).
    const fromFunction = i % 2 === 1;
    let payload: Payload;
    let typename: string;
    if (i % 4 === 3) {
      fillRandom(bytes, i + 1);
      payload = bytes.slice();
      typename = 'com.example/OrderPlaced';
    } else if (i % 4 === 1) {
      payload = `item-${i}`;
      typename = 'io.statefun.types/string';
    } else {
      payload = i * 37;
      typename = 'io.statefun.types/long';
    }
    out.push({
      targetType: 'com.example/counter',
      targetId: `user-${(i * 7919) % 100_000}`,
      callerType: fromFunction ? 'com.example/gateway' : null,
      callerId: fromFunction ? `session-${i}` : null,
      typename,
      payload,
    });
  }
  return out;
}

/** Build a MESSAGES frame as the runtime does: [1, then 6 flat fields per message]. */
function flatten(envelopes: readonly Envelope[]): unknown[] {
  const frame: unknown[] = new Array<unknown>(1 + envelopes.length * MESSAGE_FIELDS);
  frame[0] = FrameKind.MESSAGES;
  let k = 1;
  for (const e of envelopes) {
    frame[k++] = e.targetType;
    frame[k++] = e.targetId;
    frame[k++] = e.callerType;
    frame[k++] = e.callerId;
    frame[k++] = e.typename;
    frame[k++] = e.payload;
  }
  return frame;
}

function addCodecTasks(bench: Bench, out: Map<string, () => MicroResult>): void {
  const envelopes = sampleEnvelopes(CODEC_MESSAGES);
  const encoder = createCodec();
  const decoder = createCodec();
  const encoded = Uint8Array.from(encoder.pack(flatten(envelopes)));
  // Decode straight from shared memory, as a consumer does from its ring.
  const shared = new Uint8Array(new SharedArrayBuffer(encoded.length));
  shared.set(encoded);
  const check = decodeFrame(decoder, shared, 'bench');
  if (check.length !== 1 + CODEC_MESSAGES * MESSAGE_FIELDS || check[0] !== FrameKind.MESSAGES) {
    throw new Error('codec benchmark frame does not round-trip');
  }
  let sink = 0;

  const encName = 'codec.encode.messages256';
  bench.add(encName, () => {
    sink += encoder.pack(flatten(envelopes)).length;
  });
  const decName = 'codec.decode.messages256';
  bench.add(decName, () => {
    const f = decodeFrame(decoder, shared, 'bench');
    // Materialise the envelopes as the worker's dispatcher does.
    for (let k = 1; k < f.length; k += MESSAGE_FIELDS) {
      const e: Envelope = {
        targetType: f[k] as string,
        targetId: f[k + 1] as string,
        callerType: f[k + 2] as string | null,
        callerId: f[k + 3] as string | null,
        typename: f[k + 4] as string,
        payload: f[k + 5] as Payload,
      };
      if (e.targetId.length > 0) sink++;
    }
  });
  const detail = {
    messagesPerFrame: CODEC_MESSAGES,
    frameBytes: encoded.length,
    bytesPerMessage: round(encoded.length / CODEC_MESSAGES, 1),
    mix: '1/2 long, 1/4 string, 1/4 24-byte custom; 1/2 with caller',
  };
  out.set(encName, () => {
    const r = rateOf(bench.getTask(encName)!, CODEC_MESSAGES);
    return {
      name: encName,
      opsPerSec: r.opsPerSec,
      unit: 'messages/s',
      detail: { ...r.detail, ...detail, what: 'flatten envelopes + pack', sink: sink > 0 },
    };
  });
  out.set(decName, () => {
    const r = rateOf(bench.getTask(decName)!, CODEC_MESSAGES);
    return {
      name: decName,
      opsPerSec: r.opsPerSec,
      unit: 'messages/s',
      detail: { ...r.detail, ...detail, what: 'unpack from shared memory + materialise envelopes' },
    };
  });
}

// ---- LMDB ----

interface LmdbFixture {
  dirs: string[];
  dbs: Database<Buffer, Buffer>[];
}

function openDb(fixture: LmdbFixture): Database<Buffer, Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'statefn-bench-lmdb-'));
  fixture.dirs.push(dir);
  const db = open<Buffer, Buffer>({ path: dir, keyEncoding: 'binary', encoding: 'binary', noSync: true });
  fixture.dbs.push(db);
  return db;
}

function randomKeys(n: number, seed: number): Buffer[] {
  const all = Buffer.alloc(n * LMDB_KEY_BYTES);
  fillRandom(all, seed);
  const keys: Buffer[] = [];
  for (let i = 0; i < n; i++) keys.push(all.subarray(i * LMDB_KEY_BYTES, (i + 1) * LMDB_KEY_BYTES));
  return keys;
}

function addLmdbTasks(bench: Bench, out: Map<string, () => MicroResult>, t: Timing, fixture: LmdbFixture): void {
  const value = Buffer.alloc(LMDB_VALUE_BYTES);
  fillRandom(value, 99);

  // Random gets over a store of `lmdbKeys` entries, filled once in key order. The fill itself is
  // timed too: it is the best case of writing state (one transaction, sorted keys, empty store).
  const getDb = openDb(fixture);
  const keys = randomKeys(t.lmdbKeys, 1);
  const sorted = keys.slice().sort(compareBytes);
  const loadStart = performance.now();
  getDb.transactionSync(() => {
    for (const k of sorted) getDb.putSync(k, value);
  });
  const loadMs = performance.now() - loadStart;
  const loadName = 'lmdb.put.sortedLoad';
  out.set(loadName, () => ({
    name: loadName,
    opsPerSec: (t.lmdbKeys * 1000) / loadMs,
    unit: 'ops/s',
    detail: {
      entries: t.lmdbKeys,
      elapsedMs: round(loadMs, 1),
      oneShot: true,
      what: 'all keys sorted, one transaction, empty store',
      keyBytes: LMDB_KEY_BYTES,
      valueBytes: LMDB_VALUE_BYTES,
      noSync: true,
    },
  }));
  const order = new Uint32Array(1 << 16);
  fillRandom(new Uint8Array(order.buffer), 7);
  for (let i = 0; i < order.length; i++) order[i] = order[i]! % keys.length;
  let cursor = 0;
  let found = 0;
  const getName = 'lmdb.getBinaryFast.random';
  bench.add(getName, () => {
    for (let i = 0; i < LMDB_GETS_PER_ITERATION; i++) {
      const v = getDb.getBinaryFast(keys[order[cursor++ & 0xffff]!]!);
      if (v !== undefined && v.length === LMDB_VALUE_BYTES) found++;
    }
  });
  out.set(getName, () => {
    const r = rateOf(bench.getTask(getName)!, LMDB_GETS_PER_ITERATION);
    if (found === 0) throw new Error('lmdb gets found nothing');
    return {
      name: getName,
      opsPerSec: r.opsPerSec,
      unit: 'ops/s',
      detail: { ...r.detail, entries: t.lmdbKeys, keyBytes: LMDB_KEY_BYTES, valueBytes: LMDB_VALUE_BYTES },
    };
  });

  // Sorted puts of random keys, LMDB_PUTS_PER_TXN per transaction, into a store that already
  // holds `lmdbKeys` entries (how a worker writes its dirty state at a checkpoint). Batches are new
  // keys the first time round and overwrites after that.
  const putDb = openDb(fixture);
  putDb.transactionSync(() => {
    for (const k of sorted) putDb.putSync(k, value);
  });
  const batches: Buffer[][] = [];
  const batchCount = 32;
  for (let b = 0; b < batchCount; b++) batches.push(randomKeys(LMDB_PUTS_PER_TXN, 1000 + b).sort(compareBytes));
  let batch = 0;
  const putName = 'lmdb.put.sortedTxn';
  bench.add(putName, () => {
    const keysOfTxn = batches[batch++ % batches.length]!;
    putDb.transactionSync(() => {
      for (const k of keysOfTxn) putDb.putSync(k, value);
    });
  });
  out.set(putName, () => {
    const r = rateOf(bench.getTask(putName)!, LMDB_PUTS_PER_TXN);
    return {
      name: putName,
      opsPerSec: r.opsPerSec,
      unit: 'ops/s',
      detail: {
        ...r.detail,
        putsPerTxn: LMDB_PUTS_PER_TXN,
        entries: t.lmdbKeys,
        batchKeys: batchCount * LMDB_PUTS_PER_TXN,
        keyBytes: LMDB_KEY_BYTES,
        valueBytes: LMDB_VALUE_BYTES,
        noSync: true,
      },
    };
  });
}

// ---- ring, main -> worker ----

/**
 * Run a TypeScript worker. On Node 20, `execArgv: ['--import', 'tsx']` does not apply tsx in
 * worker threads (tsx registers its hooks on the main thread only there), so load the file
 * through tsx's `tsImport` API from a small eval'd bootstrap. Works under `node --import tsx`
 * and under vitest alike.
 */
function spawnTsWorker(file: URL, workerData: unknown): Worker {
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const href = JSON.stringify(file.href);
  return new Worker(`import(${api}).then((m) => m.tsImport(${href}, ${href}))`, { eval: true, workerData });
}

function nextMessage<T>(w: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: T): void => {
      w.off('error', onError);
      w.off('exit', onExit);
      resolve(m);
    };
    const onError = (e: Error): void => {
      w.off('message', onMessage);
      w.off('exit', onExit);
      reject(e);
    };
    const onExit = (code: number): void => {
      w.off('message', onMessage);
      w.off('error', onError);
      reject(new Error(`ring consumer exited with code ${code}`));
    };
    w.once('message', onMessage);
    w.once('error', onError);
    w.once('exit', onExit);
  });
}

/**
 * Main pushes `frameBytes`-byte frames into a 1 MiB ring for `durationMs`; one worker drains
 * them. Main never blocks: when the ring is full it waits with Atomics.waitAsync for the
 * consumer's doorbell. The rate is frames consumed / time until the consumer has drained the
 * last one.
 */
async function crossThread(frameBytes: number, durationMs: number): Promise<MicroResult> {
  const MAIN = 0;
  const CONSUMER = 1;
  const ring = allocateRing(RING_BYTES);
  const doorbells = allocateDoorbells(2);
  const control = new SharedArrayBuffer(64);
  const data: RingConsumerData = {
    ring,
    doorbells,
    control,
    me: CONSUMER,
    producer: MAIN,
    frameBytes,
    batchFrames: 4096,
  };
  const worker = spawnTsWorker(new URL('./fixtures/ring_consumer.ts', import.meta.url), data);
  try {
    await nextMessage<string>(worker); // 'ready'
    const report = nextMessage<RingConsumerReport>(worker);
    const producer = new RingProducer(ring);
    const bells = new Doorbells(doorbells);
    const payload = new Uint8Array(frameBytes).fill(0x5a);
    let sent = 0;
    let waits = 0;
    const t0 = performance.now();
    const until = t0 + durationMs;
    for (;;) {
      let pushed = 0;
      while (pushed < RING_BATCH_FRAMES && producer.tryPush(payload)) pushed++;
      sent += pushed;
      bells.ring(CONSUMER);
      if (performance.now() >= until) break;
      if (pushed < RING_BATCH_FRAMES) {
        // Full: wait (asynchronously) for the consumer to release space.
        const seq = bells.prepareWait(MAIN);
        if (!producer.hasRoomFor(frameBytes)) {
          waits++;
          const woken = bells.waitAsync(MAIN, seq, 50);
          if (woken !== undefined) await woken;
        }
        bells.awake(MAIN);
      }
    }
    Atomics.store(new Int32Array(control), 0 /* STOP */, 1);
    bells.ringAlways(CONSUMER);
    const r = await report;
    const elapsedMs = performance.now() - t0;
    if (r.frames !== sent || r.badFrames !== 0) {
      throw new Error(`cross-thread ring lost or damaged frames: sent ${sent}, consumed ${r.frames}, bad ${r.badFrames}`);
    }
    const opsPerSec = (sent * 1000) / elapsedMs;
    return {
      name: `ring.crossThread.${frameBytes}B`,
      opsPerSec,
      unit: 'frames/s',
      detail: {
        frames: sent,
        elapsedMs: round(elapsedMs, 1),
        ringBytes: RING_BYTES,
        payloadBytes: frameBytes,
        mbPerSec: round((opsPerSec * frameFootprint(frameBytes)) / MiB, 1),
        producerWaits: waits,
        consumerSleeps: r.sleeps,
      },
    };
  } finally {
    await worker.terminate();
  }
}

// ---- entry ----

export async function runMicro(opts: MicroOptions = {}): Promise<MicroResult[]> {
  const t = timing(opts.quick === true);
  const bench = new Bench({ name: 'statefn micro', time: t.benchTimeMs, warmupTime: t.warmupTimeMs, throws: true });
  const collect = new Map<string, () => MicroResult>();
  const fixture: LmdbFixture = { dirs: [], dbs: [] };
  try {
    addRingTasks(bench, collect);
    addCodecTasks(bench, collect);
    addLmdbTasks(bench, collect, t, fixture);
    await bench.run();
    const results = [...collect.values()].map((f) => f());
    for (const size of [64, 512]) results.push(await crossThread(size, t.crossThreadMs));
    return results;
  } finally {
    for (const db of fixture.dbs) await db.close();
    for (const dir of fixture.dirs) rmSync(dir, { recursive: true, force: true });
  }
}
