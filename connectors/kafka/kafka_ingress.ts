/**
 * Kafka ingress (kafkajs consumer), as StateFun's `io.statefun.kafka.v1/ingress`.
 *
 * Offsets belong to checkpoints, not to the consumer group: `position()` is the next offset of
 * every partition submitted so far, captured by the engine at each checkpoint barrier, and after
 * a restart the ingress seeks to it. The group's offsets are committed only once a checkpoint
 * covering them is complete, so Kafka's own tooling shows the lag and never runs ahead of state;
 * the first checkpoint after a restore commits the restored positions even if no record arrives.
 *
 * A record that cannot be decoded or routed goes to the dead-letter topic (with the reason in
 * headers) when one is configured, or to the engine's dead-letter egress; either way it is
 * counted and consumption goes on. Back-pressure pauses the assigned partitions and resumes them
 * when the engine can take more; kafkajs's fetch sizes bound what is buffered meanwhile.
 *
 * The consumer group: kafkajs fetches only as a group member, and a process killed with SIGKILL
 * stays a member until its session times out, which would stall every restart's rebalance. So
 * the consumer fetches in a group of its own for each run (`<consumerGroupId>.statefn-<run>`,
 * which has no offsets and disappears when empty) and seeks every partition explicitly; the
 * configured `consumerGroupId` only receives the committed offsets (as a group without members,
 * which is what Kafka's tooling shows). One statefn process per application: two processes with
 * the same ingress would both read every partition.
 *
 * This file holds the consumer loop and the routing of records; kafka_start_offsets.ts resolves
 * where each partition starts, kafka_dead_letters.ts sends the records that cannot be routed, and
 * kafka_offset_committer.ts commits the group's offsets.
 */
import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, EachBatchPayload, IHeaders } from 'kafkajs';
import type { IngressConnector, IngressContext, RoutedMessage } from '../../api/connector_api.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { Message } from '../../api/message.js';
import { builtinType } from '../../api/types.js';
import {
  kafkaConsumerRetries,
  kafkaFetchBytesMax,
  kafkaFetchPartitionBytesMax,
  kafkaFetchWaitMaxMs,
  kafkaSubmitGroupMessagesMax,
  kafkaWaitHeartbeatMs,
} from '../../shared/limits.js';
import { clientSettings, describeKafkaError, newKafka, reportUnsupported, type ClientSettings } from './kafka_config.js';
import { KafkaDeadLetters } from './kafka_dead_letters.js';
import { KafkaOffsetCommitter } from './kafka_offset_committer.js';
import { splitTp, tpKey } from './kafka_partition_key.js';
import { resolveStartOffsets, type KafkaStartupPosition } from './kafka_start_offsets.js';

export type { KafkaStartupPosition } from './kafka_start_offsets.js';

/** A consumed record, as a custom router sees it. */
export interface KafkaIngressRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: IHeaders;
  /** Epoch milliseconds. */
  readonly timestamp: number;
}

/** Routes a record to messages; `undefined` or `[]` drops it (counted); throwing dead-letters it. */
export type KafkaRouter = (record: KafkaIngressRecord) => RoutedMessage | readonly RoutedMessage[] | undefined;

export interface KafkaIngressTopic {
  readonly topic: string;
  /** The record value's type name (StateFun: `valueType`); built-in types are decoded from their wrapper bytes. */
  readonly valueType?: string;
  /** Function types that receive each record, with the record key as the id. */
  readonly targets?: readonly string[];
  /** A router for this topic instead of key -> id. */
  readonly router?: KafkaRouter;
}

export interface KafkaIngressOptions {
  /** The ingress id, `namespace/name`. */
  readonly id: string;
  /** Bootstrap brokers, `host:port[,host:port...]`. */
  readonly address: string;
  readonly consumerGroupId: string;
  readonly topics: readonly KafkaIngressTopic[];
  /** Where a fresh start (no checkpoint) begins. Default `latest`, as upstream. */
  readonly startupPosition?: KafkaStartupPosition;
  /** Where a partition without a usable offset begins. Default `latest`. */
  readonly autoOffsetResetPosition?: 'earliest' | 'latest';
  /** Kafka consumer properties (Java client names); see kafka_config.ts for what is honoured. */
  readonly properties?: Readonly<Record<string, string>>;
  /** Undecodable or unroutable records go here, with the reason in headers. Default: the engine's dead-letter egress. */
  readonly deadLetterTopic?: string;
  /** Where this ingress is configured, for errors (e.g. `module.yaml:12`). */
  readonly source?: string;
}

interface Route {
  readonly valueType: string | undefined;
  readonly targets: readonly string[];
  readonly router: KafkaRouter | undefined;
}

/** Counters an operator or a test can read. */
export interface KafkaIngressStats {
  consumed: number;
  submitted: number;
  deadLettered: number;
  dropped: number;
  pauses: number;
  offsetCommits: number;
}

export class KafkaIngress implements IngressConnector<RoutedMessage> {
  readonly id: string;
  readonly stats: KafkaIngressStats = { consumed: 0, submitted: 0, deadLettered: 0, dropped: 0, pauses: 0, offsetCommits: 0 };
  private readonly where: string;
  private readonly settings: ClientSettings;
  private readonly routes = new Map<string, Route>();
  /** Next offset per `topic/partition`: what position() reports. */
  private readonly next = new Map<string, number>();
  /** True when seek() gave a checkpoint position: partitions missing from it start at earliest. */
  private restored = false;
  private admin: Admin | undefined;
  private consumer: Consumer | undefined;
  private readonly deadLetters: KafkaDeadLetters;
  /** Commits the group's offsets; created once the Kafka client exists. */
  private committer: KafkaOffsetCommitter | undefined;
  private ctx: IngressContext<RoutedMessage> | undefined;
  private readonly stopping = new AbortController();
  private paused = false;
  private partitionsTotal = 0;

  constructor(private readonly opts: KafkaIngressOptions) {
    this.id = opts.id;
    this.where = `kafka ingress ${opts.id}${opts.source ? ` (${opts.source})` : ''}`;
    if (opts.topics.length === 0) throw new StatefnError(ErrorCode.CONFIG_INVALID, `${this.where}: no topics given`);
    for (const t of opts.topics) {
      if (t.router === undefined && (t.valueType === undefined || t.targets === undefined || t.targets.length === 0)) {
        throw new StatefnError(ErrorCode.CONFIG_INVALID, `${this.where}: topic '${t.topic}' needs a valueType and targets, or a router`);
      }
      this.routes.set(t.topic, { valueType: t.valueType, targets: t.targets ?? [], router: t.router });
    }
    this.settings = clientSettings(this.where, `statefn-${opts.id.replace(/[^A-Za-z0-9._-]/g, '_')}`, opts.address, opts.properties ?? {});
    this.deadLetters = new KafkaDeadLetters({
      where: this.where,
      ingressId: this.id,
      topic: opts.deadLetterTopic,
      signal: this.stopping.signal,
      stats: this.stats,
    });
  }

  position(): Record<string, number> {
    return Object.fromEntries(this.next);
  }

  seek(position: unknown): void {
    if (typeof position !== 'object' || position === null) {
      throw new StatefnError(
        ErrorCode.STATE_INVALID,
        `${this.where}: the checkpoint's position is ${JSON.stringify(position)}, expected {"topic/partition": offset}`,
      );
    }
    for (const [k, v] of Object.entries(position)) {
      if (!/^.+\/\d+$/.test(k) || !Number.isSafeInteger(v) || (v as number) < 0) {
        throw new StatefnError(
          ErrorCode.STATE_INVALID,
          `${this.where}: the checkpoint's position has ${JSON.stringify(k)}: ${JSON.stringify(v)}, expected "topic/partition": offset`,
        );
      }
      if (this.routes.has(splitTp(k).topic)) this.next.set(k, v as number);
    }
    this.restored = true;
  }

  async start(ctx: IngressContext<RoutedMessage>): Promise<void> {
    this.ctx = ctx;
    ctx.signal.addEventListener('abort', () => this.stopping.abort(), { once: true });
    reportUnsupported(this.where, this.settings, ctx.logger);
    for (const r of this.routes.values()) {
      for (const t of r.targets) {
        if (!ctx.hasFunction(t)) {
          throw new StatefnError(
            ErrorCode.UNKNOWN_FUNCTION_TYPE,
            `${this.where}: target '${t}' is not a registered function type (nor served by a remote endpoint); register it or ` +
              `fix the target`,
          );
        }
      }
    }
    const kafka = newKafka(this.settings, this.where, ctx.logger);
    this.committer = new KafkaOffsetCommitter(kafka, {
      where: this.where,
      consumerGroupId: this.opts.consumerGroupId,
      signal: this.stopping.signal,
      stats: this.stats,
    });
    const admin = (this.admin = kafka.admin());
    try {
      await admin.connect();
    } catch (e) {
      throw new StatefnError(
        ErrorCode.KAFKA_FAILED,
        `${this.where}: cannot reach the Kafka brokers at ${this.opts.address} (${describeKafkaError(e)}); start a broker (for ` +
          `a local one: npm run kafka:local) or fix the address`,
        { cause: e, retriable: true },
      );
    }
    const existing = new Set(await admin.listTopics());
    const missing = [...this.routes.keys()].filter((t) => !existing.has(t));
    if (missing.length > 0) {
      throw new StatefnError(
        ErrorCode.KAFKA_TOPIC_MISSING,
        `${this.where}: topic${missing.length > 1 ? 's' : ''} ${missing.map((t) => `'${t}'`).join(', ')} not found ` +
          `on ${this.opts.address}; create ${missing.length > 1 ? 'them' : 'it'} first (e.g. kafka-topics.sh --create ` +
          `--topic ${missing[0]} --bootstrap-server ${this.opts.address.split(',')[0]})`,
      );
    }
    this.partitionsTotal += await resolveStartOffsets(
      admin,
      {
        where: this.where,
        topics: this.routes.keys(),
        startupPosition: this.opts.startupPosition,
        autoOffsetResetPosition: this.opts.autoOffsetResetPosition,
        consumerGroupId: this.opts.consumerGroupId,
        restored: this.restored,
        logger: ctx.logger,
      },
      this.next,
    );
    // Before any batch runs: the first checkpoint after a restore commits where this run starts.
    if (this.restored) this.committer.commitRestored(ctx, this.next);
    await this.deadLetters.connect(kafka);
    const isolation = (this.opts.properties?.['isolation.level'] ?? 'read_committed').toLowerCase();
    const consumer = (this.consumer = kafka.consumer({
      groupId: `${this.opts.consumerGroupId}.statefn-${randomUUID().slice(0, 8)}`,
      allowAutoTopicCreation: false,
      maxBytesPerPartition: kafkaFetchPartitionBytesMax,
      maxBytes: kafkaFetchBytesMax,
      maxWaitTimeInMs: kafkaFetchWaitMaxMs,
      ...this.settings.consumer,
      readUncommitted: isolation === 'read_uncommitted',
      retry: {
        retries: kafkaConsumerRetries,
        restartOnFailure: (e) => {
          ctx.logger.warn(`${this.where}: the consumer failed and restarts: ${describeKafkaError(e)}`);
          return Promise.resolve(!this.stopping.signal.aborted);
        },
      },
    }));
    consumer.on(consumer.events.GROUP_JOIN, (ev) => this.onAssigned(ev.payload.memberAssignment));
    try {
      await consumer.connect();
      await consumer.subscribe({
        topics: [...this.routes.keys()],
        fromBeginning: (this.opts.autoOffsetResetPosition ?? 'latest') === 'earliest',
      });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: (p) => this.eachBatch(p),
      });
    } catch (e) {
      throw new StatefnError(
        ErrorCode.KAFKA_FAILED,
        `${this.where}: the consumer could not join group '${this.opts.consumerGroupId}' on ${this.opts.address}: ${describeKafkaError(e)}`,
        { cause: e, retriable: true },
      );
    }
  }

  private onAssigned(assignment: Record<string, number[]>): void {
    let assigned = 0;
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) {
        assigned++;
        const offset = this.next.get(tpKey(topic, partition));
        if (offset !== undefined) this.consumer?.seek({ topic, partition, offset: String(offset) });
      }
    }
    if (assigned < this.partitionsTotal) {
      this.ctx?.logger.error(
        `${this.where}: only ${assigned} of ${this.partitionsTotal} partitions are assigned to this process; another consumer ` +
          `uses group '${this.opts.consumerGroupId}'. ` +
          'statefn tracks offsets in its checkpoints and needs the group to itself: give each statefn application its own consumerGroupId',
      );
    }
    if (this.paused) this.pauseAll();
  }

  private async eachBatch(p: EachBatchPayload): Promise<void> {
    const ctx = this.ctx!;
    const { batch } = p;
    const route = this.routes.get(batch.topic);
    const key = tpKey(batch.topic, batch.partition);
    // Routed messages are handed to the engine in groups (one frame, one writability check per
    // group); the partition's position moves only past what was handed over.
    let group: RoutedMessage[] = [];
    let groupEnd = -1;
    let groupLastOffset = '';
    const submitGroup = async (): Promise<void> => {
      if (groupEnd < 0) return;
      const writable = group.length === 0 || ctx.submit(group);
      this.next.set(key, groupEnd);
      this.committer!.markDirty();
      p.resolveOffset(groupLastOffset);
      group = [];
      groupEnd = -1;
      if (!writable) await this.waitWritable(p);
    };
    for (const m of batch.messages) {
      if (!p.isRunning() || p.isStale() || this.stopping.signal.aborted) break;
      const offset = Number(m.offset);
      const next = this.next.get(key);
      if (next !== undefined && offset < next) continue; // fetched before a seek took effect
      this.stats.consumed++;
      const record: KafkaIngressRecord = {
        topic: batch.topic,
        partition: batch.partition,
        offset,
        key: m.key,
        value: m.value,
        headers: m.headers ?? {},
        timestamp: Number(m.timestamp),
      };
      let routed: readonly RoutedMessage[] | undefined;
      let failure: StatefnError | undefined;
      try {
        routed = this.route(record, route);
        for (const r of routed) {
          if (!ctx.hasFunction(r.to.typename))
            throw new StatefnError(
              ErrorCode.UNKNOWN_FUNCTION_TYPE,
              `no function type '${r.to.typename}' is registered (record routed to ${r.to.typename}/${r.to.id})`,
            );
        }
      } catch (e) {
        failure =
          e instanceof StatefnError
            ? e
            : new StatefnError(ErrorCode.INGRESS_RECORD_INVALID, `the router threw: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      }
      if (failure !== undefined) {
        await submitGroup();
        await this.deadLetters.send(ctx, record, failure);
      } else if (routed!.length === 0) this.stats.dropped++;
      else {
        for (const r of routed!) group.push(r);
        this.stats.submitted++;
      }
      groupEnd = offset + 1;
      groupLastOffset = m.offset;
      if (group.length >= kafkaSubmitGroupMessagesMax) await submitGroup();
    }
    // Stopping or re-seeked: what was grouped is not handed over (and the position stays before it).
    if (!this.stopping.signal.aborted && !p.isStale()) await submitGroup();
    this.committer!.schedule(ctx, this.next);
  }

  private route(r: KafkaIngressRecord, route: Route | undefined): readonly RoutedMessage[] {
    if (route === undefined) throw new StatefnError(ErrorCode.INGRESS_RECORD_INVALID, `topic '${r.topic}' is not configured`);
    if (route.router !== undefined) {
      const out = route.router(r);
      return out === undefined ? [] : Array.isArray(out) ? (out as readonly RoutedMessage[]) : [out as RoutedMessage];
    }
    if (r.key === null || r.key.length === 0) {
      throw new StatefnError(
        ErrorCode.INGRESS_RECORD_INVALID,
        'the record has no key; the key is the function id (produce with a key, or configure a router)',
      );
    }
    let id: string;
    try {
      id = new TextDecoder('utf-8', { fatal: true }).decode(r.key);
    } catch {
      throw new StatefnError(ErrorCode.INGRESS_RECORD_INVALID, 'the record key is not UTF-8; the key is the function id');
    }
    const valueType = route.valueType!;
    const bytes = r.value ?? Buffer.alloc(0);
    const builtin = builtinType(valueType);
    let message: Message;
    if (builtin !== undefined) {
      let value: unknown;
      try {
        value = builtin.deserialize(bytes);
      } catch (e) {
        throw new StatefnError(ErrorCode.TYPE_MISMATCH, `the value is not a ${valueType} (${(e as Error).message})`, { cause: e });
      }
      message = new Message(valueType, value as string | number | boolean);
    } else {
      message = new Message(valueType, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }
    return route.targets.map((t) => ({ to: { typename: t, id }, message }));
  }

  private pauseAll(): void {
    const c = this.consumer;
    if (c === undefined) return;
    c.pause([...this.routes.keys()].map((topic) => ({ topic })));
  }

  /** Back-pressure: pause every partition, keep the group alive, resume when the engine can take more. */
  private async waitWritable(p: EachBatchPayload): Promise<void> {
    this.stats.pauses++;
    this.paused = true;
    this.pauseAll();
    const ctx = this.ctx!;
    let done = false;
    const writable = ctx.whenWritable().then(() => {
      done = true;
    });
    while (!done && !this.stopping.signal.aborted) {
      await Promise.race([writable, new Promise((res) => setTimeout(res, kafkaWaitHeartbeatMs))]);
      if (!done) await p.heartbeat().catch(() => {});
    }
    this.paused = false;
    this.consumer?.resume([...this.routes.keys()].map((topic) => ({ topic })));
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    const closing: Promise<unknown>[] = [];
    if (this.consumer) closing.push(this.consumer.disconnect());
    await Promise.allSettled(closing);
    await Promise.allSettled([this.deadLetters.disconnect(), this.admin?.disconnect(), this.committer?.disconnect()]);
  }
}
