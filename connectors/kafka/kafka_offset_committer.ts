/**
 * Commits the Kafka ingress's offsets to the configured consumer group, but only once a
 * checkpoint covers them, so that Kafka's tooling shows the lag and never runs ahead of state.
 * The commits are informational: after a restart the ingress seeks to the checkpoint's position,
 * not to the group's offsets. The first checkpoint after a restore commits the restored
 * positions, so a commit lost in a crash is made good without waiting for new records; after
 * that, only positions that moved are committed.
 */
import { Partitioners, type Kafka, type Producer } from 'kafkajs';
import type { IngressContext, RoutedMessage } from '../../api/connector_api.js';
import { assert } from '../../shared/errors.js';
import { kafkaOffsetTransactionTimeoutMs } from '../../shared/limits.js';
import { describeKafkaError } from './kafka_config.js';
import { splitTp } from './kafka_partition_key.js';

/** Who commits, to which group. */
export interface KafkaOffsetCommitterOptions {
  /** The ingress, for log lines. */
  readonly where: string;
  /** The group that receives the committed offsets (it is never joined). */
  readonly consumerGroupId: string;
  /** Aborted when the ingress stops: a commit that becomes due afterwards is skipped. */
  readonly signal: AbortSignal;
  /** The ingress's counters; `offsetCommits` counts the commits that succeeded. */
  readonly stats: { offsetCommits: number };
}

type PartitionOffset = { topic: string; partition: number; offset: string };

/** A scheduled commit: waiting for the checkpoint that covers it, then in flight. */
interface Ticket {
  readonly offsets: PartitionOffset[];
  /** The restored positions, still waiting for their checkpoint: a commit of moved positions replaces it. */
  replaceable: boolean;
  /** Replaced before it committed: it ends without committing and without touching `pending`. */
  replaced: boolean;
}

export class KafkaOffsetCommitter {
  /** The commit waiting for its checkpoint or in flight: at most one at a time. */
  private pending: Ticket | undefined;
  /** Positions moved since the last commit was scheduled. */
  private dirty = false;
  /** The transactional producer that commits (see commit); created on the first commit. */
  private producer: Producer | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly opts: KafkaOffsetCommitterOptions,
  ) {}

  /** The ingress's position moved past what was last scheduled for a commit. */
  markDirty(): void {
    this.dirty = true;
  }

  /**
   * The ingress was restored to `positions` (a checkpoint's or a savepoint's): commit them at the
   * first completed checkpoint even if no record ever arrives. A crash between a checkpoint and
   * its commit (or a group moved meanwhile) leaves the group's offsets away from the checkpoint,
   * and otherwise only new records would move them again; StateFun commits at every completed
   * checkpoint. When records arrive before that checkpoint, the commit of where they got to
   * replaces this one, so it is not delayed by a checkpoint. Unchanged positions are not
   * committed again.
   */
  commitRestored(ctx: IngressContext<RoutedMessage>, positions: ReadonlyMap<string, number>): void {
    if (positions.size === 0) return;
    this.dirty = true;
    this.schedule(ctx, positions, true);
  }

  /**
   * Commit `positions` (next offset per `topic/partition`) once a checkpoint covers everything
   * submitted so far. With a commit already pending, the positions are committed after it.
   */
  schedule(ctx: IngressContext<RoutedMessage>, positions: ReadonlyMap<string, number>, replaceable = false): void {
    if (!this.dirty) return;
    if (this.pending !== undefined) {
      if (!this.pending.replaceable) return;
      this.pending.replaced = true;
    }
    const ticket: Ticket = {
      offsets: [...positions].map(([k, offset]) => ({ ...splitTp(k), offset: String(offset) })),
      replaceable,
      replaced: false,
    };
    this.pending = ticket;
    this.dirty = false;
    ctx
      .whenDurable()
      .then(
        async () => {
          if (ticket.replaced || this.opts.signal.aborted) return;
          ticket.replaceable = false;
          try {
            await this.commit(ticket.offsets);
            this.opts.stats.offsetCommits++;
          } catch (e) {
            // Informational only (the checkpoint holds the truth); the next commit catches up.
            ctx.logger.warn(
              `${this.opts.where}: committing offsets to group '${this.opts.consumerGroupId}' failed: ${describeKafkaError(e)}`,
            );
            this.dirty = true;
            await this.producer?.disconnect().catch(() => {});
            this.producer = undefined;
          }
        },
        () => {},
      )
      .finally(() => {
        if (ticket.replaced) return;
        assert(this.pending === ticket, `${this.opts.where}: an offset commit ended that was not pending`);
        this.pending = undefined;
        if (this.dirty) this.schedule(ctx, positions);
      });
  }

  /**
   * Commit offsets to the configured group without joining it: a transaction holding only the
   * offsets (TxnOffsetCommit accepts a group that has no members). kafkajs's admin.setOffsets
   * would join the group as a consumer for every commit.
   */
  private async commit(offsets: PartitionOffset[]): Promise<void> {
    if (this.producer === undefined) {
      const p = this.kafka.producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionalId: `${this.opts.consumerGroupId}.statefn-offsets`,
        transactionTimeout: kafkaOffsetTransactionTimeoutMs,
      });
      await p.connect();
      this.producer = p;
    }
    const topics = [...new Set(offsets.map((o) => o.topic))].map((topic) => ({
      topic,
      partitions: offsets.filter((o) => o.topic === topic).map(({ partition, offset }) => ({ partition, offset })),
    }));
    const tx = await this.producer.transaction();
    try {
      await tx.sendOffsets({ consumerGroupId: this.opts.consumerGroupId, topics });
      await tx.commit();
    } catch (e) {
      if (tx.isActive()) await tx.abort().catch(() => {});
      throw e;
    }
  }

  /** Disconnect the producer (undefined when none was created). */
  disconnect(): Promise<void> | undefined {
    return this.producer?.disconnect();
  }
}
