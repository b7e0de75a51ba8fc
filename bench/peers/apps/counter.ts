/**
 * Peer workload "counter": one message increments a `Types.long` state value `n` of
 * `peers/counter/<key>`, over `keys` keys (100,000 by default), uniform or Zipf-skewed.
 *
 * Two ways in (`source`):
 *   - `generator`: a count-limited, seeded `GeneratorIngress` (as fast as the engine takes records
 *     when `ratePerSec` is 0, else open loop at that rate). Key `String(rank)` with rank uniform in
 *     [0, keys) or `rng.zipf(keys, zipfExponent)`. The payload is the record's creation time
 *     (`Types.double`, ms); 1 in `egressEvery` messages a worker handles egresses a latency sample.
 *   - `http`: an `HttpIngress` on 127.0.0.1 (ephemeral port). The client POSTs
 *     `/peers/counter/<key>` with `Content-Type: application/vnd.peers.types/inc` and a 1-byte body;
 *     the reply (202) comes once the checkpoint covering the message is complete (durable).
 *
 * The module is imported by the main thread and by every worker; params are structured-clone safe.
 */
import { createApp } from '../../../api/app.js';
import { Message } from '../../../api/message.js';
import { Types } from '../../../api/types.js';
import type { RoutedMessage } from '../../../api/connector_api.js';
import { GeneratorIngress } from '../../../connectors/generator/generator_ingress.js';
import { HttpIngress } from '../../../connectors/http/http_ingress.js';
import { DOUBLE, LATENCY_EGRESS_ID, PeerLatencyEgress, httpIngressOptions, latencySample, nowMs, type PeerHttpParams } from './common.js';

export const COUNTER_TYPE = 'peers/counter';
export const COUNTER_GENERATOR_ID = 'peers/counter-generator';
export const COUNTER_HTTP_ID = 'peers/counter-http';
/** The content type the HTTP client sends (a custom type: the body stays bytes, never decoded). */
export const COUNTER_HTTP_TYPE = 'peers.types/inc';

export interface PeerCounterParams {
  source: 'generator' | 'http';
  /** Distinct keys. Default 100,000. */
  keys?: number;
  /** 0 = uniform keys; > 0 = Zipf with this exponent. Default 0. */
  zipfExponent?: number;
  /** Generator: records in total (the run is also time-bounded). Default 50,000,000. */
  count?: number;
  /** Generator: records/s; 0 = as fast as the engine takes them. Default 0. */
  ratePerSec?: number;
  /** Generator: 1 in this many handled messages per worker egresses a latency sample. Default 64. */
  egressEvery?: number;
  batchSize?: number;
  seed?: number;
  http?: PeerHttpParams;
}

export default function peerCounterApp(params: PeerCounterParams) {
  const keys = params.keys ?? 100_000;
  const s = params.zipfExponent ?? 0;
  const every = params.egressEvery ?? 64;
  let handled = 0;
  const app = createApp()
    .function({
      typename: COUNTER_TYPE,
      specs: [{ name: 'n', type: Types.long }] as const,
      handler(ctx, msg) {
        ctx.storage.n = (ctx.storage.n ?? 0) + 1;
        if (++handled % every === 0 && typeof msg.payload === 'number') ctx.egress(LATENCY_EGRESS_ID, latencySample(msg.payload));
      },
    })
    .egress(new PeerLatencyEgress(LATENCY_EGRESS_ID));
  if (params.source === 'generator') {
    app.ingress(
      new GeneratorIngress<RoutedMessage>({
        id: COUNTER_GENERATOR_ID,
        count: params.count ?? 50_000_000,
        ratePerSec: params.ratePerSec ?? 0,
        batchSize: params.batchSize ?? 256,
        seed: params.seed ?? 1,
        make: (_i, rng) => ({
          to: { typename: COUNTER_TYPE, id: String(s > 0 ? rng.zipf(keys, s) : rng.int(keys)) },
          message: new Message(DOUBLE, nowMs()),
        }),
      }),
    );
  } else {
    app.ingress(new HttpIngress(httpIngressOptions(COUNTER_HTTP_ID, params.http)));
  }
  return app;
}
