import { defineConfig } from 'vitest/config';

// Tests spawn real worker threads and real processes; give them room and run files in a
// small pool so the 2-core CI machine is not oversubscribed.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real S3-compatible server (moto) for the whole run; see the file for STATEFN_S3_ENDPOINT.
    globalSetup: ['test/setup/s3_server.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
