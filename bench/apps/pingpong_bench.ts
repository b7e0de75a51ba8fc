/**
 * Benchmark app: `bench/hop` forwards a message to the next id of a ring of ids chosen so that
 * consecutive ids live on different workers (id j is owned by worker j mod N): every hop crosses
 * a worker -> worker ring when N > 1. The payload is the number of hops left (`Types.long`);
 * a chain that reaches 0 sends one record to the `bench/done` egress. `chains` chains start at
 * once (one ingress record each), so `chains` = 1 measures the per-hop latency (1 / rate) and
 * many chains measure throughput.
 *
 * The hop function keeps no state: this measures messaging (codec + rings + dispatch) alone.
 */
import { createApp } from '../../api/app.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { keyGroupOf, ownerTable } from '../../shared/key_group.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { GeneratorIngress } from '../../connectors/generator/generator_ingress.js';
import { LatencyEgress } from './latency_egress.js';

export interface PingPongParams {
  /** Worker count and key groups of the engine (to place ids on alternating workers). */
  workers: number;
  keyGroups: number;
  /** Chains in flight at once. */
  chains: number;
  /** Hops per chain before it ends. Default 2^31 (runs until the engine stops). */
  hops?: number;
  /** Ids per worker on the ring. Default 64. */
  idsPerWorker?: number;
}

export const HOP_TYPE = 'bench/hop';
export const DONE_EGRESS_ID = 'bench/done';

const LONG = Types.long.typename;

/** `perWorker * workers` ids such that id j is owned by worker j mod workers. */
export function alternatingIds(workers: number, keyGroups: number, perWorker: number): string[] {
  const owner = ownerTable(workers, keyGroups);
  const byWorker: string[][] = Array.from({ length: workers }, () => []);
  for (let i = 0; byWorker.some((l) => l.length < perWorker); i++) {
    const id = `h${i}`;
    const l = byWorker[owner[keyGroupOf(id, keyGroups)]!]!;
    if (l.length < perWorker) l.push(id);
  }
  const out: string[] = [];
  for (let j = 0; j < perWorker; j++) for (let w = 0; w < workers; w++) out.push(byWorker[w]![j]!);
  return out;
}

export default function pingPongBench(params: PingPongParams) {
  const ids = alternatingIds(params.workers, params.keyGroups, params.idsPerWorker ?? 64);
  const next = new Map(ids.map((id, j) => [id, { typename: HOP_TYPE, id: ids[(j + 1) % ids.length]! }]));
  const hops = params.hops ?? 2 ** 31;
  return (
    createApp()
      .function({
        typename: HOP_TYPE,
        handler(ctx, msg) {
          const left = msg.asLong();
          if (left <= 0) ctx.egress(DONE_EGRESS_ID, new Message(Types.double.typename, 0));
          else ctx.send(next.get(ctx.self.id)!, new Message(LONG, left - 1));
        },
      })
      .ingress(
        new GeneratorIngress<RoutedMessage>({
          id: 'bench/chains',
          count: params.chains,
          // Spread chain starts over the ring so chains do not queue behind each other at one id.
          make: (i) => ({
            to: { typename: HOP_TYPE, id: ids[(i * 2 * params.workers + 1) % ids.length]! },
            message: new Message(LONG, hops),
          }),
        }),
      )
      // Only counted (the payload is no timestamp).
      .egress(Object.assign(new LatencyEgress(DONE_EGRESS_ID), { recording: false }))
  );
}
