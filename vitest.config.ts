import { defineConfig } from 'vitest/config';

// Tests spawn real worker threads and real processes; give them room and run files in a
// small pool so the 2-core CI machine is not oversubscribed.
export default defineConfig({
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
