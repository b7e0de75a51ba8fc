/**
 * The fraud-detection example's identifiers and message types. Every message is a JSON type
 * (`Types.json`) under the `fraud.types` namespace, so remote functions in any StateFun SDK can
 * read them (`make_json_type('fraud.types/Transaction')` in Python, for instance).
 *
 * The model follows the Ververica StateFun workshop's fraud example: a transaction manager per
 * transaction asks a per-account fraud counter and a per-merchant scorer for features, hands the
 * feature vector to a model and raises an alert when the model's score is high.
 */
import { Types } from 'statefn';

// ---- function types and egress ids ----

/** Per account: confirmed frauds in a rolling window. */
export const FRAUD_COUNT = 'fraud/fraud-count';
/** Per merchant: how risky the merchant is. */
export const MERCHANT_SCORER = 'fraud/merchant-scorer';
/** Per transaction: gathers features, asks the model, raises alerts. */
export const TRANSACTION_MANAGER = 'fraud/transaction-manager';
/** Stateless scoring model (addressed by transaction id, see transaction_manager.ts). */
export const MODEL = 'fraud/model';

/** Ingress of card transactions. */
export const TRANSACTIONS_INGRESS = 'fraud/transactions';
/** Ingress of frauds that customers confirmed. */
export const CONFIRMED_FRAUD_INGRESS = 'fraud/confirmed-fraud';
/** Egress of alerts for suspicious transactions. */
export const ALERTS_EGRESS = 'fraud/alerts';

// ---- messages ----

/** A card transaction, as it enters through the `fraud/transactions` ingress. */
export interface Transaction {
  /** Transaction id; also the id of the transaction manager that handles it (`t-<index>`). */
  id: string;
  account: string;
  merchant: string;
  /** Amount in currency units (two decimals). */
  amount: number;
  /** When the transaction happened, ms since the epoch (simulated event time when generated). */
  timestamp: number;
}

/** A customer confirmed that a transaction on `account` was fraudulent. */
export interface ConfirmFraud {
  account: string;
  timestamp: number;
}

/** Sent by fraud-count to itself when a confirmation leaves the rolling window. */
export type ExpireFraud = Record<string, never>;

/** Asks fraud-count for the account's current count; the answer goes to the caller. */
export type QueryFraud = Record<string, never>;

/** fraud-count's answer to a `QueryFraud`. */
export interface ReportedFraud {
  count: number;
}

/** Asks merchant-scorer for the merchant's score; the answer goes to the caller. */
export type QueryMerchantScore = Record<string, never>;

/** merchant-scorer's answer: the merchant's risk in [0, 1] (0 = trusted, 1 = risky). */
export interface MerchantScore {
  score: number;
}

/** The features the model scores. */
export interface FeatureVector {
  /** Confirmed frauds on the account within the rolling window. */
  fraudCount: number;
  /** The merchant's risk in [0, 1]. */
  merchantScore: number;
  /** The transaction amount. */
  amount: number;
}

/** The model's answer: the probability in [0, 1] that the transaction is fraudulent. */
export interface FraudScore {
  score: number;
}

/** What the `fraud/alerts` egress receives for a transaction scored above the threshold. */
export interface Alert {
  transactionId: string;
  account: string;
  merchant: string;
  amount: number;
  score: number;
}

export const TransactionType = Types.json<Transaction>('fraud.types/Transaction');
export const ConfirmFraudType = Types.json<ConfirmFraud>('fraud.types/ConfirmFraud');
export const ExpireFraudType = Types.json<ExpireFraud>('fraud.types/ExpireFraud');
export const QueryFraudType = Types.json<QueryFraud>('fraud.types/QueryFraud');
export const ReportedFraudType = Types.json<ReportedFraud>('fraud.types/ReportedFraud');
export const QueryMerchantScoreType = Types.json<QueryMerchantScore>('fraud.types/QueryMerchantScore');
export const MerchantScoreType = Types.json<MerchantScore>('fraud.types/MerchantScore');
export const FeatureVectorType = Types.json<FeatureVector>('fraud.types/FeatureVector');
export const FraudScoreType = Types.json<FraudScore>('fraud.types/FraudScore');
export const AlertType = Types.json<Alert>('fraud.types/Alert');
