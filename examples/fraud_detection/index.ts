/**
 * Entry point for `statefn start examples/fraud_detection`: the fraud-detection app with its
 * defaults (2,000 transactions/s and 50 confirmed frauds/s, unbounded; see app.ts).
 */
import { createFraudApp } from './app.js';

export default createFraudApp({});
