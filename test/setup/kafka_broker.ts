// Vitest global setup: starts one real Kafka broker (KRaft, single node) on 127.0.0.1 for the whole test run.
/**
 * The broker is Apache Kafka from Maven Central's jars, resolved once with `mvn` into
 * node_modules/.cache/statefn-kafka/<version> and run with `java` (see scripts/kafka_broker.ts;
 * STATEFN_KAFKA_VERSION picks the version). It listens on a free port of 127.0.0.1, keeps its data
 * and server.log in a temp dir, and is stopped when the run ends. Tests read the bootstrap list
 * with `inject('kafkaBrokers')` (or `kafkaBrokers()` from test/fixtures/kafka_test_env.ts).
 *
 * `STATEFN_KAFKA_BROKERS=host:port[,host:port…]` uses those brokers instead and starts nothing.
 */
import type { TestProject } from 'vitest/node';
import { startKafkaBroker } from '../../scripts/kafka_broker.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Comma-separated `host:port` bootstrap list of the Kafka broker(s) for this test run. */
    kafkaBrokers: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.STATEFN_KAFKA_BROKERS;
  if (given !== undefined && given.trim() !== '') {
    project.provide(
      'kafkaBrokers',
      given
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .join(','),
    );
    return async () => {};
  }
  const broker = await startKafkaBroker();
  project.provide('kafkaBrokers', broker.bootstrap);
  return async () => {
    await broker.stop();
  };
}
