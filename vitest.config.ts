import { defineConfig } from 'vitest/config';

/**
 * 'statefn' resolves to the TypeScript sources (package.json's "statefn-source" export condition)
 * in tests, so that the examples, which import 'statefn', share one copy of App, Message and Types
 * with the engine under test instead of loading a second one from dist/. Vitest also passes the
 * ssr conditions to its test processes as `--conditions` flags, which the worker threads the
 * engine starts inherit.
 */
const SOURCE_CONDITION = 'statefn-source';
/**
 * Vitest's default conditions for server code (Vite's without 'module', which would load some
 * dependencies' untranspiled ESM builds); a list given here replaces them.
 */
const SERVER_CONDITIONS = ['node', 'development|production'];

// Tests spawn real worker threads and real processes; give them room and run files in a
// small pool so the 2-core CI machine is not oversubscribed.
export default defineConfig({
  resolve: { conditions: [SOURCE_CONDITION, ...SERVER_CONDITIONS] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION, ...SERVER_CONDITIONS] } },
  test: {
    include: ['test/**/*.test.ts'],
    // One real S3-compatible server (moto) and one real Kafka broker (KRaft) for the whole run; see
    // the files for STATEFN_S3_ENDPOINT and STATEFN_KAFKA_BROKERS.
    globalSetup: ['test/setup/s3_server.ts', 'test/setup/kafka_broker.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
