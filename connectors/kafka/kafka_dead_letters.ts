/**
 * Dead letters of the Kafka ingress: a record that cannot be decoded or routed goes to the
 * configured dead-letter topic (the original key, value and headers, plus the reason and the
 * record's origin in `statefn.*` headers), or to the engine's dead-letter egress when there is no
 * such topic or writing to it keeps failing.
 */
import { Partitioners, type IHeaders, type Kafka, type Producer } from 'kafkajs';
import type { IngressContext, RoutedMessage } from '../../api/connector_api.js';
import type { StatefnError } from '../../shared/errors.js';
import { backoffDelayMs } from '../../shared/backoff.js';
import { kafkaDeadLetterAttemptsMax, kafkaDeadLetterRetryMaxMs, kafkaDeadLetterRetryStepMs } from '../../shared/limits.js';
import { describeKafkaError } from './kafka_config.js';
import type { KafkaIngressRecord } from './kafka_ingress.js';

/** Who the dead letters belong to and where they go. */
export interface KafkaDeadLettersOptions {
  /** The ingress, for log lines. */
  readonly where: string;
  /** The ingress id, written to the `statefn.ingress` header. */
  readonly ingressId: string;
  /** The dead-letter topic; none sends every dead letter to the engine's dead-letter egress. */
  readonly topic: string | undefined;
  /** Aborted when the ingress stops: no more retries. */
  readonly signal: AbortSignal;
  /** The ingress's counters; `deadLettered` counts every record sent here. */
  readonly stats: { deadLettered: number };
}

export class KafkaDeadLetters {
  private producer: Producer | undefined;

  constructor(private readonly opts: KafkaDeadLettersOptions) {}

  /** Connect the producer of the dead-letter topic, if one is configured. */
  async connect(kafka: Kafka): Promise<void> {
    if (this.opts.topic === undefined) return;
    this.producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
    });
    await this.producer.connect();
  }

  /** Send a record that cannot be routed to the dead-letter topic, else to the engine's dead letters. */
  async send(ctx: IngressContext<RoutedMessage>, r: KafkaIngressRecord, e: StatefnError): Promise<void> {
    const { where, topic, signal, stats } = this.opts;
    stats.deadLettered++;
    const reason = `${e.code}: ${e.message}`;
    // The first few dead letters are logged, then one in a thousand, so that a topic full of bad
    // records does not flood the log.
    if (stats.deadLettered <= 10 || stats.deadLettered % 1000 === 0) {
      ctx.logger.warn(`${where}: record ${r.topic}/${r.partition}@${r.offset} dead-lettered (#${stats.deadLettered}): ${reason}`);
    }
    if (this.producer !== undefined) {
      const headers: IHeaders = {
        ...r.headers,
        'statefn.error.code': e.code,
        'statefn.error.message': e.message,
        'statefn.ingress': this.opts.ingressId,
        'statefn.source.topic': r.topic,
        'statefn.source.partition': String(r.partition),
        'statefn.source.offset': String(r.offset),
      };
      for (let attempt = 1; attempt <= kafkaDeadLetterAttemptsMax && !signal.aborted; attempt++) {
        try {
          await this.producer.send({
            topic: topic!,
            acks: -1,
            messages: [{ key: r.key, value: r.value, headers, timestamp: String(r.timestamp) }],
          });
          return;
        } catch (err) {
          ctx.logger.warn(
            `${where}: writing to dead-letter topic '${topic}' failed ` +
              `(attempt ${attempt}/${kafkaDeadLetterAttemptsMax}): ${describeKafkaError(err)}`,
          );
          const delayMs = backoffDelayMs({ baseMs: kafkaDeadLetterRetryStepMs, maxMs: kafkaDeadLetterRetryMaxMs }, attempt - 1);
          await new Promise((res) => setTimeout(res, delayMs));
        }
      }
    }
    // No topic, or it kept failing: the engine's dead-letter egress keeps the record.
    ctx.reject(
      {
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key?.toString('base64') ?? null,
        value: r.value?.toString('base64') ?? null,
      },
      e,
    );
  }

  /** Disconnect the producer (undefined when there is none). */
  disconnect(): Promise<void> | undefined {
    return this.producer?.disconnect();
  }
}
