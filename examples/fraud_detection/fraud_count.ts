/**
 * `fraud/fraud-count`, one instance per account: how many frauds customers confirmed on the
 * account within a rolling window (30 days by default).
 *
 * - `ConfirmFraud`: count + 1, and a delayed `ExpireFraud` to itself that takes the confirmation
 *   out of the window when it ends. The window needs no timestamps in state: each confirmation
 *   carries its own expiry as a delayed message, which the engine keeps durably with the sender.
 * - `ExpireFraud`: count - 1 (the value is deleted when it reaches zero, so idle accounts keep no
 *   state).
 * - `QueryFraud`: replies `ReportedFraud {count}` to the caller.
 */
import { Message, Types, defineFunction } from 'statefn';
import { ConfirmFraudType, ExpireFraudType, FRAUD_COUNT, QueryFraudType, ReportedFraudType } from './types.js';

/** 30 days, the window of the upstream example. */
export const FRAUD_WINDOW_MS_DEFAULT = 30 * 24 * 60 * 60 * 1000;

export interface FraudCountOptions {
  /** How long a confirmed fraud counts against its account, in ms. */
  expireAfterMs?: number;
}

export function createFraudCount(options: FraudCountOptions = {}) {
  const expireAfterMs = options.expireAfterMs ?? FRAUD_WINDOW_MS_DEFAULT;
  if (!Number.isInteger(expireAfterMs) || expireAfterMs <= 0) {
    throw new RangeError(`fraud-count: expireAfterMs must be a positive integer of ms, got ${String(expireAfterMs)}`);
  }
  return defineFunction({
    typename: FRAUD_COUNT,
    specs: [{ name: 'count', type: Types.int }],
    handler(ctx, message) {
      if (message.is(ConfirmFraudType)) {
        ctx.storage.count = (ctx.storage.count ?? 0) + 1;
        ctx.sendAfter(expireAfterMs, ctx.self, Message.of(ExpireFraudType, {}));
        return;
      }
      if (message.is(ExpireFraudType)) {
        const next = (ctx.storage.count ?? 0) - 1;
        ctx.storage.count = next > 0 ? next : undefined;
        return;
      }
      if (message.is(QueryFraudType)) {
        if (ctx.caller === undefined) {
          throw new Error(`${FRAUD_COUNT}: QueryFraud must come from a function (it has no caller to reply to)`);
        }
        ctx.send(ctx.caller, Message.of(ReportedFraudType, { count: ctx.storage.count ?? 0 }));
        return;
      }
      throw new Error(`${FRAUD_COUNT}: unexpected message type ${message.typename}`);
    },
  });
}
