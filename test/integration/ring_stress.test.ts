// Proves the SPSC ring and the Doorbells sleep/wake protocol move millions of seeded random-size
// frames between real threads (worker<->worker, main->worker, worker->main) with every byte intact,
// in order, and without a lost wake-up.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Doorbells, allocateDoorbells } from '../../shared/doorbell.js';
import { RING_HEADER_BYTES, RingConsumer, RingProducer, allocateRing } from '../../shared/ring_buffer.js';
import type { StressWorkerData } from '../fixtures/ring_stress_worker.js';
import { checkFrame, fillFrame, foldChecksum, frameLength, type FrameError, type StressReport } from '../fixtures/ring_stress_pattern.js';

const SEED = Number(process.env.RING_STRESS_SEED ?? 0x5eed1234) >>> 0;
/** Liveness guard: a lost wake-up hangs both sides; this turns the hang into a failure with a diagnosis. */
const LIVENESS_MS = 90_000;
/** Each test's own timeout: above the liveness guard so the guard's diagnosis is what fails. */
const TEST_TIMEOUT_MS = LIVENESS_MS + 20_000;
const MAIN = 0;
const WORKER_A = 1;
const WORKER_B = 2;

/**
 * Run a TypeScript file in a worker thread. On Node 20 `execArgv: ['--import', 'tsx']` does NOT
 * work for workers: tsx only registers its loader hooks on the main thread there (it checks
 * `isMainThread` unless Node has `isInternalThread`, i.e. >= 22.22/24.11), so the .ts entry fails
 * with ERR_UNKNOWN_FILE_EXTENSION, under vitest and plain node alike. A tiny eval'd bootstrap that
 * loads the file through tsx's `tsImport` API works everywhere.
 */
const TSX_API = import.meta.resolve('tsx/esm/api');
function spawnTsWorker(file: URL, workerData: unknown): Worker {
  const href = JSON.stringify(file.href);
  return new Worker(`import(${JSON.stringify(TSX_API)}).then((api) => api.tsImport(${href}, ${href}))`, {
    eval: true,
    workerData,
  });
}

const WORKER_FILE = new URL('../fixtures/ring_stress_worker.ts', import.meta.url);

function reportOf(w: Worker): Promise<StressReport> {
  return new Promise((resolve, reject) => {
    w.once('message', (m: StressReport) => resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`worker exited with code ${code} before reporting`)));
  });
}

interface Run {
  ring: SharedArrayBuffer;
  doorbells: SharedArrayBuffer;
  frames: number;
  aborted: boolean;
}

/** The main thread as producer: never blocks; waits for room with Atomics.waitAsync. */
async function produceOnMain(run: Run, me: number, peer: number): Promise<StressReport> {
  const ring = new RingProducer(run.ring);
  const bells = new Doorbells(run.doorbells);
  const scratch = new Uint8Array(ring.maxPayload);
  let checksum = 0;
  let bytes = 0;
  let sleeps = 0;
  for (let i = 0; i < run.frames && !run.aborted; i++) {
    const len = frameLength(SEED, i, ring.maxPayload);
    checksum = foldChecksum(checksum, fillFrame(SEED, i, scratch, len));
    bytes += len;
    const frame = scratch.subarray(0, len);
    let pushed = ring.tryPush(frame);
    while (!pushed && !run.aborted) {
      const seq = bells.prepareWait(me);
      pushed = ring.tryPush(frame);
      if (!pushed) {
        sleeps++;
        const woken = bells.waitAsync(me, seq, Infinity);
        if (woken !== undefined) await woken;
      }
      bells.awake(me);
    }
    bells.ring(peer);
  }
  return { role: 'producer', count: run.frames, bytes, checksum, sleeps };
}

/** The main thread as consumer: drains in batches, waits for data with Atomics.waitAsync. */
async function consumeOnMain(run: Run, me: number, peer: number, batchFrames: number): Promise<StressReport> {
  const ring = new RingConsumer(run.ring);
  const bells = new Doorbells(run.doorbells);
  let count = 0;
  let checksum = 0;
  let bytes = 0;
  let sleeps = 0;
  let error: FrameError | undefined;
  const onFrame = (payload: Uint8Array): void => {
    const r = checkFrame(SEED, count, payload, ring.maxPayload);
    if (error === undefined && r.error !== undefined) error = r.error;
    checksum = foldChecksum(checksum, r.checksum);
    bytes += payload.length;
    count++;
  };
  while (count < run.frames && !run.aborted) {
    const n = ring.drain(onFrame, batchFrames);
    if (n > 0) {
      bells.ring(peer);
      continue;
    }
    const seq = bells.prepareWait(me);
    if (ring.isEmpty()) {
      sleeps++;
      const woken = bells.waitAsync(me, seq, Infinity);
      if (woken !== undefined) await woken;
    }
    bells.awake(me);
  }
  const report: StressReport = { role: 'consumer', count, bytes, checksum, sleeps };
  if (error !== undefined) report.error = error;
  return report;
}

type Side = 'main' | 'worker';

async function stress(opts: {
  producer: Side;
  consumer: Side;
  ringBytes: number;
  frames: number;
  batchFrames: number;
}): Promise<{ producer: StressReport; consumer: StressReport }> {
  const run: Run = {
    ring: allocateRing(opts.ringBytes),
    doorbells: allocateDoorbells(3),
    frames: opts.frames,
    aborted: false,
  };
  const producerSlot = opts.producer === 'main' ? MAIN : WORKER_A;
  const consumerSlot = opts.consumer === 'main' ? MAIN : WORKER_B;
  const workers: Worker[] = [];
  const side = (role: 'producer' | 'consumer', where: Side, me: number, peer: number): Promise<StressReport> => {
    if (where === 'main') {
      return role === 'producer' ? produceOnMain(run, me, peer) : consumeOnMain(run, me, peer, opts.batchFrames);
    }
    const data: StressWorkerData = {
      role,
      ring: run.ring,
      doorbells: run.doorbells,
      me,
      peer,
      frames: opts.frames,
      seed: SEED,
      batchFrames: opts.batchFrames,
    };
    const w = spawnTsWorker(WORKER_FILE, data);
    workers.push(w);
    return reportOf(w);
  };
  // Start the consumer first so a main-thread producer does not run before the worker exists.
  const consumer = side('consumer', opts.consumer, consumerSlot, producerSlot);
  const producer = side('producer', opts.producer, producerSlot, consumerSlot);

  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      run.aborted = true;
      const ctl = new Int32Array(run.ring, 0, RING_HEADER_BYTES / 4);
      const cells = new Int32Array(run.doorbells);
      const bells = [0, 1, 2].map((t) => ({ seq: cells[t * 16], sleeping: cells[t * 16 + 1] }));
      new Doorbells(run.doorbells).ringAlways(MAIN);
      reject(
        new Error(
          `no progress for ${LIVENESS_MS} ms (seed ${SEED}): head=${ctl[0]! >>> 0} tail=${ctl[16]! >>> 0} ` +
            `doorbells=${JSON.stringify(bells)}; a lost wake-up leaves a side sleeping with work pending`,
        ),
      );
    }, LIVENESS_MS);
  });
  try {
    const [p, c] = await Promise.race([Promise.all([producer, consumer]), deadline]);
    return { producer: p, consumer: c };
  } finally {
    clearTimeout(timer);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function expectIntact(r: { producer: StressReport; consumer: StressReport }, frames: number): void {
  const why = `seed ${SEED} (rerun with RING_STRESS_SEED=${SEED})`;
  expect(r.consumer.error, `first bad frame, ${why}`).toBeUndefined();
  expect(r.consumer.count, why).toBe(frames);
  expect(r.producer.count, why).toBe(frames);
  expect(r.consumer.bytes, why).toBe(r.producer.bytes);
  expect(r.consumer.checksum, why).toBe(r.producer.checksum);
}

describe('ring stress across real threads', () => {
  it(
    'worker -> worker: 2,000,000 frames over a 64 KiB ring',
    async () => {
      const frames = 2_000_000;
      const r = await stress({ producer: 'worker', consumer: 'worker', ringBytes: 64 * 1024, frames, batchFrames: 256 });
      expectIntact(r, frames);
      // The stream must have wrapped the ring many times over.
      expect(r.producer.bytes).toBeGreaterThan(100 * 64 * 1024);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'main -> worker: 1,000,000 frames over a 64 KiB ring (main waits with waitAsync)',
    async () => {
      const frames = 1_000_000;
      const r = await stress({ producer: 'main', consumer: 'worker', ringBytes: 64 * 1024, frames, batchFrames: 256 });
      expectIntact(r, frames);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'worker -> main: 1,000,000 frames over a 64 KiB ring (main drains in batches)',
    async () => {
      const frames = 1_000_000;
      const r = await stress({ producer: 'worker', consumer: 'main', ringBytes: 64 * 1024, frames, batchFrames: 256 });
      expectIntact(r, frames);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'worker -> worker: 300,000 frames over a 4 KiB ring, sleeping and waking constantly',
    async () => {
      const frames = 300_000;
      const r = await stress({ producer: 'worker', consumer: 'worker', ringBytes: 4096, frames, batchFrames: 3 });
      expectIntact(r, frames);
    },
    TEST_TIMEOUT_MS,
  );
});
