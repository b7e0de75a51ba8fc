/**
 * Benchmark app for bench/checkpoint_bench.ts: `bench/ckcounter` counts messages per id in a
 * `Types.long` state value; records come from a `MemoryIngress` (`bench/load`) that the
 * benchmark fills from the main thread, so it controls exactly which keys change between two
 * forced checkpoints. No egress. Params: none.
 */
import { createApp } from '../../api/app.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { MemoryIngress } from '../../connectors/memory/memory_ingress.js';

export const CK_COUNTER_TYPE = 'bench/ckcounter';
export const CK_INGRESS_ID = 'bench/load';

const ONE = Message.of(Types.long, 1);

/** The routed message that increments counter `k<i>`. */
export function increment(i: number): RoutedMessage {
  return { to: { typename: CK_COUNTER_TYPE, id: `k${i}` }, message: ONE };
}

export default function checkpointApp() {
  return createApp()
    .function({
      typename: CK_COUNTER_TYPE,
      specs: [{ name: 'count', type: Types.long }] as const,
      handler(ctx) {
        ctx.storage.count = (ctx.storage.count ?? 0) + 1;
      },
    })
    .ingress(new MemoryIngress<RoutedMessage>({ id: CK_INGRESS_ID, batchSize: 512, queueRecordsMax: 1 << 20 }));
}
