/**
 * Peer workload "fraud": statefn's fraud-detection example (examples/fraud_detection) with its own
 * four functions (`fraud/transaction-manager`, `fraud/fraud-count`, `fraud/merchant-scorer`,
 * `fraud/model`) and its own record makers (`makeTransaction`, `makeConfirmation`: 10,000
 * accounts, Zipf(1.1) over 1,000 merchants, confirmations on the 1% compromised accounts). One
 * transaction is 7 messages: Transaction -> manager -> QueryFraud + QueryMerchantScore -> two
 * replies -> FeatureVector -> model -> FraudScore -> manager (alert if score > 0.8, state deleted).
 *
 * What the benchmark changes, and only that:
 *   - the transaction's `timestamp` is the wall-clock creation time (ms, not the example's
 *     simulated event time), so that the transaction manager, wrapped here, can egress a latency
 *     sample (creation -> the FraudScore handled, i.e. the transaction fully scored) for 1 in
 *     `egressEvery` transactions it completes per worker (the generator path);
 *   - alerts go to a counting egress instead of a file + stdout;
 *   - confirmations run at 2.5% of the transaction rate (the example's 50 per 2,000), or
 *     `confirmationsPerSec` when the transactions are closed loop.
 *
 *   - `generator`: transactions from a seeded `GeneratorIngress` (closed loop when `ratePerSec` 0).
 *   - `http`: the client POSTs `/fraud/transaction-manager/t-<n>` with `Content-Type:
 *     application/vnd.fraud.types/Transaction` and the transaction as JSON; 202 once the
 *     checkpoint covering it is complete (the scoring steps after it: as the chain's hops).
 */
import { App } from '../../../api/app.js';
import type { FunctionSpec } from '../../../api/function_api.js';
import { GeneratorIngress } from '../../../connectors/generator/generator_ingress.js';
import { HttpIngress } from '../../../connectors/http/http_ingress.js';
import { createFraudCount } from '../../../examples/fraud_detection/fraud_count.js';
import { merchantScorer } from '../../../examples/fraud_detection/merchant_scorer.js';
import { model } from '../../../examples/fraud_detection/model.js';
import { createTransactionManager } from '../../../examples/fraud_detection/transaction_manager.js';
import { makeConfirmation, makeTransaction, routeConfirmation, routeTransaction } from '../../../examples/fraud_detection/app.js';
import {
  ALERTS_EGRESS,
  CONFIRMED_FRAUD_INGRESS,
  FraudScoreType,
  TRANSACTIONS_INGRESS,
  type ConfirmFraud,
  type Transaction,
} from '../../../examples/fraud_detection/types.js';
import {
  CountingEgress,
  LATENCY_EGRESS_ID,
  PeerLatencyEgress,
  httpIngressOptions,
  latencySample,
  nowMs,
  type PeerHttpParams,
} from './common.js';

export const FRAUD_HTTP_ID = 'peers/fraud-http';
export const FRAUD_ACCOUNTS = 10_000;
export const FRAUD_MERCHANTS = 1_000;
/** Messages handled per scored transaction. */
export const FRAUD_MESSAGES_PER_TRANSACTION = 7;

export interface PeerFraudParams {
  source: 'generator' | 'http';
  count?: number;
  /** Transactions/s; 0 = closed loop. */
  ratePerSec?: number;
  /** Confirmations/s when transactions are closed loop. Default 1,000. */
  confirmationsPerSec?: number;
  egressEvery?: number;
  seed?: number;
  http?: PeerHttpParams;
}

export default function peerFraudApp(params: PeerFraudParams) {
  const every = params.egressEvery ?? 8;
  const generator = params.source === 'generator';
  const seed = params.seed ?? 42;
  const base = createTransactionManager();
  let completed = 0;
  // The example's transaction manager, plus a latency sample when a FraudScore completes a
  // transaction (read before the handler deletes the transaction's state).
  const manager = {
    typename: base.typename,
    ...(base.specs === undefined ? {} : { specs: base.specs }),
    handler(ctx, msg) {
      if (generator && msg.is(FraudScoreType)) {
        const t = ctx.storage.transaction;
        if (
          t !== undefined &&
          ctx.storage.fraudCount !== undefined &&
          ctx.storage.merchantScore !== undefined &&
          ++completed % every === 0
        ) {
          ctx.egress(LATENCY_EGRESS_ID, latencySample(t.timestamp));
        }
      }
      return base.handler(ctx, msg);
    },
  } satisfies FunctionSpec<NonNullable<typeof base.specs>>;
  const app = new App()
    .function(manager)
    .function(createFraudCount())
    .function(merchantScorer)
    .function(model)
    .egress(new PeerLatencyEgress(LATENCY_EGRESS_ID))
    .egress(new CountingEgress(ALERTS_EGRESS));
  const rate = params.ratePerSec ?? 0;
  const confirmationsPerSec = rate > 0 ? Math.max(1, rate * 0.025) : (params.confirmationsPerSec ?? 1000);
  if (generator) {
    app.ingress(
      new GeneratorIngress<Transaction>({
        id: TRANSACTIONS_INGRESS,
        ratePerSec: rate,
        count: params.count ?? 20_000_000,
        seed,
        make: (index, rng) => ({ ...makeTransaction(index, rng, FRAUD_ACCOUNTS, FRAUD_MERCHANTS, Math.max(1, rate)), timestamp: nowMs() }),
      }),
      routeTransaction,
    );
  } else {
    app.ingress(new HttpIngress(httpIngressOptions(FRAUD_HTTP_ID, params.http)));
  }
  // Confirmations keep fraud-count busy on both paths (bounded: they end with the run's engine).
  app.ingress(
    new GeneratorIngress<ConfirmFraud>({
      id: CONFIRMED_FRAUD_INGRESS,
      ratePerSec: confirmationsPerSec,
      count: 10_000_000,
      seed: seed + 1,
      make: (index, rng) => makeConfirmation(index, rng, FRAUD_ACCOUNTS, confirmationsPerSec),
    }),
    routeConfirmation,
  );
  return app;
}
