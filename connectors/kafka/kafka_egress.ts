/**
 * Kafka egress (kafkajs producer), as StateFun's `io.statefun.kafka.v1/egress`. Functions send
 * `KafkaProducerRecord`s (kafka_record.ts) to it; the topic, key, value and headers come from the
 * record.
 *
 * Delivery semantics:
 * - `exactly-once`: one Kafka transaction per checkpoint. The engine releases a checkpoint's
 *   records only once the checkpoint is complete; the sink buffers them and, at `commitEpoch`,
 *   sends them in a transaction together with a marker — the epoch, committed as the offset of a
 *   statefn-owned consumer group (`sendOffsets`, atomic with the records). At start the producer's
 *   `initTransactions` (kafkajs does it on connect) aborts or completes whatever transaction a
 *   crashed run left open, and the marker tells which epoch is the last one in Kafka; the engine
 *   writes the later epochs again from its egress log. Nothing is lost, nothing is duplicated.
 * - `at-least-once`: an idempotent producer with acks=all, writing as records arrive (before
 *   their checkpoint completes); the checkpoint waits until they are acknowledged.
 * - `none`: acks=1 and no retries; a failed send is logged, counted and dropped.
 */
import { Partitioners, type Admin, type Kafka, type Message as KafkaMessage, type Producer, type Transaction } from 'kafkajs';
import type { EgressConnector, EgressContext, EgressRecord } from '../../api/connector_api.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { clientSettings, describeKafkaError, newKafka, reportUnsupported, type ClientSettings } from './kafka_config.js';
import { KAFKA_PRODUCER_RECORD_TYPENAME, KafkaProducerRecordType, type KafkaProducerRecord } from './kafka_record.js';

export type KafkaDeliverySemantic =
  | { readonly type: 'exactly-once'; readonly transactionTimeoutMs?: number }
  | { readonly type: 'at-least-once' }
  | { readonly type: 'none' };

export interface KafkaEgressOptions {
  /** The egress id, `namespace/name`, that functions pass to `ctx.egress`. */
  readonly id: string;
  /** Bootstrap brokers, `host:port[,host:port...]`. */
  readonly address: string;
  /** Default `at-least-once`, as upstream. */
  readonly deliverySemantic?: KafkaDeliverySemantic;
  /** Kafka producer properties (Java client names). `transactional.id` names the transactions (default `statefn-<egress id>`). */
  readonly properties?: Readonly<Record<string, string>>;
  /** Where this egress is configured, for errors (e.g. `module.yaml:20`). */
  readonly source?: string;
}

/** Records per produce request inside a transaction. */
const SEND_CHUNK = 2_000;
const DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000;

export interface KafkaEgressStats {
  sent: number;
  transactions: number;
  aborted: number;
  invalid: number;
  dropped: number;
}

export class KafkaEgress implements EgressConnector {
  readonly id: string;
  readonly deliverBeforeCheckpoint: boolean;
  readonly commitEpoch?: (epoch: number) => Promise<void>;
  readonly committedEpoch?: () => number;
  readonly discardUncommitted?: () => Promise<void>;
  readonly stats: KafkaEgressStats = { sent: 0, transactions: 0, aborted: 0, invalid: 0, dropped: 0 };
  private readonly where: string;
  private readonly semantic: KafkaDeliverySemantic;
  private readonly settings: ClientSettings;
  private readonly transactionalId: string;
  /** The consumer group whose offset on the marker partition is the last committed epoch. */
  private readonly markerGroup: string;
  private kafka: Kafka | undefined;
  private admin: Admin | undefined;
  private producer: Producer | undefined;
  private ctx: EgressContext | undefined;
  /** Exactly-once: the records of the epoch being assembled. */
  private pending: KafkaMessageWithTopic[] = [];
  private committed = -1;
  private markerTopic: string | undefined;
  /** A transaction failed: whether it committed is unknown until the producer is re-initialised. */
  private uncertain = false;

  constructor(private readonly opts: KafkaEgressOptions) {
    this.id = opts.id;
    this.where = `kafka egress ${opts.id}${opts.source ? ` (${opts.source})` : ''}`;
    this.semantic = opts.deliverySemantic ?? { type: 'at-least-once' };
    this.settings = clientSettings(this.where, `statefn-${opts.id.replace(/[^A-Za-z0-9._-]/g, '_')}`, opts.address, opts.properties ?? {});
    this.transactionalId = opts.properties?.['transactional.id'] ?? `statefn-${opts.id}`;
    this.markerGroup = `${this.transactionalId}.statefn-epochs`;
    this.deliverBeforeCheckpoint = this.semantic.type !== 'exactly-once';
    if (this.semantic.type === 'exactly-once') {
      this.commitEpoch = (epoch) => this.commitTransaction(epoch);
      this.committedEpoch = () => this.committed;
      this.discardUncommitted = () => {
        this.pending = [];
        return Promise.resolve();
      };
    }
  }

  async start(ctx: EgressContext): Promise<void> {
    this.ctx = ctx;
    reportUnsupported(this.where, this.settings, ctx.logger);
    const kafka = (this.kafka = newKafka(this.settings, this.where, ctx.logger));
    try {
      if (this.semantic.type === 'exactly-once') {
        const admin = (this.admin = kafka.admin());
        await admin.connect();
        // The marker partition: partition 0 of a topic this egress owns.
        this.markerTopic = `${this.transactionalId.replace(/[^A-Za-z0-9._-]/g, '_')}.statefn-epochs`;
        await admin.createTopics({ topics: [{ topic: this.markerTopic, numPartitions: 1 }], waitForLeaders: true }).catch((e: unknown) => {
          if (!/exists/i.test(String((e as Error).message))) throw e;
        });
        await this.resetTransactions();
        ctx.logger.info(
          `${this.where}: exactly-once with transactional.id '${this.transactionalId}'; last committed checkpoint ${this.committed}`,
        );
      } else {
        const atLeastOnce = this.semantic.type === 'at-least-once';
        this.producer = kafka.producer({
          createPartitioner: Partitioners.DefaultPartitioner,
          ...this.settings.producer,
          idempotent: atLeastOnce,
          ...(atLeastOnce ? { maxInFlightRequests: 1 } : {}),
          allowAutoTopicCreation: false,
          // An idempotent producer keeps kafkajs's default retries (fewer would void its ordering guarantees).
          ...(atLeastOnce ? {} : { retry: { retries: 0 } }),
        });
        await this.producer.connect();
      }
    } catch (e) {
      throw new StatefnError(
        ErrorCode.KAFKA_FAILED,
        `${this.where}: cannot start the producer on ${this.opts.address} (${describeKafkaError(e)}); start a broker (for a ` +
          `local one: npm run kafka:local) or fix the address`,
        { cause: e, retriable: true },
      );
    }
  }

  /**
   * A new transactional producer: connecting it fences the previous one (of a crashed run, or
   * of this run after a failed commit) and settles its open transaction (kafkajs runs
   * InitProducerId on connect, which the broker answers only once that transaction is complete
   * or aborted), so the marker read next is final.
   */
  private async resetTransactions(): Promise<void> {
    if (this.semantic.type !== 'exactly-once') return;
    await this.producer?.disconnect().catch(() => {});
    this.producer = this.kafka!.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      ...this.settings.producer,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionalId: this.transactionalId,
      transactionTimeout: this.semantic.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS,
      allowAutoTopicCreation: false,
    });
    await this.producer.connect();
    this.committed = Math.max(this.committed, await this.readMarker());
    this.uncertain = false;
  }

  /**
   * The last committed epoch of this state's lineage: the marker's offset, if its metadata names
   * the same lineage (another lineage — a wiped or replaced state directory — numbers its
   * checkpoints anew, so its marker says nothing about ours).
   */
  private async readMarker(): Promise<number> {
    const res = await this.admin!.fetchOffsets({ groupId: this.markerGroup, topics: [this.markerTopic!] });
    const p = res[0]?.partitions.find((x) => x.partition === 0);
    const offset = Number(p?.offset ?? -1);
    if (!Number.isSafeInteger(offset) || offset < 0) return -1;
    if (p?.metadata !== this.lineage()) {
      this.ctx?.logger.info(
        `${this.where}: the last transaction under '${this.transactionalId}' belongs to another state history ` +
          `(checkpoint ${offset}); starting anew`,
      );
      return -1;
    }
    return offset;
  }

  private lineage(): string {
    return `statefn-lineage:${this.ctx!.lineage}`;
  }

  /** Turn engine records into Kafka messages; a record that is not a KafkaProducerRecord is dead-lettered. */
  private convert(records: readonly EgressRecord[]): KafkaMessageWithTopic[] {
    const out: KafkaMessageWithTopic[] = [];
    for (const r of records) {
      let rec: KafkaProducerRecord;
      try {
        if (r.message.typename !== KAFKA_PRODUCER_RECORD_TYPENAME) {
          throw new StatefnError(
            ErrorCode.TYPE_MISMATCH,
            `${this.where}: expected a ${KAFKA_PRODUCER_RECORD_TYPENAME} message, got ${r.message.typename}; build it with ` +
              `kafkaProducerRecord({topic, key, value}) (or an SDK's Kafka egress builder)`,
          );
        }
        rec = r.message.as(KafkaProducerRecordType);
      } catch (e) {
        this.stats.invalid++;
        this.ctx?.deadLetter?.(r, e as Error);
        continue;
      }
      const headers: Record<string, Buffer> = {};
      for (const h of rec.headers ?? []) headers[h.key] = Buffer.from(h.value);
      out.push({
        topic: rec.topic,
        message: { key: rec.key ?? null, value: Buffer.from(rec.value.buffer, rec.value.byteOffset, rec.value.byteLength), headers },
      });
    }
    return out;
  }

  async write(records: readonly EgressRecord[]): Promise<void> {
    const msgs = this.convert(records);
    if (this.semantic.type === 'exactly-once') {
      // Sent in the checkpoint's transaction at commitEpoch.
      for (const m of msgs) this.pending.push(m);
      return;
    }
    if (msgs.length === 0) return;
    const producer = this.producer!;
    try {
      await producer.sendBatch({ acks: this.semantic.type === 'none' ? 1 : -1, topicMessages: byTopic(msgs) });
      this.stats.sent += msgs.length;
    } catch (e) {
      if (this.semantic.type === 'none') {
        this.stats.dropped += msgs.length;
        this.ctx?.logger.warn(`${this.where}: ${msgs.length} records dropped (delivery semantic none): ${describeKafkaError(e)}`);
        return;
      }
      throw new StatefnError(ErrorCode.KAFKA_FAILED, `${this.where}: producing ${msgs.length} records failed: ${describeKafkaError(e)}`, {
        cause: e,
        retriable: true,
      });
    }
  }

  /** One transaction: the epoch's records plus its marker, committed together. */
  private async commitTransaction(epoch: number): Promise<void> {
    // After a failure the last commit may or may not have happened: settle it first, so a
    // retry never writes an epoch twice.
    if (this.uncertain) await this.resetTransactions();
    if (epoch <= this.committed) {
      this.pending = [];
      return;
    }
    if (this.pending.length === 0) {
      // Nothing for Kafka in this checkpoint: no transaction needed (the egress log has no
      // records of it for this sink either).
      this.committed = epoch;
      return;
    }
    const producer = this.producer!;
    let tx: Transaction | undefined;
    try {
      tx = await producer.transaction();
      for (let i = 0; i < this.pending.length; i += SEND_CHUNK) {
        await tx.sendBatch({ acks: -1, topicMessages: byTopic(this.pending.slice(i, i + SEND_CHUNK)) });
      }
      await tx.sendOffsets({
        consumerGroupId: this.markerGroup,
        // kafkajs passes `metadata` on to TxnOffsetCommit (its typings omit it).
        topics: [
          {
            topic: this.markerTopic!,
            partitions: [{ partition: 0, offset: String(epoch), metadata: this.lineage() } as { partition: number; offset: string }],
          },
        ],
      });
      faultPoint('kafka-before-commit', epoch);
      await tx.commit();
    } catch (e) {
      this.stats.aborted++;
      this.uncertain = true;
      if (tx !== undefined && tx.isActive()) await tx.abort().catch(() => {});
      throw new StatefnError(
        ErrorCode.KAFKA_FAILED,
        `${this.where}: the transaction of checkpoint ${epoch} (${this.pending.length} records) failed and was aborted; it is ` +
          `retried: ${describeKafkaError(e)}`,
        { cause: e, retriable: true },
      );
    }
    this.stats.transactions++;
    this.stats.sent += this.pending.length;
    this.pending = [];
    this.committed = epoch;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.producer?.disconnect(), this.admin?.disconnect()]);
  }
}

interface KafkaMessageWithTopic {
  topic: string;
  message: KafkaMessage;
}

function byTopic(msgs: readonly KafkaMessageWithTopic[]): { topic: string; messages: KafkaMessage[] }[] {
  const m = new Map<string, KafkaMessage[]>();
  for (const x of msgs) {
    let l = m.get(x.topic);
    if (l === undefined) m.set(x.topic, (l = []));
    l.push(x.message);
  }
  return [...m].map(([topic, messages]) => ({ topic, messages }));
}

/**
 * Fault injection for tests: with STATEFN_FAULT_INJECTION=1 and
 * STATEFN_FAULT_KAFKA_KILL_BEFORE_COMMIT=<n>, the process kills itself (SIGKILL) at the n-th
 * transaction, after its records and marker are sent and before the commit.
 */
let faultCount = 0;
function faultPoint(point: 'kafka-before-commit', epoch: number): void {
  if (process.env.STATEFN_FAULT_INJECTION !== '1') return;
  const at = process.env.STATEFN_FAULT_KAFKA_KILL_BEFORE_COMMIT;
  if (at === undefined || point !== 'kafka-before-commit') return;
  faultCount++;
  if (faultCount === Number(at)) {
    process.stderr.write(`statefn: fault injection: killing the process before the commit of checkpoint ${epoch}'s Kafka transaction\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
