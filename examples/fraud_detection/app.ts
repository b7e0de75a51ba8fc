/**
 * The fraud-detection app: four functions, two generated streams and an alerts egress.
 *
 *   fraud/transactions ──► fraud/transaction-manager ◄──► fraud/fraud-count (per account)
 *   (generator, t-<n>)        (per transaction)     ◄──► fraud/merchant-scorer (per merchant)
 *                                   │  ▲
 *                       FeatureVector  FraudScore
 *                                   ▼  │
 *                              fraud/model ── score > threshold ──► fraud/alerts (file + stdout)
 *
 *   fraud/confirmed-fraud ──► fraud/fraud-count (count + 1, expiring after 30 days)
 *
 * The generated data is shaped so the alert rate settles quickly instead of growing for 30
 * days: confirmed frauds fall only on a small set of compromised accounts (1% of them, skewed by
 * a Zipf law), while transactions are spread uniformly over all accounts. Alerts therefore come
 * from the ~1% of transactions made on compromised accounts, and of those from the ones at risky
 * merchants or with large amounts.
 */
import { App, FileEgress, GeneratorIngress, Message, StdoutEgress, type Rng, type RoutedMessage } from 'statefn';
import { createFraudCount } from './fraud_count.js';
import { merchantScorer } from './merchant_scorer.js';
import { model } from './model.js';
import { createTransactionManager } from './transaction_manager.js';
import { TeeEgress } from './tee_egress.js';
import {
  ALERTS_EGRESS,
  CONFIRMED_FRAUD_INGRESS,
  ConfirmFraudType,
  FRAUD_COUNT,
  TRANSACTIONS_INGRESS,
  TRANSACTION_MANAGER,
  TransactionType,
  type ConfirmFraud,
  type Transaction,
} from './types.js';

export interface FraudAppOptions {
  /** Generated transactions per second (default 2000). */
  transactionsPerSec?: number;
  /** Generated fraud confirmations per second (default 50; 0 turns the stream off). */
  confirmationsPerSec?: number;
  /**
   * Transactions to generate before the stream ends (default: unbounded). The confirmations
   * stream then ends after the same time, with `count * confirmationsPerSec / transactionsPerSec`
   * records.
   */
  count?: number;
  /** Distinct accounts (default 10,000). */
  accounts?: number;
  /** Distinct merchants (default 1,000). */
  merchants?: number;
  /** Seed of the generators (default 42); the confirmations stream uses `seed + 1`. */
  seed?: number;
  /** File the alerts are appended to as JSON lines (default `./statefn-data/alerts.jsonl`). */
  alertsPath?: string;
  /** Alert when the model's score is above this (default 0.8). */
  threshold?: number;
  /** How long a confirmed fraud counts against its account, in ms (default 30 days). */
  expireAfterMs?: number;
}

export const FRAUD_APP_DEFAULTS = {
  transactionsPerSec: 2000,
  confirmationsPerSec: 50,
  accounts: 10_000,
  merchants: 1_000,
  seed: 42,
  alertsPath: './statefn-data/alerts.jsonl',
} as const;

/** Share of accounts that confirmed frauds fall on. */
export const COMPROMISED_SHARE = 0.01;
/** Zipf exponents: merchant popularity, and how concentrated frauds are on compromised accounts. */
const MERCHANT_ZIPF_S = 1.1;
const FRAUD_ZIPF_S = 0.5;
/** Amounts: exponential with this mean, plus one, capped at AMOUNT_MAX. */
const AMOUNT_MEAN = 80;
const AMOUNT_MAX = 5_000;

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`createFraudApp: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/**
 * Generated records carry event time on a simulated clock that starts at SIMULATION_EPOCH_MS and
 * advances at the stream's configured rate. A generator's `make` must depend only on its
 * arguments (records are regenerated from a checkpointed position after a crash), so wall-clock
 * time is not an option.
 */
export const SIMULATION_EPOCH_MS = Date.UTC(2026, 0, 1);

function eventTime(index: number, ratePerSec: number): number {
  return SIMULATION_EPOCH_MS + Math.floor((index * 1000) / ratePerSec);
}

/** The `index`-th generated transaction. */
export function makeTransaction(index: number, rng: Rng, accounts: number, merchants: number, ratePerSec: number): Transaction {
  const account = `acct-${rng.int(accounts)}`;
  const merchant = `merch-${rng.zipf(merchants, MERCHANT_ZIPF_S)}`;
  const exp = -Math.log(1 - rng.next()) * AMOUNT_MEAN;
  const amount = Math.min(AMOUNT_MAX, Math.round((1 + exp) * 100) / 100);
  return { id: `t-${index}`, account, merchant, amount, timestamp: eventTime(index, ratePerSec) };
}

/** The `index`-th generated fraud confirmation: always on one of the compromised accounts. */
export function makeConfirmation(index: number, rng: Rng, accounts: number, ratePerSec: number): ConfirmFraud {
  const compromised = Math.max(1, Math.round(accounts * COMPROMISED_SHARE));
  return { account: `acct-${rng.zipf(compromised, FRAUD_ZIPF_S)}`, timestamp: eventTime(index, ratePerSec) };
}

export function routeTransaction(t: Transaction): RoutedMessage {
  return { to: { typename: TRANSACTION_MANAGER, id: t.id }, message: Message.of(TransactionType, t) };
}

export function routeConfirmation(c: ConfirmFraud): RoutedMessage {
  return { to: { typename: FRAUD_COUNT, id: c.account }, message: Message.of(ConfirmFraudType, c) };
}

export function createFraudApp(options: FraudAppOptions = {}): App {
  const d = FRAUD_APP_DEFAULTS;
  const transactionsPerSec = options.transactionsPerSec ?? d.transactionsPerSec;
  const confirmationsPerSec = options.confirmationsPerSec ?? d.confirmationsPerSec;
  const accounts = positiveInt('accounts', options.accounts ?? d.accounts);
  const merchants = positiveInt('merchants', options.merchants ?? d.merchants);
  const seed = options.seed ?? d.seed;
  if (!(transactionsPerSec > 0)) throw new RangeError(`createFraudApp: transactionsPerSec must be > 0, got ${String(transactionsPerSec)}`);
  if (!(confirmationsPerSec >= 0))
    throw new RangeError(`createFraudApp: confirmationsPerSec must be >= 0, got ${String(confirmationsPerSec)}`);
  if (options.count !== undefined && !(Number.isInteger(options.count) && options.count >= 0)) {
    throw new RangeError(`createFraudApp: count must be a non-negative integer, got ${String(options.count)}`);
  }

  const app = new App()
    .function(createTransactionManager(options.threshold === undefined ? {} : { threshold: options.threshold }))
    .function(createFraudCount(options.expireAfterMs === undefined ? {} : { expireAfterMs: options.expireAfterMs }))
    .function(merchantScorer)
    .function(model);

  app.ingress(
    new GeneratorIngress<Transaction>({
      id: TRANSACTIONS_INGRESS,
      ratePerSec: transactionsPerSec,
      ...(options.count === undefined ? {} : { count: options.count }),
      seed,
      make: (index, rng) => makeTransaction(index, rng, accounts, merchants, transactionsPerSec),
    }),
    routeTransaction,
  );

  if (confirmationsPerSec > 0) {
    const count = options.count === undefined ? undefined : Math.ceil((options.count * confirmationsPerSec) / transactionsPerSec);
    app.ingress(
      new GeneratorIngress<ConfirmFraud>({
        id: CONFIRMED_FRAUD_INGRESS,
        ratePerSec: confirmationsPerSec,
        ...(count === undefined ? {} : { count }),
        seed: seed + 1,
        make: (index, rng) => makeConfirmation(index, rng, accounts, confirmationsPerSec),
      }),
      routeConfirmation,
    );
  }

  // One egress id, two sinks: the durable file for downstream tools, stdout for the operator.
  app.egress(
    new TeeEgress({
      id: ALERTS_EGRESS,
      targets: [
        new FileEgress({ id: `${ALERTS_EGRESS}-file`, path: options.alertsPath ?? d.alertsPath }),
        new StdoutEgress({ id: `${ALERTS_EGRESS}-stdout`, format: 'json-lines' }),
      ],
    }),
  );
  return app;
}
