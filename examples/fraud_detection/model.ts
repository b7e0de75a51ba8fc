/**
 * `fraud/model`: scores a `FeatureVector` and replies `FraudScore {score}` to the caller.
 *
 * Upstream the model is a remote function standing in for a trained classifier. This one is a
 * fixed logistic regression, deterministic so runs can be compared and tests can predict it:
 *
 *   z     = bias + fraud * ln(1 + min(fraudCount, 5)) + merchant * merchantScore
 *                + amount * ln(1 + amount / 100)
 *   score = 1 / (1 + e^-z)
 *
 * The fraud count saturates at 5 (with diminishing returns before that), so an account's alerts
 * depend on where and how much it spends once it is known to be compromised, and the alert rate
 * of the generated stream settles within a minute instead of growing for the 30-day window.
 * With these weights, and the default threshold of 0.8:
 * - no confirmed fraud: needs an amount above ~2,850 at the riskiest merchant (practically never);
 * - 5 or more: alerts at the riskiest merchants (risk above ~0.93) for any amount, at a
 *   merchant of risk 0.5 above ~270, at a trusted merchant (risk 0.1) above ~1,120.
 */
import { Message, defineFunction } from 'statefn';
import { FeatureVectorType, FraudScoreType, MODEL, type FeatureVector } from './types.js';

export const MODEL_WEIGHTS = {
  bias: -5,
  fraud: 2,
  merchant: 3,
  amount: 1,
  /** Confirmed frauds beyond this add nothing. */
  fraudCountCap: 5,
} as const;

/** The model's score for a feature vector, in (0, 1), rounded to 4 decimals. */
export function scoreFeatures(v: FeatureVector): number {
  const w = MODEL_WEIGHTS;
  const z =
    w.bias +
    w.fraud * Math.log1p(Math.min(w.fraudCountCap, Math.max(0, v.fraudCount))) +
    w.merchant * Math.min(1, Math.max(0, v.merchantScore)) +
    w.amount * Math.log1p(Math.max(0, v.amount) / 100);
  return Math.round(1e4 / (1 + Math.exp(-z))) / 1e4;
}

export const model = defineFunction({
  typename: MODEL,
  handler(ctx, message) {
    const features = message.as(FeatureVectorType);
    if (ctx.caller === undefined) {
      throw new Error(`${MODEL}: FeatureVector must come from a function (it has no caller to reply to)`);
    }
    ctx.send(ctx.caller, Message.of(FraudScoreType, { score: scoreFeatures(features) }));
  },
});
