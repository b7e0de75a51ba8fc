/**
 * Benchmark app for the remote-function benchmark (bench/remote_bench.ts): the counter of the
 * embedded macro benchmark, run either embedded or as a remote function behind StateFun's HTTP
 * request-reply protocol, with the identical workload in both cases.
 *
 * - `remote-test/counter`: state `n` (`Types.long`), +1 per message, no effects. This is the
 *   contract of `remote-test/counter` in the official-JS-SDK test service
 *   (test/fixtures/remote/js_functions.mjs) and of bench/fixtures/ts_counter_service.ts (statefn's
 *   TS SDK), which serves the very FunctionSpecs exported here.
 * - `remote-test/counter-echo`: the same, and it egresses its new count as a `Types.long` to
 *   `remote-test/counts` (also the JS service's contract). Used for the latency probes.
 * - A count-limited `GeneratorIngress` (as bench/apps/counter_bench.ts): records go to
 *   `remote-test/counter/k<uniform in [0, keys)>` carrying their ingest time (ms, `Types.double`),
 *   as fast as the engine takes them or at `ratePerSec` open loop.
 * - Latency probes: every `probeEvery`-th record goes to `remote-test/counter-echo/probe` instead.
 *   The egress record carries only the new count n (the JS SDK service cannot echo the payload),
 *   so the main thread remembers the ingest time of the n-th probe; since one address handles its
 *   messages in order and its state starts at 0 (a fresh state directory per run), the record with
 *   count n is the n-th probe, and `ProbeEgress` records `now - ingest time of probe n`: the
 *   latency ingress -> main outbox -> ring -> worker -> (HTTP call | handler) -> commit -> ring ->
 *   main -> egress, including every queue on the way, the same path the macro's `LatencyEgress`
 *   measures. The probe address is one hot key (1/probeEvery of the load, on one worker).
 *
 * With `url`: `app.remote({functions: 'remote-test/*', urlPathTemplate: url})` and no embedded
 * functions; without: the two functions embedded. Params must be structured-clone safe (they go to
 * the workers); the module is imported by the main thread and every worker.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { createApp } from '../../api/app.js';
import type { EgressConnector, EgressRecord, RoutedMessage } from '../../api/connector_api.js';
import { defineFunction } from '../../api/function_api.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { GeneratorIngress } from '../../connectors/generator/generator_ingress.js';
import { nowMs } from './latency_egress.js';

export const COUNTER_TYPE = 'remote-test/counter';
export const ECHO_TYPE = 'remote-test/counter-echo';
export const COUNTS_EGRESS_ID = 'remote-test/counts';
export const INGRESS_ID = 'remote-bench/generator';
export const PROBE_ID = 'probe';

export interface RemoteCounterParams {
  /** The remote endpoint (`urlPathTemplate`) serving `remote-test/*`; absent = embedded functions. */
  url?: string;
  /** Distinct counter ids. Default 100,000. */
  keys?: number;
  /** Open-loop rate in records/s; 0 = as fast as the engine accepts (closed loop). Default 0. */
  ratePerSec?: number;
  /** Records the generator produces in total. Default 10,000,000. */
  count?: number;
  /** 1 in this many records is a latency probe to `remote-test/counter-echo/probe`; 0 = none. Default 64. */
  probeEvery?: number;
  /** Records per generator submit. Default 256. */
  batchSize?: number;
  seed?: number;
  /** Remote endpoint settings (defaults: the engine's). */
  maxNumBatchRequests?: number;
  poolSize?: number;
  callTimeoutMs?: number;
}

/** `remote-test/counter`: n += 1 per message. */
export const counter = defineFunction({
  typename: COUNTER_TYPE,
  specs: [{ name: 'n', type: Types.long }] as const,
  handler(ctx) {
    ctx.storage.n = (ctx.storage.n ?? 0) + 1;
  },
});

/** `remote-test/counter-echo`: n += 1 per message, egress `remote-test/counts` long n. */
export const counterEcho = defineFunction({
  typename: ECHO_TYPE,
  specs: [{ name: 'n', type: Types.long }] as const,
  handler(ctx) {
    const n = (ctx.storage.n ?? 0) + 1;
    ctx.storage.n = n;
    ctx.egress(COUNTS_EGRESS_ID, Message.of(Types.long, n));
  },
});

/** The functions as the TS SDK service serves them (and as they run embedded). */
export const counterFunctions = [counter, counterEcho] as const;

/**
 * The egress of the probes' counts (main thread): `write` turns count n into the latency of the
 * n-th probe, in µs, in Node's HDR histogram (`perf_hooks.createHistogram`).
 */
export class ProbeEgress implements EgressConnector {
  readonly id = COUNTS_EGRESS_ID;
  readonly histogram: RecordableHistogram = createHistogram();
  /** Ingest time (ms) of probe n at index n - 1; appended by the generator on the main thread. */
  readonly sentAt: number[] = [];
  /** Records seen (also while not recording). */
  records = 0;
  /** Records that were not a long, or whose count matches no probe sent (should stay 0). */
  malformed = 0;
  /** Counts that did not follow the previous one (n != last + 1): order lost (should stay 0). */
  outOfOrder = 0;
  /** While false, records are counted but not put in the histogram (warm-up). */
  recording = true;
  private last = 0;

  write(records: readonly EgressRecord[]): void {
    const now = nowMs();
    this.records += records.length;
    for (const r of records) {
      const n = r.message.payload;
      if (typeof n !== 'number' || !r.message.isLong()) {
        this.malformed++;
        continue;
      }
      if (n !== this.last + 1) this.outOfOrder++;
      this.last = n;
      const t = this.sentAt[n - 1];
      if (t === undefined) {
        this.malformed++;
        continue;
      }
      if (this.recording) this.histogram.record(Math.max(1, Math.round((now - t) * 1000)));
    }
  }

  /** Start recording afresh (the end of a warm-up). */
  reset(): void {
    this.histogram.reset();
    this.recording = true;
  }

  /** Percentiles of what was recorded, in ms. */
  summary(): { count: number; p50Ms: number; p90Ms: number; p99Ms: number; p999Ms: number; maxMs: number; meanMs: number } {
    const h = this.histogram;
    const ms = (us: number): number => Math.round(us) / 1000;
    return {
      count: h.count,
      p50Ms: ms(h.percentile(50)),
      p90Ms: ms(h.percentile(90)),
      p99Ms: ms(h.percentile(99)),
      p999Ms: ms(h.percentile(99.9)),
      maxMs: ms(h.count === 0 ? 0 : h.max),
      meanMs: ms(h.count === 0 ? 0 : h.mean),
    };
  }
}

const DOUBLE = Types.double.typename;

export default function remoteCounterApp(params: RemoteCounterParams = {}) {
  const keys = params.keys ?? 100_000;
  const probeEvery = params.probeEvery ?? 64;
  const app = createApp();
  if (params.url !== undefined) {
    app.remote({
      functions: 'remote-test/*',
      urlPathTemplate: params.url,
      ...(params.maxNumBatchRequests === undefined ? {} : { maxNumBatchRequests: params.maxNumBatchRequests }),
      ...(params.poolSize === undefined ? {} : { poolSize: params.poolSize }),
      ...(params.callTimeoutMs === undefined ? {} : { callTimeoutMs: params.callTimeoutMs }),
    });
  } else {
    app.function(counter).function(counterEcho);
  }
  const probes = new ProbeEgress();
  return app
    .ingress(
      new GeneratorIngress<RoutedMessage>({
        id: INGRESS_ID,
        count: params.count ?? 10_000_000,
        ratePerSec: params.ratePerSec ?? 0,
        batchSize: params.batchSize ?? 256,
        seed: params.seed ?? 1,
        // As counter_bench.ts: the record is already a routed message; the payload is the ingest time.
        make: (i, rng) => {
          const t = nowMs();
          if (probeEvery > 0 && i % probeEvery === probeEvery - 1) {
            probes.sentAt.push(t);
            return { to: { typename: ECHO_TYPE, id: PROBE_ID }, message: new Message(DOUBLE, t) };
          }
          return { to: { typename: COUNTER_TYPE, id: `k${rng.int(keys)}` }, message: new Message(DOUBLE, t) };
        },
      }),
    )
    .egress(probes);
}
