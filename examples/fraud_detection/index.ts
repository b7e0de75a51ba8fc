/**
 * Entry point for `statefn start examples/fraud_detection` (and the default of `statefn start`):
 * the fraud-detection app. Its default export is a factory so the CLI can pass options
 * (`--params '{"transactionsPerSec": 5000}'`); see app.ts for them and their defaults.
 */
import { createFraudApp, type FraudAppOptions } from './app.js';

export default function fraudApp(params?: FraudAppOptions) {
  return createFraudApp(params ?? {});
}
