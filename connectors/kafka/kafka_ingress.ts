/**
 * Kafka ingress (kafkajs consumer), as StateFun's `io.statefun.kafka.v1/ingress`.
 *
 * Offsets belong to checkpoints, not to the consumer group: `position()` is the next offset of
 * every partition submitted so far, captured by the engine at each checkpoint barrier, and after
 * a restart the ingress seeks to it. The group's offsets are committed only once a checkpoint
 * covering them is complete, so Kafka's own tooling shows the lag and never runs ahead of state.
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
 */
import { randomUUID } from 'node:crypto';
import { Partitioners, type Admin, type Consumer, type EachBatchPayload, type IHeaders, type Kafka, type Producer } from 'kafkajs';
import type { IngressConnector, IngressContext, RoutedMessage } from '../../api/connector_api.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { Message } from '../../api/message.js';
import { builtinType } from '../../api/types.js';
import { clientSettings, describeKafkaError, newKafka, reportUnsupported, type ClientSettings } from './kafka_config.js';

export type KafkaStartupPosition =
  | { readonly type: 'earliest' }
  | { readonly type: 'latest' }
  | { readonly type: 'group-offsets' }
  /** Offsets keyed by `topic/partition`; partitions not listed start at autoOffsetResetPosition. */
  | { readonly type: 'specific-offsets'; readonly offsets: Readonly<Record<string, number>> }
  /** Epoch milliseconds: the first record with a timestamp at or after it. */
  | { readonly type: 'date'; readonly date: number };

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

const WAIT_HEARTBEAT_MS = 1_000;
/** Routed messages handed to the engine at once. */
const SUBMIT_GROUP_MAX = 256;
const DLT_ATTEMPTS = 5;

interface Route {
  readonly valueType: string | undefined;
  readonly targets: readonly string[];
  readonly router: KafkaRouter | undefined;
}

function tpKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

function splitTp(key: string): { topic: string; partition: number } {
  const i = key.lastIndexOf('/');
  return { topic: key.slice(0, i), partition: Number(key.slice(i + 1)) };
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
  private kafka: Kafka | undefined;
  private admin: Admin | undefined;
  private consumer: Consumer | undefined;
  private dlq: Producer | undefined;
  /** Commits the group's offsets (see commitGroupOffsets). */
  private offsets: Producer | undefined;
  private ctx: IngressContext<RoutedMessage> | undefined;
  private readonly stopping = new AbortController();
  private paused = false;
  private commitPending = false;
  private dirtySinceCommit = false;
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
  }

  position(): Record<string, number> {
    return Object.fromEntries(this.next);
  }

  seek(position: unknown): void {
    if (typeof position !== 'object' || position === null) {
      throw new StatefnError(ErrorCode.STATE_INVALID, `${this.where}: the checkpoint's position is ${JSON.stringify(position)}, expected {"topic/partition": offset}`);
    }
    for (const [k, v] of Object.entries(position)) {
      if (!/^.+\/\d+$/.test(k) || !Number.isSafeInteger(v) || (v as number) < 0) {
        throw new StatefnError(ErrorCode.STATE_INVALID, `${this.where}: the checkpoint's position has ${JSON.stringify(k)}: ${JSON.stringify(v)}, expected "topic/partition": offset`);
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
          throw new StatefnError(ErrorCode.UNKNOWN_FUNCTION_TYPE, `${this.where}: target '${t}' is not a registered function type (nor served by a remote endpoint); register it or fix the target`);
        }
      }
    }
    const kafka = (this.kafka = newKafka(this.settings, this.where, ctx.logger));
    const admin = (this.admin = kafka.admin());
    try {
      await admin.connect();
    } catch (e) {
      throw new StatefnError(ErrorCode.KAFKA_FAILED, `${this.where}: cannot reach the Kafka brokers at ${this.opts.address} (${describeKafkaError(e)}); start a broker (for a local one: npm run kafka:local) or fix the address`, { cause: e, retriable: true });
    }
    const existing = new Set(await admin.listTopics());
    const missing = [...this.routes.keys()].filter((t) => !existing.has(t));
    if (missing.length > 0) {
      throw new StatefnError(ErrorCode.KAFKA_TOPIC_MISSING, `${this.where}: topic${missing.length > 1 ? 's' : ''} ${missing.map((t) => `'${t}'`).join(', ')} not found on ${this.opts.address}; create ${missing.length > 1 ? 'them' : 'it'} first (e.g. kafka-topics.sh --create --topic ${missing[0]} --bootstrap-server ${this.opts.address.split(',')[0]})`);
    }
    await this.resolveStartOffsets(admin);

    if (this.opts.deadLetterTopic !== undefined) {
      this.dlq = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true });
      await this.dlq.connect();
    }
    const isolation = (this.opts.properties?.['isolation.level'] ?? 'read_committed').toLowerCase();
    const consumer = (this.consumer = kafka.consumer({
      groupId: `${this.opts.consumerGroupId}.statefn-${randomUUID().slice(0, 8)}`,
      allowAutoTopicCreation: false,
      maxBytesPerPartition: 1 << 20,
      maxBytes: 8 << 20,
      maxWaitTimeInMs: 100,
      ...this.settings.consumer,
      readUncommitted: isolation === 'read_uncommitted',
      retry: {
        retries: 8,
        restartOnFailure: async (e) => {
          ctx.logger.warn(`${this.where}: the consumer failed and restarts: ${describeKafkaError(e)}`);
          return !this.stopping.signal.aborted;
        },
      },
    }));
    consumer.on(consumer.events.GROUP_JOIN, (ev) => this.onAssigned(ev.payload.memberAssignment));
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [...this.routes.keys()], fromBeginning: (this.opts.autoOffsetResetPosition ?? 'latest') === 'earliest' });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: (p) => this.eachBatch(p),
      });
    } catch (e) {
      throw new StatefnError(ErrorCode.KAFKA_FAILED, `${this.where}: the consumer could not join group '${this.opts.consumerGroupId}' on ${this.opts.address}: ${describeKafkaError(e)}`, { cause: e, retriable: true });
    }
  }

  /** Offsets for partitions that have no position yet, from the startup position. */
  private async resolveStartOffsets(admin: Admin): Promise<void> {
    const start = this.opts.startupPosition ?? { type: 'latest' };
    const reset = this.opts.autoOffsetResetPosition ?? 'latest';
    for (const topic of this.routes.keys()) {
      const watermarks = await admin.fetchTopicOffsets(topic);
      this.partitionsTotal += watermarks.length;
        const byDate = start.type === 'date' && !this.restored ? await admin.fetchTopicOffsetsByTimestamp(topic, start.date) : [];
      const committed = start.type === 'group-offsets' && !this.restored
        ? (await admin.fetchOffsets({ groupId: this.opts.consumerGroupId, topics: [topic] }))[0]?.partitions ?? []
        : [];
      for (const w of watermarks) {
        const key = tpKey(topic, w.partition);
        const low = Number(w.low);
        const high = Number(w.high);
        const saved = this.next.get(key);
        if (saved !== undefined) {
          if (saved < low) {
            this.ctx?.logger.error(`${this.where}: ${topic}/${w.partition}: offsets ${saved}..${low - 1} were deleted (retention) before they were read; reading from ${low}`);
            this.next.set(key, low);
          }
          continue;
        }
        let offset: number;
        // A partition the checkpoint does not know (added since) is read from its start: nothing skipped.
        if (this.restored) offset = low;
        else if (start.type === 'earliest') offset = low;
        else if (start.type === 'latest') offset = high;
        else if (start.type === 'specific-offsets') offset = start.offsets[key] ?? (reset === 'earliest' ? low : high);
        else if (start.type === 'date') {
          const o = Number(byDate.find((b) => b.partition === w.partition)?.offset ?? -1);
          offset = o >= 0 ? o : high;
        } else {
          const o = Number(committed.find((c) => c.partition === w.partition)?.offset ?? -1);
          offset = o >= 0 ? o : reset === 'earliest' ? low : high;
        }
        // An offset below the log start (deleted by retention) reads from the log start.
        this.next.set(key, Math.min(high, Math.max(low, offset)));
      }
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
        `${this.where}: only ${assigned} of ${this.partitionsTotal} partitions are assigned to this process; another consumer uses group '${this.opts.consumerGroupId}'. ` +
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
      this.dirtySinceCommit = true;
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
        topic: batch.topic, partition: batch.partition, offset, key: m.key, value: m.value, headers: m.headers ?? {}, timestamp: Number(m.timestamp),
      };
      let routed: readonly RoutedMessage[] | undefined;
      let failure: StatefnError | undefined;
      try {
        routed = this.route(record, route);
        for (const r of routed) {
          if (!ctx.hasFunction(r.to.typename)) throw new StatefnError(ErrorCode.UNKNOWN_FUNCTION_TYPE, `no function type '${r.to.typename}' is registered (record routed to ${r.to.typename}/${r.to.id})`);
        }
      } catch (e) {
        failure = e instanceof StatefnError ? e : new StatefnError(ErrorCode.INGRESS_RECORD_INVALID, `the router threw: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      }
      if (failure !== undefined) {
        await submitGroup();
        await this.deadLetter(record, failure);
      } else if (routed!.length === 0) this.stats.dropped++;
      else {
        for (const r of routed!) group.push(r);
        this.stats.submitted++;
      }
      groupEnd = offset + 1;
      groupLastOffset = m.offset;
      if (group.length >= SUBMIT_GROUP_MAX) await submitGroup();
    }
    // Stopping or re-seeked: what was grouped is not handed over (and the position stays before it).
    if (!this.stopping.signal.aborted && !p.isStale()) await submitGroup();
    this.scheduleCommit();
  }

  private route(r: KafkaIngressRecord, route: Route | undefined): readonly RoutedMessage[] {
    if (route === undefined) throw new StatefnError(ErrorCode.INGRESS_RECORD_INVALID, `topic '${r.topic}' is not configured`);
    if (route.router !== undefined) {
      const out = route.router(r);
      return out === undefined ? [] : Array.isArray(out) ? (out as readonly RoutedMessage[]) : [out as RoutedMessage];
    }
    if (r.key === null || r.key.length === 0) {
      throw new StatefnError(ErrorCode.INGRESS_RECORD_INVALID, 'the record has no key; the key is the function id (produce with a key, or configure a router)');
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

  /** Send a record that cannot be routed to the dead-letter topic, else to the engine's dead letters. */
  private async deadLetter(r: KafkaIngressRecord, e: StatefnError): Promise<void> {
    this.stats.deadLettered++;
    const ctx = this.ctx!;
    const reason = `${e.code}: ${e.message}`;
    if (this.stats.deadLettered <= 10 || this.stats.deadLettered % 1000 === 0) {
      ctx.logger.warn(`${this.where}: record ${r.topic}/${r.partition}@${r.offset} dead-lettered (#${this.stats.deadLettered}): ${reason}`);
    }
    if (this.dlq !== undefined) {
      const headers: IHeaders = {
        ...r.headers,
        'statefn.error.code': e.code,
        'statefn.error.message': e.message,
        'statefn.ingress': this.id,
        'statefn.source.topic': r.topic,
        'statefn.source.partition': String(r.partition),
        'statefn.source.offset': String(r.offset),
      };
      for (let attempt = 1; attempt <= DLT_ATTEMPTS && !this.stopping.signal.aborted; attempt++) {
        try {
          await this.dlq.send({ topic: this.opts.deadLetterTopic!, acks: -1, messages: [{ key: r.key, value: r.value, headers, timestamp: String(r.timestamp) }] });
          return;
        } catch (err) {
          ctx.logger.warn(`${this.where}: writing to dead-letter topic '${this.opts.deadLetterTopic}' failed (attempt ${attempt}/${DLT_ATTEMPTS}): ${describeKafkaError(err)}`);
          await new Promise((res) => setTimeout(res, 200 * attempt));
        }
      }
    }
    // No topic, or it kept failing: the engine's dead-letter egress keeps the record.
    ctx.reject(
      { topic: r.topic, partition: r.partition, offset: r.offset, timestamp: r.timestamp, key: r.key?.toString('base64') ?? null, value: r.value?.toString('base64') ?? null },
      e,
    );
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
    const writable = ctx.whenWritable().then(() => { done = true; });
    while (!done && !this.stopping.signal.aborted) {
      await Promise.race([writable, new Promise((res) => setTimeout(res, WAIT_HEARTBEAT_MS))]);
      if (!done) await p.heartbeat().catch(() => {});
    }
    this.paused = false;
    this.consumer?.resume([...this.routes.keys()].map((topic) => ({ topic })));
  }

  /** Commit the group's offsets once a checkpoint covers everything submitted so far (one commit in flight). */
  private scheduleCommit(): void {
    if (this.commitPending || !this.dirtySinceCommit || this.ctx === undefined) return;
    this.commitPending = true;
    this.dirtySinceCommit = false;
    const snapshot = [...this.next].map(([k, offset]) => ({ ...splitTp(k), offset: String(offset) }));
    this.ctx.whenDurable().then(
      async () => {
        if (this.stopping.signal.aborted) return;
        try {
          await this.commitGroupOffsets(snapshot);
          this.stats.offsetCommits++;
        } catch (e) {
          // Informational only (the checkpoint holds the truth); the next commit catches up.
          this.ctx?.logger.warn(`${this.where}: committing offsets to group '${this.opts.consumerGroupId}' failed: ${describeKafkaError(e)}`);
          this.dirtySinceCommit = true;
          await this.offsets?.disconnect().catch(() => {});
          this.offsets = undefined;
        }
      },
      () => {},
    ).finally(() => {
      this.commitPending = false;
      if (this.dirtySinceCommit) this.scheduleCommit();
    });
  }

  /**
   * Commit offsets to the configured group without joining it: a transaction holding only the
   * offsets (TxnOffsetCommit accepts a group that has no members). kafkajs's admin.setOffsets
   * would join the group as a consumer for every commit.
   */
  private async commitGroupOffsets(offsets: { topic: string; partition: number; offset: string }[]): Promise<void> {
    if (this.offsets === undefined) {
      const p = this.kafka!.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1, transactionalId: `${this.opts.consumerGroupId}.statefn-offsets`, transactionTimeout: 30_000 });
      await p.connect();
      this.offsets = p;
    }
    const topics = [...new Set(offsets.map((o) => o.topic))].map((topic) => ({
      topic,
      partitions: offsets.filter((o) => o.topic === topic).map(({ partition, offset }) => ({ partition, offset })),
    }));
    const tx = await this.offsets.transaction();
    try {
      await tx.sendOffsets({ consumerGroupId: this.opts.consumerGroupId, topics });
      await tx.commit();
    } catch (e) {
      if (tx.isActive()) await tx.abort().catch(() => {});
      throw e;
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    const closing: Promise<unknown>[] = [];
    if (this.consumer) closing.push(this.consumer.disconnect());
    await Promise.allSettled(closing);
    await Promise.allSettled([this.dlq?.disconnect(), this.admin?.disconnect(), this.offsets?.disconnect()]);
  }
}
