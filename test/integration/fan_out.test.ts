// Proves fan-out under back-pressure keeps memory bounded: a burst of inputs that each send 100
// messages back-pressures the ingress, outboxes and pending queues stay within bounds derived from
// the limits, and every message is delivered exactly once; a clean stop while back-pressured loses
// nothing.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types, type TypeOf } from '../../api/types.js';
import { createCodec } from '../../shared/frames.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { ASK, SINK, SOURCE, type REPORT } from '../fixtures/apps/fan_out_app.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf, jsonRecords, orFail, sampleStats } from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/fan_out_app.ts', import.meta.url).pathname;
const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

const FAN_OUT = 100;
const GROUPS = 10;
const WORKERS = 2;
const KiB = 1024;
const LIMITS = {
  ringBytes: 16 * KiB,
  frameBytesMax: 4 * KiB,
  batchMessagesMax: 32,
  outboxBytesHighWater: 64 * KiB,
  outboxBytesLowWater: 16 * KiB,
  pendingMessagesMax: 256,
  checkpointIntervalMs: 200,
};

type Report = TypeOf<typeof REPORT>;

/** Bytes of one message inside a MESSAGES frame (the frame's array header excluded). */
function messageBytes(fields: unknown[]): number {
  return createCodec().pack(fields).length - 1;
}

/**
 * Upper bounds on what the engine can hold at once during the burst, from LIMITS (W workers):
 *
 * - Sources (ingress messages) reach a worker only through its ring from the main thread, which
 *   it reads only while it is not back-pressured; it turns pressure on at the end of a step in
 *   which its pending count passed pendingMessagesMax, and one step reads at most one ring's
 *   worth. So a worker holds at most pendingMessagesMax + ringBytes / srcMin sources. Outside the
 *   workers, sources wait in the W main->worker rings and in the main thread's outbox, which stops
 *   growing once it passes outboxBytesHighWater (after at most one more ingress batch).
 * - The main thread takes new ingress only while no worker is back-pressured, i.e. while each
 *   worker holds at most pendingMessagesMax pending messages and outboxBytesHighWater parked
 *   bytes (plus the output of one step: batchMessagesMax sources' FAN_OUT messages each).
 *
 * Every message in the engine is a source or one of the FAN_OUT messages of a source, so:
 *   messagesMax = W * (pendingMessagesMax + outboxBytesHighWater / sinkMin + batchMessagesMax * FAN_OUT)
 *               + sourcesMax * (FAN_OUT + 1)
 * pending (decoded messages) <= messagesMax and parked bytes <= messagesMax * sinkMax. A single
 * worker parks at most what it produces: outboxBytesHighWater plus the fan-out of one step and
 * of the sources it holds.
 */
function bounds(n: number): { messagesMax: number; parkedBytesMax: number; workerParkedBytesMax: number } {
  const L = LIMITS;
  const srcMin = messageBytes([SOURCE, 'src0', null, null, Types.long.typename, 0]);
  const srcMax = messageBytes([SOURCE, 'src49', null, null, Types.long.typename, n - 1]);
  const sinkMin = messageBytes([SINK, 'k0', SOURCE, 'src0', Types.long.typename, 0]);
  const sinkMax = messageBytes([SINK, `k${GROUPS * FAN_OUT - 1}`, SOURCE, 'src49', Types.long.typename, n - 1]);
  const ingressBatch = 256; // MemoryIngress's default batchSize
  const perWorkerSources = L.pendingMessagesMax + Math.ceil(L.ringBytes / srcMin);
  const sourcesMax =
    WORKERS * perWorkerSources +
    WORKERS * Math.ceil(L.ringBytes / srcMin) +
    Math.ceil((L.outboxBytesHighWater + ingressBatch * srcMax) / srcMin);
  const messagesMax =
    WORKERS * (L.pendingMessagesMax + Math.ceil(L.outboxBytesHighWater / sinkMin) + L.batchMessagesMax * FAN_OUT) +
    sourcesMax * (FAN_OUT + 1);
  return {
    messagesMax,
    parkedBytesMax: messagesMax * sinkMax,
    workerParkedBytesMax: L.outboxBytesHighWater + (L.batchMessagesMax + perWorkerSources) * FAN_OUT * sinkMax,
  };
}

describe('fan-out', () => {
  it('back-pressures a burst of inputs, stays bounded, delivers every message exactly once', async () => {
    const N = 20_000;
    const stateDir = tmp.make('fanout');
    const logger = new MemoryLogger();
    const engine = await Engine.start(
      { module: app, params: { fanOut: FAN_OUT, groups: GROUPS } },
      { stateDir, workers: WORKERS, logger, limits: LIMITS },
    );
    try {
      const input = ingressOf(engine, 'fan/in');
      const output = egressOf(engine, 'fan/out');
      const rss0 = process.memoryUsage.rss();
      const sampler = sampleStats(engine, 2);
      input.pushAll(
        Array.from({ length: N }, (_, n): RoutedMessage => ({
          to: { typename: SOURCE, id: `src${n % 50}` },
          message: Message.of(Types.long, n),
        })),
      );
      const total = N * (FAN_OUT + 1);
      await orFail(
        engine,
        new Promise<void>((resolve) => {
          const t = setInterval(() => {
            if (engine.stats().processed >= total) {
              clearInterval(t);
              resolve();
            }
          }, 10);
        }),
      );
      const peaks = sampler.stop();
      expect(engine.stats().processed).toBe(total);

      // The ingress was paused at some point.
      expect(peaks.backPressured).toBe(true);
      const b = bounds(N);
      // Neither queue ever held more than the bound derived from the limits, which is a small
      // part of the burst (N * (FAN_OUT + 1) messages).
      expect(b.messagesMax).toBeLessThan(total / 4);
      expect(peaks.pending).toBeLessThanOrEqual(b.messagesMax);
      expect(peaks.parkedBytes).toBeLessThanOrEqual(b.parkedBytesMax);
      expect(peaks.workerParkedBytes).toBeLessThanOrEqual(b.workerParkedBytesMax);
      // A sanity guard on the whole process (all threads), not a measurement: holding the burst
      // decoded would take far more than this.
      expect(peaks.rssBytes - rss0).toBeLessThan(1024 * 1024 * 1024);
      const sinks = GROUPS * FAN_OUT;
      input.pushAll(
        Array.from({ length: sinks }, (_, k): RoutedMessage => ({ to: { typename: SINK, id: `k${k}` }, message: Message.of(ASK, null) })),
      );
      await orFail(engine, output.waitFor(sinks, 30_000));
      for (const r of jsonRecords<Report>(output)) {
        const g = Math.floor(Number(r.id.slice(1)) / FAN_OUT);
        let count = 0,
          sum = 0,
          sumSq = 0;
        for (let n = g; n < N; n += GROUPS) {
          count++;
          sum += n;
          sumSq += n * n;
        }
        expect(r, r.id).toEqual({ id: r.id, count, sum, sumSq });
      }
    } finally {
      await engine.stop();
    }
  });

  it('a clean stop while back-pressured saves everything in flight; after restart every message arrives exactly once', async () => {
    const N = 10_000;
    const stateDir = tmp.make('fanout');
    const params = { fanOut: FAN_OUT, groups: GROUPS };
    const records = Array.from({ length: N }, (_, n): RoutedMessage => ({
      to: { typename: SOURCE, id: `src${n % 50}` },
      message: Message.of(Types.long, n),
    }));
    let logger = new MemoryLogger();
    let engine = await Engine.start(
      { module: app, params },
      { stateDir, workers: WORKERS, logger, limits: { ...LIMITS, stopTimeoutMs: 20_000 } },
    );
    let input = ingressOf(engine, 'fan/in');
    input.pushAll(records);
    // Stop in the middle of the burst, while the engine is back-pressured.
    await orFail(
      engine,
      new Promise<void>((resolve) => {
        const t = setInterval(() => {
          const s = engine.stats();
          // (or the burst is over: the expectations below then say so)
          if ((s.backPressured && s.processed > (N * FAN_OUT) / 10) || s.processed >= N * (FAN_OUT + 1)) {
            clearInterval(t);
            resolve();
          }
        }, 1);
      }),
    );
    const processedBefore = engine.stats().processed;
    await engine.stop();
    expect(logger.errors()).toEqual([]);
    const unsent = input.queued;
    expect(processedBefore).toBeLessThan(N * (FAN_OUT + 1));
    expect(unsent).toBeGreaterThan(0); // the burst was really cut short

    logger = new MemoryLogger();
    engine = await Engine.start({ module: app, params }, { stateDir, workers: WORKERS, logger, limits: LIMITS });
    try {
      input = ingressOf(engine, 'fan/in');
      input.pushAll(records.slice(N - unsent));
      const output = egressOf(engine, 'fan/out');
      const sinks = GROUPS * FAN_OUT;
      // Wait until every sink has all its messages (or report what is missing).
      const want = (k: number): number => {
        let c = 0;
        for (let n = Math.floor(k / FAN_OUT); n < N; n += GROUPS) c++;
        return c;
      };
      const deadline = Date.now() + 60_000;
      let reports: Report[] = [];
      for (;;) {
        output.clear();
        input.pushAll(
          Array.from({ length: sinks }, (_, k): RoutedMessage => ({ to: { typename: SINK, id: `k${k}` }, message: Message.of(ASK, null) })),
        );
        await orFail(engine, output.waitFor(sinks, 30_000));
        reports = jsonRecords<Report>(output);
        if (reports.every((r) => r.count >= want(Number(r.id.slice(1)))) || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const r of reports) {
        const g = Math.floor(Number(r.id.slice(1)) / FAN_OUT);
        let count = 0,
          sum = 0,
          sumSq = 0;
        for (let n = g; n < N; n += GROUPS) {
          count++;
          sum += n;
          sumSq += n * n;
        }
        expect(r, r.id).toEqual({ id: r.id, count, sum, sumSq });
      }
    } finally {
      await engine.stop();
    }
    expect(logger.errors()).toEqual([]);
  });
});
