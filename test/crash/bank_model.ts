// The model of the bank crash test: the seeded transfers (pure in (seed, index)) and the check of
// a final state against them: money conserved, every acknowledged transfer applied exactly once
// (debit, credit, replace), a transfer never acknowledged at most once, nothing else applied, and
// the audit trail (an exactly-once egress) equal to what the state says was applied.
import { Xoshiro128 } from '../../connectors/generator/rng.js';
import {
  INITIAL_BALANCE,
  accountId,
  type AuditRecord,
  type CreditMode,
  type FailFirst,
  type FinalRecord,
  type Transfer,
} from '../fixtures/apps/bank_app.js';

/** A transfer with the account it is POSTed to. */
export interface BankTransfer extends Transfer {
  from: string;
}

/** Longest delay of a delayed or replacement credit: short, so they land during the run. */
export const CREDIT_DELAY_MAX_MS = 300;

/** Transfer `index` of a run with `seed`: pure in (seed, index). Its id is also its Idempotency-Key. */
export function makeTransfer(seed: number, index: number, accounts: number): BankTransfer {
  const rng = new Xoshiro128(seed, index);
  const from = accountId(rng.int(accounts));
  // Any account, itself included: transfers form arbitrary cycles.
  const to = accountId(rng.int(accounts));
  const amount = 1 + rng.int(100);
  const c = rng.int(100);
  const credit: CreditMode = c < 55 ? 'direct' : c < 80 ? 'delayed' : 'replaced';
  const delayMs = credit === 'direct' ? 0 : 1 + rng.int(CREDIT_DELAY_MAX_MS);
  const f = rng.int(100);
  const failFirst: FailFirst = f < 10 ? 'debit' : f < 20 ? 'credit' : f < 25 && credit === 'replaced' ? 'replace' : 'none';
  return { id: `t${index}`, from, to, amount, credit, delayMs, failFirst };
}

export function makeTransfers(seed: number, count: number, accounts: number): BankTransfer[] {
  return Array.from({ length: count }, (_, i) => makeTransfer(seed, i, accounts));
}

/** What the client learned about a transfer. */
export interface Acknowledgement {
  acknowledged: boolean;
}

/** An effect of a transfer as the state records it: `<id>:<effect>`. */
export type Effect = 'debit' | 'replace' | 'credit' | 'cancelled-credit';
const EFFECTS: readonly Effect[] = ['debit', 'replace', 'credit', 'cancelled-credit'];

/** Where each effect of `t` belongs and how often it must be applied when `t` was applied once. */
function wanted(t: BankTransfer): Map<string, number> {
  const m = new Map<string, number>([
    [`${t.from}|${t.id}:debit`, 1],
    [`${t.to}|${t.id}:credit`, 1],
  ]);
  if (t.credit === 'replaced') m.set(`${t.from}|${t.id}:replace`, 1);
  return m;
}

export interface TransferIssue {
  id: string;
  /** What is wrong, e.g. `debit applied 2 times at a3 (want 1)`. */
  what: string;
  /**
   * `duplicate`: the transfer applied again as a whole (its debit more than once);
   * `duplicate-after-throw`: only effects of a handler that threw on its first attempt applied
   * more than once (what a failed invocation mutated survived it).
   */
  kind: 'lost' | 'duplicate' | 'duplicate-after-throw' | 'cancelled-ran' | 'misplaced' | 'partial';
}

export interface AccountIssue {
  account: string;
  what: string;
}

export interface BankCheck {
  /** Sum of balances minus the initial total (0 when money is conserved). */
  moneyDelta: number;
  /** Accounts missing from the final read. */
  accountsMissing: number;
  /** Accounts whose balance differs from the model. */
  accountsWrong: number;
  /** Accounts whose balance disagrees with their own applied list (state torn between the two). */
  accountsInconsistent: number;
  /** Acknowledged transfers with an effect applied 0 times. */
  lost: number;
  /** Transfers with an effect applied more than once. */
  duplicated: number;
  /** Cancelled credits that were applied. */
  cancelledRan: number;
  /** Cancelled credits applied once where `cancelledMayRun` allows it (not counted in cancelledRan). */
  cancelledRanTolerated: number;
  /** Never-acknowledged transfers applied in part (e.g. debit without credit). */
  partial: number;
  /** Entries of unknown transfers or at the wrong account. */
  unexpectedEntries: number;
  /** Never-acknowledged transfers applied once (allowed; reported). */
  unacknowledgedApplied: number;
  /** Audit lines (exactly-once egress) compared with the model: extra, missing, never expected. */
  auditDuplicates: number;
  auditLosses: number;
  auditUnexpected: number;
  transferIssues: TransferIssue[];
  accountIssues: AccountIssue[];
}

function bump(m: Map<string, number>, k: string, by = 1): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

/**
 * Compare the final read (`bank/final` lines) and the audit trail with the transfers. Amounts come
 * from the model, so an account's balance is also checked against its own applied list.
 * `cancelledMayRun`: an engine was down longer than the cancelled credits' delay, so a cancelled
 * credit may legitimately have been due before its cancel ran (both were restored at once): one
 * such credit is then part of the model instead of an issue.
 */
export function checkBank(
  transfers: readonly BankTransfer[],
  acks: readonly Acknowledgement[],
  accounts: number,
  finals: readonly FinalRecord[],
  auditLines: readonly AuditRecord[],
  cancelledMayRun = false,
): BankCheck {
  const r: BankCheck = {
    moneyDelta: 0,
    accountsMissing: 0,
    accountsWrong: 0,
    accountsInconsistent: 0,
    lost: 0,
    duplicated: 0,
    cancelledRan: 0,
    cancelledRanTolerated: 0,
    partial: 0,
    unexpectedEntries: 0,
    unacknowledgedApplied: 0,
    auditDuplicates: 0,
    auditLosses: 0,
    auditUnexpected: 0,
    transferIssues: [],
    accountIssues: [],
  };
  const byId = new Map(transfers.map((t, i) => [t.id, i] as const));
  const final = new Map<string, FinalRecord>();
  for (const f of finals) {
    if (final.has(f.account)) r.accountIssues.push({ account: f.account, what: 'reported twice in the final read' });
    final.set(f.account, f);
  }
  // Applied entries as the state holds them: `<account>|<id>:<effect>` -> count.
  const got = new Map<string, number>();
  let sum = 0;
  for (let n = 0; n < accounts; n++) {
    const a = accountId(n);
    const f = final.get(a);
    if (f === undefined) {
      r.accountsMissing++;
      r.accountIssues.push({ account: a, what: 'never answered the final read' });
      continue;
    }
    sum += f.balance;
    let own = INITIAL_BALANCE;
    for (const e of f.applied) {
      bump(got, `${a}|${e}`);
      const [id, effect] = e.split(':') as [string, string];
      const i = byId.get(id);
      if (i === undefined || !EFFECTS.includes(effect as Effect)) {
        r.unexpectedEntries++;
        r.accountIssues.push({ account: a, what: `holds '${e}', an entry of no transfer` });
        continue;
      }
      const amount = transfers[i]!.amount;
      if (effect === 'debit') own -= amount;
      if (effect === 'credit' || effect === 'cancelled-credit') own += amount;
    }
    if (own !== f.balance) {
      r.accountsInconsistent++;
      r.accountIssues.push({ account: a, what: `balance ${f.balance} but its applied list adds up to ${own}` });
    }
  }

  // Per transfer: every effect where it belongs, as often as it must be.
  const expectedEntries = new Map<string, number>();
  const expectedBalance = new Map<string, number>();
  const seen = new Set<string>();
  let toleratedTotal = 0;
  for (let i = 0; i < transfers.length; i++) {
    const t = transfers[i]!;
    const w = wanted(t);
    const counts = new Map<string, number>();
    for (const k of w.keys()) counts.set(k, got.get(k) ?? 0);
    for (const k of w.keys()) seen.add(k);
    const cancelledKey = `${t.to}|${t.id}:cancelled-credit`;
    const cancelled = got.get(cancelledKey) ?? 0;
    seen.add(cancelledKey);
    let toleratedCancel = false;
    if (cancelled === 1 && cancelledMayRun && t.credit === 'replaced') {
      r.cancelledRanTolerated++;
      toleratedCancel = true;
    } else if (cancelled > 0) {
      r.cancelledRan++;
      r.transferIssues.push({ id: t.id, kind: 'cancelled-ran', what: `its cancelled credit was applied ${cancelled} times at ${t.to}` });
    }
    const acked = acks[i]?.acknowledged === true;
    const values = [...counts.values()];
    const max = Math.max(...values);
    const min = Math.min(...values);
    const describe = (): string =>
      [...counts].map(([k, c]) => `${k.split(':')[1]} ${c}x at ${k.split('|')[0]}`).join(', ') + (acked ? '' : ' (never acknowledged)');
    let applied = acked ? 1 : max >= 1 ? 1 : 0;
    if (max > 1) {
      r.duplicated++;
      const over = [...counts].filter(([, c]) => c > 1).map(([k]) => k.split(':')[1]);
      const afterThrow = t.failFirst !== 'none' && over.every((e) => e === t.failFirst);
      r.transferIssues.push({
        id: t.id,
        kind: afterThrow ? 'duplicate-after-throw' : 'duplicate',
        what: `applied more than once: ${describe()}`,
      });
      applied = max;
    } else if (acked && min === 0) {
      r.lost++;
      r.transferIssues.push({ id: t.id, kind: 'lost', what: `acknowledged but not applied: ${describe()}` });
    } else if (!acked && min !== max) {
      r.partial++;
      r.transferIssues.push({ id: t.id, kind: 'partial', what: `applied in part: ${describe()}` });
    } else if (!acked && max === 1) r.unacknowledgedApplied++;
    // The model's balances: each transfer applied once (acknowledged, or found applied).
    for (const k of w.keys()) if (applied > 0) bump(expectedEntries, k);
    if (applied > 0) {
      bump(expectedBalance, t.from, -t.amount);
      bump(expectedBalance, t.to, t.amount);
    }
    if (toleratedCancel) {
      bump(expectedEntries, cancelledKey);
      bump(expectedBalance, t.to, t.amount);
      toleratedTotal += t.amount;
    }
  }
  // Money: the initial total, plus the cancelled credits tolerated above (they pay twice).
  r.moneyDelta = sum - accounts * INITIAL_BALANCE - toleratedTotal;
  for (const [k, c] of got) {
    if (seen.has(k)) continue;
    // An entry of a known transfer at an account where it does not belong.
    const [account, entry] = k.split('|') as [string, string];
    if (byId.has(entry.split(':')[0]!)) {
      r.unexpectedEntries++;
      r.transferIssues.push({
        id: entry.split(':')[0]!,
        kind: 'misplaced',
        what: `'${entry}' applied ${c}x at ${account}, where it does not belong`,
      });
    }
  }
  for (let n = 0; n < accounts; n++) {
    const a = accountId(n);
    const f = final.get(a);
    const want = INITIAL_BALANCE + (expectedBalance.get(a) ?? 0);
    if (f !== undefined && f.balance !== want) {
      r.accountsWrong++;
      r.accountIssues.push({ account: a, what: `balance ${f.balance}, model ${want} (${f.balance > want ? '+' : ''}${f.balance - want})` });
    }
  }
  // The audit trail: each applied effect once, as the model says.
  const audit = new Map<string, number>();
  for (const l of auditLines) bump(audit, `${l.account}|${l.entry}`);
  for (const [k, want] of expectedEntries) {
    const c = audit.get(k) ?? 0;
    if (c > want) r.auditDuplicates += c - want;
    if (c < want) r.auditLosses += want - c;
  }
  for (const [k, c] of audit) if (!expectedEntries.has(k)) r.auditUnexpected += c;
  return r;
}
