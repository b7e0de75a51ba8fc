/**
 * Peer workload "chain": a message hops through 10 function types `chain/f0` .. `chain/f9`; hop i
 * runs `chain/f<i>` at key `hopKey(k, i)` = FNV-1a("<k>:<i>") mod keys (the Restate peer's hash),
 * where k is the chain's start key. Every hop increments its own `Types.long` state `n` (a keyed,
 * stateful step, as the Restate peer's Hop<i>.step), then sends the message on; `chain/f9`
 * egresses (the chain leaves).
 *
 * The message is a `Types.string` `"<created>|<k>"`: the creation time (ms; 0 over HTTP) and the
 * start key, which every hop needs to compute the next key.
 *
 *   - `generator`: a seeded `GeneratorIngress` picks k uniformly in [0, keys) and sends to
 *     `chain/f0/hopKey(k, 0)`. 1 in `egressEvery` chains ending on a worker egresses a latency
 *     sample (creation -> processing of the last hop); the others egress nothing, so chain
 *     throughput is measured as handled messages / 10.
 *   - `http`: the client POSTs `/chain/f0/<hopKey(k, 0)>` with `Content-Type:
 *     application/vnd.io.statefun.types/string` and the string `"0|<k>"` in StateFun's wire format.
 *     The 202 comes once the checkpoint covering the submitted message is complete. That checkpoint
 *     holds, for each of the downstream hops, either its state effect or the message that leads to
 *     it (pending in a worker's queue, or recorded in flight across the cut): after any crash the
 *     rest of the chain happens exactly once; it may not have happened yet when the reply arrives.
 *     Every chain end egresses one unsampled record.
 */
import { createApp } from '../../../api/app.js';
import { Message } from '../../../api/message.js';
import { Types } from '../../../api/types.js';
import type { RoutedMessage } from '../../../api/connector_api.js';
import { GeneratorIngress } from '../../../connectors/generator/generator_ingress.js';
import { HttpIngress } from '../../../connectors/http/http_ingress.js';
import { LATENCY_EGRESS_ID, PeerLatencyEgress, STRING, hopKey, httpIngressOptions, nowMs, type PeerHttpParams } from './common.js';

export const HOPS = 10;
export const CHAIN_TYPES: readonly string[] = Array.from({ length: HOPS }, (_, i) => `chain/f${i}`);
export const CHAIN_GENERATOR_ID = 'peers/chain-generator';
export const CHAIN_HTTP_ID = 'peers/chain-http';

export interface PeerChainParams {
  source: 'generator' | 'http';
  /** Keys per function type. Default 100,000. */
  keys?: number;
  count?: number;
  ratePerSec?: number;
  /** Generator: 1 in this many chains ending on a worker egresses a latency sample. Default 8. */
  egressEvery?: number;
  batchSize?: number;
  seed?: number;
  http?: PeerHttpParams;
}

export default function peerChainApp(params: PeerChainParams) {
  const keys = params.keys ?? 100_000;
  const every = params.egressEvery ?? 8;
  const http = params.source === 'http';
  let ended = 0;
  const app = createApp();
  for (let i = 0; i < HOPS; i++) {
    const last = i === HOPS - 1;
    const next = last ? '' : CHAIN_TYPES[i + 1]!;
    app.function({
      typename: CHAIN_TYPES[i]!,
      specs: [{ name: 'n', type: Types.long }] as const,
      handler(ctx, msg) {
        ctx.storage.n = (ctx.storage.n ?? 0) + 1;
        const p = msg.payload as string;
        if (!last) {
          ctx.send({ typename: next, id: hopKey(p.slice(p.indexOf('|') + 1), i + 1, keys) }, msg);
          return;
        }
        if (http) {
          ctx.egress(LATENCY_EGRESS_ID, new Message(STRING, 'http'));
        } else if (++ended % every === 0) {
          const created = p.slice(0, p.indexOf('|'));
          ctx.egress(LATENCY_EGRESS_ID, new Message(STRING, `${created}|${nowMs()}`));
        }
      },
    });
  }
  app.egress(new PeerLatencyEgress(LATENCY_EGRESS_ID));
  if (!http) {
    app.ingress(
      new GeneratorIngress<RoutedMessage>({
        id: CHAIN_GENERATOR_ID,
        count: params.count ?? 50_000_000,
        ratePerSec: params.ratePerSec ?? 0,
        batchSize: params.batchSize ?? 256,
        seed: params.seed ?? 2,
        make: (_i, rng) => {
          const k = String(rng.int(keys));
          return { to: { typename: CHAIN_TYPES[0]!, id: hopKey(k, 0, keys) }, message: new Message(STRING, `${nowMs()}|${k}`) };
        },
      }),
    );
  } else {
    app.ingress(new HttpIngress(httpIngressOptions(CHAIN_HTTP_ID, params.http)));
  }
  return app;
}

// Types.string is what the HTTP client sends: check the name once at load.
if (Types.string.typename !== 'io.statefun.types/string') throw new Error('chain app: unexpected string type name');
