// Proves the fraud-detection example's handlers (transaction flow, fraud-count expiry, alert
// threshold, state clearing), its generators and its tee egress behave as designed, using a
// hand-driven in-test Context.
import { describe, expect, it } from 'vitest';
import { formatAddress, type Address } from '../../api/address.js';
import type { EgressConnector, EgressRecord } from '../../api/connector_api.js';
import type { Context, ValueSpec } from '../../api/function_api.js';
import { Message } from '../../api/message.js';
import { createRng } from '../../connectors/generator/rng.js';
import { FRAUD_WINDOW_MS_DEFAULT, createFraudCount } from '../../examples/fraud_detection/fraud_count.js';
import { merchantRisk, merchantScorer } from '../../examples/fraud_detection/merchant_scorer.js';
import { model, scoreFeatures } from '../../examples/fraud_detection/model.js';
import { TeeEgress } from '../../examples/fraud_detection/tee_egress.js';
import { createTransactionManager } from '../../examples/fraud_detection/transaction_manager.js';
import {
  ALERTS_EGRESS,
  AlertType,
  ConfirmFraudType,
  ExpireFraudType,
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
} from '../../examples/fraud_detection/types.js';

// ---- a hand-driven context ----

interface Sent {
  to: Address;
  message: Message;
}
interface Delayed extends Sent {
  delayMs: number;
  token: string | undefined;
}
interface Egressed {
  egressId: string;
  message: Message;
}
interface Effects {
  sent: Sent[];
  delayed: Delayed[];
  egressed: Egressed[];
}

type AnyHandler = (ctx: Context<Record<string, unknown>>, message: Message) => void | Promise<void>;
/** Any FunctionSpec: `never` accepts every handler's typed context. */
interface AnySpec {
  readonly typename: string;
  readonly specs?: readonly ValueSpec[];
  readonly handler: (ctx: never, message: Message) => void | Promise<void>;
}

/**
 * Function instances with their state as plain objects, invoked one message at a time. Like the
 * engine, a handler works on a staged copy of its storage that is committed only if it returns,
 * and every committed value goes through its declared type's bytes (so a value the type cannot
 * carry fails here as it would in the engine).
 */
class World {
  readonly states = new Map<string, Record<string, unknown>>();
  private readonly functions = new Map<string, AnySpec>();
  nowMs = Date.UTC(2026, 0, 1);

  constructor(...specs: AnySpec[]) {
    for (const s of specs) this.functions.set(s.typename, s);
  }

  /** The committed state of an instance (empty object if it has none). */
  state(to: Address): Record<string, unknown> {
    return this.states.get(formatAddress(to)) ?? {};
  }

  setState(to: Address, values: Record<string, unknown>): void {
    this.states.set(formatAddress(to), { ...values });
  }

  async deliver(to: Address, message: Message, caller?: Address): Promise<Effects> {
    const spec = this.functions.get(to.typename);
    if (spec === undefined) throw new Error(`no function ${to.typename}`);
    const staged: Record<string, unknown> = { ...this.state(to) };
    const effects: Effects = { sent: [], delayed: [], egressed: [] };
    const ctx: Context<Record<string, unknown>> = {
      self: to,
      caller,
      storage: staged,
      send: (target, m) => void effects.sent.push({ to: target, message: m }),
      sendAfter: (delayMs, target, m, token) => void effects.delayed.push({ delayMs, to: target, message: m, token }),
      cancelDelayedMessage: () => {
        throw new Error('not used by the fraud example');
      },
      egress: (egressId, m) => void effects.egressed.push({ egressId, message: m }),
      now: () => this.nowMs,
    };
    await (spec.handler as AnyHandler)(ctx, message);
    const committed: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(staged)) {
      const declared = spec.specs?.find((v) => v.name === name);
      if (declared === undefined) throw new Error(`${to.typename} wrote undeclared state '${name}'`);
      if (value === undefined) continue;
      declared.type.check?.(value);
      committed[name] = declared.type.deserialize(declared.type.serialize(value));
    }
    this.states.set(formatAddress(to), committed);
    return effects;
  }
}

const TM_THRESHOLD = 0.8;
const EXPIRE_MS = 1000;

function world(threshold = TM_THRESHOLD): World {
  return new World(createTransactionManager({ threshold }), createFraudCount({ expireAfterMs: EXPIRE_MS }), merchantScorer, model);
}

const tm = (id: string): Address => ({ typename: TRANSACTION_MANAGER, id });
const fraudCount = (account: string): Address => ({ typename: FRAUD_COUNT, id: account });
const merchant = (id: string): Address => ({ typename: MERCHANT_SCORER, id });

function tx(id: string, over: Partial<Transaction> = {}): Transaction {
  return { id, account: 'acct-7', merchant: 'merch-3', amount: 120.5, timestamp: Date.UTC(2026, 0, 1), ...over };
}

/** The only message sent, checked to go to `to`. */
function onlySend(e: Effects, to: Address): Message {
  expect(e.sent.map((s) => s.to)).toEqual([to]);
  return e.sent[0]!.message;
}

function noEffects(e: Effects): void {
  expect(e).toEqual({ sent: [], delayed: [], egressed: [] });
}

/** Take a transaction manager from a Transaction to the point where it waits for the model's score. */
async function untilScoring(w: World, t: Transaction, fraud = 0, risk = 0.5): Promise<void> {
  await w.deliver(tm(t.id), Message.of(TransactionType, t));
  await w.deliver(tm(t.id), Message.of(ReportedFraudType, { count: fraud }), fraudCount(t.account));
  const e = await w.deliver(tm(t.id), Message.of(MerchantScoreType, { score: risk }), merchant(t.merchant));
  expect(onlySend(e, { typename: MODEL, id: t.id }).as(FeatureVectorType)).toEqual({
    fraudCount: fraud,
    merchantScore: risk,
    amount: t.amount,
  });
}

// ---- the handlers ----

describe('fraud/transaction-manager: the full flow, replies driven by hand', () => {
  it('queries both features, asks the model once both are in, alerts on a high score and clears its state', async () => {
    const w = world();
    const t = tx('t-1', { amount: 5000 });
    // Five confirmed frauds on the account.
    for (let i = 0; i < 5; i++) await w.deliver(fraudCount(t.account), Message.of(ConfirmFraudType, { account: t.account, timestamp: 0 }));

    // 1. The transaction arrives from the ingress (no caller): stored, two queries out.
    let e = await w.deliver(tm(t.id), Message.of(TransactionType, t));
    expect(e.sent.map((s) => [s.to, s.message.typename])).toEqual([
      [fraudCount('acct-7'), QueryFraudType.typename],
      [merchant('merch-3'), QueryMerchantScoreType.typename],
    ]);
    expect(w.state(tm(t.id))).toEqual({ transaction: t });
    const [queryFraud, queryMerchant] = e.sent;

    // 2. The merchant answers first (replies may come in either order).
    e = await w.deliver(queryMerchant!.to, queryMerchant!.message, tm(t.id));
    const merchantReply = onlySend(e, tm(t.id));
    expect(merchantReply.as(MerchantScoreType)).toEqual({ score: merchantRisk('merch-3') });
    e = await w.deliver(tm(t.id), merchantReply, queryMerchant!.to);
    noEffects(e); // still waiting for the fraud count
    expect(w.state(tm(t.id))).toEqual({ transaction: t, merchantScore: merchantRisk('merch-3') });

    // 3. The fraud count answers: now the feature vector goes to the model, addressed by transaction.
    e = await w.deliver(queryFraud!.to, queryFraud!.message, tm(t.id));
    const fraudReply = onlySend(e, tm(t.id));
    expect(fraudReply.as(ReportedFraudType)).toEqual({ count: 5 });
    e = await w.deliver(tm(t.id), fraudReply, queryFraud!.to);
    const features = onlySend(e, { typename: MODEL, id: 't-1' });
    expect(features.as(FeatureVectorType)).toEqual({ fraudCount: 5, merchantScore: merchantRisk('merch-3'), amount: 5000 });

    // 4. The model scores and replies to its caller.
    e = await w.deliver({ typename: MODEL, id: 't-1' }, features, tm(t.id));
    const scoreReply = onlySend(e, tm(t.id));
    const { score } = scoreReply.as(FraudScoreType);
    expect(score).toBe(scoreFeatures({ fraudCount: 5, merchantScore: merchantRisk('merch-3'), amount: 5000 }));
    expect(score).toBeGreaterThan(0.9);

    // 5. The score comes back: alert, and nothing is left in state.
    e = await w.deliver(tm(t.id), scoreReply, { typename: MODEL, id: 't-1' });
    expect(e.sent).toEqual([]);
    expect(e.egressed.map((x) => x.egressId)).toEqual([ALERTS_EGRESS]);
    expect(e.egressed[0]!.message.typename).toBe(AlertType.typename);
    expect(e.egressed[0]!.message.as(AlertType)).toEqual({
      transactionId: 't-1',
      account: 'acct-7',
      merchant: 'merch-3',
      amount: 5000,
      score,
    });
    expect(w.state(tm(t.id))).toEqual({});
  });

  it('asks the model exactly once when a reply is duplicated, and ignores replies for unknown or finished transactions', async () => {
    const w = world();
    const t = tx('t-2');
    noEffects(await w.deliver(tm(t.id), Message.of(ReportedFraudType, { count: 3 }), fraudCount(t.account)));
    expect(w.state(tm(t.id))).toEqual({});

    await untilScoring(w, t, 0, 0.25);
    noEffects(await w.deliver(tm(t.id), Message.of(ReportedFraudType, { count: 9 }), fraudCount(t.account)));
    noEffects(await w.deliver(tm(t.id), Message.of(MerchantScoreType, { score: 0.9 }), merchant(t.merchant)));
    expect(w.state(tm(t.id))).toEqual({ transaction: t, fraudCount: 0, merchantScore: 0.25 });

    await w.deliver(tm(t.id), Message.of(FraudScoreType, { score: 0.1 }));
    noEffects(await w.deliver(tm(t.id), Message.of(FraudScoreType, { score: 0.99 })));
    noEffects(await w.deliver(tm(t.id), Message.of(MerchantScoreType, { score: 0.9 }), merchant(t.merchant)));
    expect(w.state(tm(t.id))).toEqual({});
  });

  it('drops a second transaction with an id that is already being scored', async () => {
    const w = world();
    await w.deliver(tm('t-3'), Message.of(TransactionType, tx('t-3')));
    noEffects(await w.deliver(tm('t-3'), Message.of(TransactionType, tx('t-3', { account: 'acct-9' }))));
    expect(w.state(tm('t-3'))).toEqual({ transaction: tx('t-3') });
  });

  it('rejects a message type it does not handle', async () => {
    await expect(world().deliver(tm('t-4'), Message.of(ExpireFraudType, {}))).rejects.toThrow(
      /unexpected message type fraud.types\/ExpireFraud/,
    );
  });
});

describe('fraud/transaction-manager: alerts only above the threshold', () => {
  const cases: Array<[threshold: number, score: number, alert: boolean]> = [
    [0.8, 0.79, false],
    [0.8, 0.8, false], // strictly above
    [0.8, 0.8001, true],
    [0.8, 1, true],
    [0.5, 0.6, true],
    [0.5, 0.4, false],
  ];
  for (const [threshold, score, alert] of cases) {
    it(`threshold ${threshold}, score ${score}: ${alert ? 'alert' : 'no alert'}, state cleared either way`, async () => {
      const w = world(threshold);
      const t = tx(`t-${score}`);
      await untilScoring(w, t, 2, 0.4);
      const e = await w.deliver(tm(t.id), Message.of(FraudScoreType, { score }), { typename: MODEL, id: t.id });
      expect(e.sent).toEqual([]);
      if (alert) {
        expect(e.egressed).toHaveLength(1);
        expect(e.egressed[0]!.egressId).toBe(ALERTS_EGRESS);
        expect(e.egressed[0]!.message.as(AlertType)).toEqual({
          transactionId: t.id,
          account: t.account,
          merchant: t.merchant,
          amount: t.amount,
          score,
        });
      } else {
        expect(e.egressed).toEqual([]);
      }
      expect(w.state(tm(t.id))).toEqual({});
    });
  }

  it('uses 0.8 by default and refuses a threshold outside [0, 1]', async () => {
    const w = new World(createTransactionManager());
    const t = tx('t-default');
    await untilScoring(w, t);
    expect((await w.deliver(tm(t.id), Message.of(FraudScoreType, { score: 0.8 }))).egressed).toEqual([]);
    await untilScoring(w, t);
    expect((await w.deliver(tm(t.id), Message.of(FraudScoreType, { score: 0.81 }))).egressed).toHaveLength(1);
    expect(() => createTransactionManager({ threshold: 1.5 })).toThrow(/threshold/);
    expect(() => createTransactionManager({ threshold: Number.NaN })).toThrow(/threshold/);
  });

  it('declares its state with a time-to-live so an unfinished transaction cannot keep it forever', () => {
    const specs = createTransactionManager().specs ?? [];
    expect(specs.map((s) => s.name)).toEqual(['transaction', 'fraudCount', 'merchantScore']);
    for (const s of specs) expect(s.expireAfterWrite).toBeGreaterThan(0);
  });
});

describe('fraud/fraud-count', () => {
  const acct = fraudCount('acct-1');
  const confirm = Message.of(ConfirmFraudType, { account: 'acct-1', timestamp: 0 });
  const query = async (w: World): Promise<number> =>
    onlySend(await w.deliver(acct, Message.of(QueryFraudType, {}), tm('t-q')), tm('t-q')).as(ReportedFraudType).count;

  it('counts a confirmation until its delayed ExpireFraud comes back, then forgets it', async () => {
    const w = world();
    expect(await query(w)).toBe(0);

    const e1 = await w.deliver(acct, confirm);
    const e2 = await w.deliver(acct, confirm);
    for (const e of [e1, e2]) {
      expect(e.sent).toEqual([]);
      expect(e.delayed).toHaveLength(1);
      expect(e.delayed[0]!.delayMs).toBe(EXPIRE_MS);
      expect(e.delayed[0]!.to).toEqual(acct); // to itself
      expect(e.delayed[0]!.message.is(ExpireFraudType)).toBe(true);
    }
    expect(w.state(acct)).toEqual({ count: 2 });
    expect(await query(w)).toBe(2);

    // The engine delivers the delayed messages when they are due.
    noEffects(await w.deliver(acct, e1.delayed[0]!.message, acct));
    expect(await query(w)).toBe(1);
    noEffects(await w.deliver(acct, e2.delayed[0]!.message, acct));
    expect(await query(w)).toBe(0);
    expect(w.state(acct)).toEqual({}); // deleted, not kept as 0

    // An expiry with nothing to expire (e.g. state lost to a TTL) never goes negative.
    await w.deliver(acct, Message.of(ExpireFraudType, {}), acct);
    expect(w.state(acct)).toEqual({});
  });

  it('uses a 30-day window by default', async () => {
    const w = new World(createFraudCount());
    const e = await w.deliver(acct, confirm);
    expect(e.delayed[0]!.delayMs).toBe(30 * 24 * 60 * 60 * 1000);
    expect(FRAUD_WINDOW_MS_DEFAULT).toBe(2_592_000_000);
    expect(() => createFraudCount({ expireAfterMs: 0 })).toThrow(/expireAfterMs/);
  });

  it('refuses a query it cannot answer (no caller)', async () => {
    await expect(world().deliver(acct, Message.of(QueryFraudType, {}))).rejects.toThrow(/no caller/);
  });
});

describe('fraud/merchant-scorer and fraud/model', () => {
  it('scores a merchant deterministically in [0, 1], keeps the score in state and replies to the caller', async () => {
    const w = world();
    const e = await w.deliver(merchant('merch-42'), Message.of(QueryMerchantScoreType, {}), tm('t-9'));
    const { score } = onlySend(e, tm('t-9')).as(MerchantScoreType);
    expect(score).toBe(merchantRisk('merch-42'));
    expect(w.state(merchant('merch-42'))).toEqual({ score });
    const again = await w.deliver(merchant('merch-42'), Message.of(QueryMerchantScoreType, {}), tm('t-10'));
    expect(onlySend(again, tm('t-10')).as(MerchantScoreType)).toEqual({ score });

    const risks = Array.from({ length: 1000 }, (_, i) => merchantRisk(`merch-${i}`));
    expect(Math.min(...risks)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...risks)).toBeLessThanOrEqual(1);
    const mean = risks.reduce((a, b) => a + b, 0) / risks.length;
    expect(mean).toBeGreaterThan(0.25); // the square of a uniform variable: mean 1/3
    expect(mean).toBeLessThan(0.42);
  });

  it('model: replies FraudScore to its caller; more fraud, a riskier merchant or a larger amount never lower the score', async () => {
    const w = world();
    const v = { fraudCount: 3, merchantScore: 0.5, amount: 300 };
    const e = await w.deliver({ typename: MODEL, id: 't-5' }, Message.of(FeatureVectorType, v), tm('t-5'));
    expect(onlySend(e, tm('t-5')).as(FraudScoreType)).toEqual({ score: scoreFeatures(v) });

    const base = scoreFeatures(v);
    expect(scoreFeatures({ ...v, fraudCount: 4 })).toBeGreaterThan(base);
    expect(scoreFeatures({ ...v, merchantScore: 0.6 })).toBeGreaterThan(base);
    expect(scoreFeatures({ ...v, amount: 400 })).toBeGreaterThan(base);
    // Saturation: beyond five confirmed frauds the count adds nothing.
    expect(scoreFeatures({ ...v, fraudCount: 50 })).toBe(scoreFeatures({ ...v, fraudCount: 5 }));
    // An account with no confirmed fraud is not flagged at the default threshold, even at the
    // riskiest merchant, unless the amount is in the thousands (generated amounts are
    // exponential with mean ~80: above 1,000 about once in 10^5, above 2,800 practically never).
    expect(scoreFeatures({ fraudCount: 0, merchantScore: 1, amount: 1000 })).toBeLessThan(0.8);
    expect(scoreFeatures({ fraudCount: 0, merchantScore: 1, amount: 2800 })).toBeLessThan(0.8);
    expect(scoreFeatures({ fraudCount: 0, merchantScore: 0.5, amount: 5000 })).toBeLessThan(0.8);
    // Five confirmed frauds and a risky merchant: flagged whatever the amount.
    expect(scoreFeatures({ fraudCount: 5, merchantScore: 0.95, amount: 1 })).toBeGreaterThan(0.8);
  });
});

// ---- generators and routers (pure parts of app.ts) ----

describe('generated records and their routes', async () => {
  // app.ts also imports the file egress; load it lazily so these handler tests do not depend on it.
  const app = await import('../../examples/fraud_detection/app.js');

  it('transaction n goes to transaction-manager t-<n>, deterministically from the seed', () => {
    const a = app.makeTransaction(17, createRng(42, 17), 10_000, 1_000, 2000);
    const b = app.makeTransaction(17, createRng(42, 17), 10_000, 1_000, 2000);
    expect(a).toEqual(b);
    expect(a.id).toBe('t-17');
    expect(a.account).toMatch(/^acct-\d+$/);
    expect(a.merchant).toMatch(/^merch-\d+$/);
    expect(a.amount).toBeGreaterThanOrEqual(1);
    expect(a.amount).toBeLessThanOrEqual(5000);
    expect(a.timestamp).toBe(app.SIMULATION_EPOCH_MS + Math.floor((17 * 1000) / 2000));
    const routed = app.routeTransaction(a);
    expect(routed.to).toEqual(tm('t-17'));
    expect(routed.message.as(TransactionType)).toEqual(a);
  });

  it('confirmed frauds fall on the 1% compromised accounts and go to their fraud-count', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const c = app.makeConfirmation(i, createRng(43, i), 10_000, 50);
      const n = Number(c.account.slice('acct-'.length));
      expect(n).toBeGreaterThanOrEqual(0);
      expect(n).toBeLessThan(100);
      seen.add(c.account);
      const routed = app.routeConfirmation(c);
      expect(routed.to).toEqual(fraudCount(c.account));
      expect(routed.message.as(ConfirmFraudType)).toEqual(c);
    }
    expect(seen.size).toBeGreaterThan(50);
  });

  it('createFraudApp registers the four functions, both routed ingresses and one alerts egress, without I/O', () => {
    const alertsPath = `/nonexistent-dir-${process.pid}/alerts.jsonl`;
    const fraud = app.createFraudApp({ alertsPath });
    expect([...fraud.functions.keys()].sort()).toEqual([FRAUD_COUNT, MODEL, MERCHANT_SCORER, TRANSACTION_MANAGER].sort());
    expect(fraud.ingresses.map((i) => i.connector.id)).toEqual(['fraud/transactions', 'fraud/confirmed-fraud']);
    for (const i of fraud.ingresses) expect(typeof i.router).toBe('function');
    expect([...fraud.egresses.keys()]).toEqual([ALERTS_EGRESS]);
    expect(app.createFraudApp({ confirmationsPerSec: 0 }).ingresses).toHaveLength(1);
    expect(() => app.createFraudApp({ accounts: 0 })).toThrow(/accounts/);
    expect(() => app.createFraudApp({ threshold: 2 })).toThrow(/threshold/);
  });
});

// ---- the tee egress ----

class FakeEgress implements EgressConnector {
  readonly writes: EgressRecord[][] = [];
  failNext = 0;
  started = 0;
  flushed = 0;
  stopped = 0;
  constructor(readonly id: string) {}
  start(): void {
    this.started++;
  }
  write(records: readonly EgressRecord[]): void {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error(`${this.id} is down`);
    }
    this.writes.push([...records]);
  }
  flush(): void {
    this.flushed++;
  }
  stop(): void {
    this.stopped++;
  }
}

describe('TeeEgress', () => {
  const alert = (n: number): EgressRecord => ({
    egressId: ALERTS_EGRESS,
    message: Message.of(AlertType, { transactionId: `t-${n}`, account: 'a', merchant: 'm', amount: n, score: 0.9 }),
  });
  const signal = new AbortController().signal;
  const logger = { info() {}, warn() {}, error() {} };

  it('forwards start, every batch, flush and stop to each target', async () => {
    const a = new FakeEgress('x/a');
    const b = new FakeEgress('x/b');
    const tee = new TeeEgress({ id: ALERTS_EGRESS, targets: [a, b] });
    expect(tee.id).toBe(ALERTS_EGRESS);
    await tee.start({ logger, signal, deadLetter: () => {}, lineage: 'test' });
    await tee.write([alert(1), alert(2)]);
    await tee.write([alert(3)]);
    await tee.flush();
    await tee.stop();
    for (const t of [a, b]) {
      expect(t.writes.map((w) => w.map((r) => r.message.as(AlertType).transactionId))).toEqual([['t-1', 't-2'], ['t-3']]);
      expect([t.started, t.flushed, t.stopped]).toEqual([1, 1, 1]);
    }
  });

  it('on a retry after a failing target, does not write the batch again to the targets that took it', async () => {
    const file = new FakeEgress('x/file');
    const stdout = new FakeEgress('x/stdout');
    const tee = new TeeEgress({ id: ALERTS_EGRESS, targets: [stdout, file] });
    file.failNext = 2;
    const batch = [alert(1), alert(2)];
    await expect(tee.write(batch)).rejects.toThrow(/x\/file is down/);
    // The engine may rebuild the array for the retry: same records by content count as the same batch.
    await expect(tee.write(batch.map((r) => ({ ...r })))).rejects.toThrow(/down/);
    await tee.write(batch);
    expect(stdout.writes).toHaveLength(1);
    expect(file.writes).toHaveLength(1);
    // A different batch after that goes to both.
    await tee.write([alert(3)]);
    expect(stdout.writes).toHaveLength(2);
    expect(file.writes).toHaveLength(2);
  });

  it('needs at least one target', () => {
    expect(() => new TeeEgress({ id: ALERTS_EGRESS, targets: [] })).toThrow(/at least one target/);
  });
});
