/**
 * `fraud/transaction-manager`, one instance per transaction: the workflow of scoring one
 * transaction, kept in its own state so it survives crashes between the steps.
 *
 *   Transaction ──► store it; QueryFraud ──► fraud/fraud-count (id = account)
 *                             QueryMerchantScore ──► fraud/merchant-scorer (id = merchant)
 *   ReportedFraud ┐
 *   MerchantScore ┴ (either order) once both are in: FeatureVector ──► fraud/model (id = this
 *                   transaction's id)
 *   FraudScore ──► alert to `fraud/alerts` if score > threshold; delete all state
 *
 * Why the model is addressed by the transaction id and not the account (upstream uses the
 * account): the model is stateless, so its id only decides where it runs. statefn, like StateFun,
 * places an address by its id alone, so `fraud/model/<transaction id>` lives on the same worker
 * as `fraud/transaction-manager/<transaction id>`: the FeatureVector and the FraudScore reply
 * never cross threads, and scoring spreads evenly over workers instead of queueing behind hot
 * accounts (an instance handles one message at a time). A model with per-account state (say,
 * a personalised baseline) would need the account as its id instead.
 *
 * Values expire an hour after they were written, so a transaction whose scoring can never
 * finish (a reply dead-lettered after failing) does not keep state forever.
 */
import { Message, Types, defineFunction } from 'statefn';
import {
  ALERTS_EGRESS,
  AlertType,
  FRAUD_COUNT,
  FeatureVectorType,
  FraudScoreType,
  MERCHANT_SCORER,
  MODEL,
  MerchantScoreType,
  QueryFraudType,
  QueryMerchantScoreType,
  ReportedFraudType,
  TRANSACTION_MANAGER,
  TransactionType,
  type Transaction,
} from './types.js';

/** Alert when the model's score is above this. */
export const THRESHOLD_DEFAULT = 0.8;
/** How long a transaction's in-progress state may live, in ms. */
export const PENDING_TTL_MS = 60 * 60 * 1000;

export interface TransactionManagerOptions {
  /** Alert when the model's score is strictly above this (in [0, 1]). */
  threshold?: number;
}

export function createTransactionManager(options: TransactionManagerOptions = {}) {
  const threshold = options.threshold ?? THRESHOLD_DEFAULT;
  if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) {
    throw new RangeError(`transaction-manager: threshold must be a number in [0, 1], got ${String(threshold)}`);
  }
  return defineFunction({
    typename: TRANSACTION_MANAGER,
    specs: [
      { name: 'transaction', type: TransactionType, expireAfterWrite: PENDING_TTL_MS },
      { name: 'fraudCount', type: Types.int, expireAfterWrite: PENDING_TTL_MS },
      { name: 'merchantScore', type: Types.double, expireAfterWrite: PENDING_TTL_MS },
    ],
    handler(ctx, message) {
      const s = ctx.storage;

      /** Once both features are in, ask the model. Called only when one of them just arrived. */
      const scoreIfReady = (transaction: Transaction): void => {
        if (s.fraudCount === undefined || s.merchantScore === undefined) return;
        const features = { fraudCount: s.fraudCount, merchantScore: s.merchantScore, amount: transaction.amount };
        ctx.send({ typename: MODEL, id: ctx.self.id }, Message.of(FeatureVectorType, features));
      };

      if (message.is(TransactionType)) {
        // Transaction ids are fresh; a second transaction with the same id would mix two
        // workflows in one state, so it is dropped.
        if (s.transaction !== undefined) return;
        const transaction = message.as(TransactionType);
        s.transaction = transaction;
        ctx.send({ typename: FRAUD_COUNT, id: transaction.account }, Message.of(QueryFraudType, {}));
        ctx.send({ typename: MERCHANT_SCORER, id: transaction.merchant }, Message.of(QueryMerchantScoreType, {}));
        return;
      }

      // Replies for a transaction that is no longer here (finished, or expired) are ignored, as
      // is a second copy of a reply already recorded: the model is asked exactly once.
      const transaction = s.transaction;
      if (message.is(ReportedFraudType)) {
        if (transaction === undefined || s.fraudCount !== undefined) return;
        s.fraudCount = message.as(ReportedFraudType).count;
        scoreIfReady(transaction);
        return;
      }
      if (message.is(MerchantScoreType)) {
        if (transaction === undefined || s.merchantScore !== undefined) return;
        s.merchantScore = message.as(MerchantScoreType).score;
        scoreIfReady(transaction);
        return;
      }
      if (message.is(FraudScoreType)) {
        if (transaction === undefined || s.fraudCount === undefined || s.merchantScore === undefined) return;
        const { score } = message.as(FraudScoreType);
        if (score > threshold) {
          ctx.egress(
            ALERTS_EGRESS,
            Message.of(AlertType, {
              transactionId: ctx.self.id,
              account: transaction.account,
              merchant: transaction.merchant,
              amount: transaction.amount,
              score,
            }),
          );
        }
        s.transaction = undefined;
        s.fraudCount = undefined;
        s.merchantScore = undefined;
        return;
      }
      throw new Error(`${TRANSACTION_MANAGER}: unexpected message type ${message.typename}`);
    },
  });
}
