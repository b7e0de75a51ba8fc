/**
 * `fraud/merchant-scorer`, one instance per merchant: answers `QueryMerchantScore` with the
 * merchant's risk in [0, 1].
 *
 * Upstream, this function asks a third-party service for a merchant's trustworthiness (with
 * retries). Here the "service" is a deterministic function of the merchant id's hash, so every
 * run and every replay scores a merchant the same way; the instance looks it up once and keeps
 * it in state, as a cache of a remote lookup would.
 */
import { Message, Types, defineFunction, murmur3String } from 'statefn';
import { MERCHANT_SCORER, MerchantScoreType, QueryMerchantScoreType } from './types.js';

/**
 * The merchant's risk in [0, 1]: a hash of its id mapped so that most merchants are trusted and
 * a few are risky (the square of a uniform variable has mean 1/3 and a long tail towards 1).
 */
export function merchantRisk(merchantId: string): number {
  const u = murmur3String(`merchant:${merchantId}`) / 0x1_0000_0000;
  return Math.round(u * u * 1e4) / 1e4;
}

export const merchantScorer = defineFunction({
  typename: MERCHANT_SCORER,
  specs: [{ name: 'score', type: Types.double }],
  handler(ctx, message) {
    if (!message.is(QueryMerchantScoreType)) {
      throw new Error(`${MERCHANT_SCORER}: unexpected message type ${message.typename}`);
    }
    if (ctx.caller === undefined) {
      throw new Error(`${MERCHANT_SCORER}: QueryMerchantScore must come from a function (it has no caller to reply to)`);
    }
    let score = ctx.storage.score;
    if (score === undefined) {
      score = merchantRisk(ctx.self.id);
      ctx.storage.score = score;
    }
    ctx.send(ctx.caller, Message.of(MerchantScoreType, { score }));
  },
});
