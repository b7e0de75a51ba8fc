// CI: the seeded crash test fed from a Kafka topic and writing to a Kafka topic (exactly-once
// egress), with SIGKILLs, checked by a read_committed consumer against the model.
import { describe, expect, it } from 'vitest';
import { runCrashTest } from '../crash/runner.js';
import { kafkaBrokers } from '../fixtures/kafka_test_env.js';

describe('seeded crash test through Kafka (SIGKILL)', () => {
  it('seed 11: state and Kafka output exactly-once after 10 SIGKILLs', async () => {
    const r = await runCrashTest({
      seed: 11,
      mode: 'kill',
      instances: 200,
      count: 3000,
      kafka: { brokers: kafkaBrokers() },
      log: () => {},
    });
    expect(r.report).toMatch(/^PASS/);
    expect(r.ok).toBe(true);
  }, 600_000);
});
