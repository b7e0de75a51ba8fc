/**
 * Benchmark app: `bench/counter` counts messages per id in a `Types.long` state value, over
 * `keys` ids with uniformly random keys, fed by a count-limited `GeneratorIngress` (as fast as
 * the engine takes records, or at `ratePerSec` open loop). Each message carries its ingest time
 * (ms, a double) as a `Types.double` payload; every `egressEvery`-th message a worker handles is
 * forwarded to the `bench/latency` egress, which records ingress -> egress latency on the main
 * thread.
 *
 * The module is imported by the main thread and by every worker; only the main thread starts
 * the ingress and the egress. Params must be structured-clone safe (they go to the workers).
 */
import { createApp } from '../../api/app.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { GeneratorIngress } from '../../connectors/generator/generator_ingress.js';
import { LatencyEgress, nowMs } from './latency_egress.js';

export interface CounterBenchParams {
  /** Distinct counter ids. Default 100,000. */
  keys?: number;
  /** Records the generator produces in total. Default 10,000,000. */
  count?: number;
  /** Open-loop rate in records/s; 0 = as fast as the engine accepts. Default 0. */
  ratePerSec?: number;
  /** Forward 1 in this many handled messages (per worker) to the latency egress. Default 64. */
  egressEvery?: number;
  /** Records per generator submit. Default 256. */
  batchSize?: number;
  seed?: number;
}

export const COUNTER_TYPE = 'bench/counter';
export const INGRESS_ID = 'bench/generator';
export const LATENCY_EGRESS_ID = 'bench/latency';

const DOUBLE = Types.double.typename;

export default function counterBench(params: CounterBenchParams = {}) {
  const keys = params.keys ?? 100_000;
  const every = params.egressEvery ?? 64;
  // Per thread (each worker imports its own copy of this module): messages handled here.
  let handled = 0;
  return createApp()
    .function({
      typename: COUNTER_TYPE,
      specs: [{ name: 'count', type: Types.long }] as const,
      handler(ctx, msg) {
        ctx.storage.count = (ctx.storage.count ?? 0) + 1;
        if (++handled % every === 0) ctx.egress(LATENCY_EGRESS_ID, msg);
      },
    })
    .ingress(
      new GeneratorIngress<RoutedMessage>({
        id: INGRESS_ID,
        count: params.count ?? 10_000_000,
        ratePerSec: params.ratePerSec ?? 0,
        batchSize: params.batchSize ?? 256,
        seed: params.seed ?? 1,
        // The record is already a routed message (no router): the payload is the ingest time.
        // A fresh id string per record, as a real ingress decodes one: it is also cheaper than
        // picking from 100,000 prebuilt addresses (each pick a cache miss: 0.55 vs 0.75 us per
        // message of main-thread time, measured).
        make: (_i, rng) => ({ to: { typename: COUNTER_TYPE, id: `k${rng.int(keys)}` }, message: new Message(DOUBLE, nowMs()) }),
      }),
    )
    .egress(new LatencyEgress(LATENCY_EGRESS_ID));
}
