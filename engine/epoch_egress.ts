/**
 * Egress held per epoch: with checkpointing on, a record a worker sends is visible only once the
 * checkpoint of its epoch is complete (exactly-once). Records arrive per worker; the worker's
 * EPOCH_MARK closes its share of an epoch; when checkpoint n completes every epoch <= n is
 * released to the egress dispatcher in order. Exactly-once sinks also get each epoch's records
 * in a durable file (egress_log.ts) before the checkpoint record, and after a crash the epochs
 * a sink had not committed are handed to it again.
 */
import type { EgressConnector, EgressRecord, Logger } from '../api/connector_api.js';
import type { Message } from '../api/message.js';
import { assert } from '../shared/errors.js';
import type { DeadLetters } from './dead_letters.js';
import type { EgressDispatcher } from './egress_dispatcher.js';
import { deleteEgressEpoch, egressEpochs, readEgressEpoch, writeEgressEpoch } from './egress_log.js';

export class EpochEgress {
  /** Records per worker since its last EPOCH_MARK. */
  private open: EgressRecord[][];
  /** Records per closed epoch, until the epoch's checkpoint completes. */
  private readonly byEpoch = new Map<number, EgressRecord[]>();
  /** Records in `open` and `byEpoch`: held until their checkpoint completes (bounded by back-pressure). */
  private heldCount = 0;
  /** The epoch each exactly-once sink committed last. */
  private readonly sinkCommitted = new Map<string, number>();
  /** Egresses that take records before their checkpoint completes (see EgressConnector.deliverBeforeCheckpoint). */
  private readonly deliverEarly: Set<string>;

  constructor(
    workers: number,
    private readonly egress: EgressDispatcher,
    private readonly deadLetters: DeadLetters,
    private readonly stateDir: string,
    private readonly checkpointing: boolean,
    private readonly logger: Logger,
  ) {
    this.open = Array.from({ length: workers }, () => []);
    this.deliverEarly = new Set(
      egress
        .connectors()
        .filter((c) => c.deliverBeforeCheckpoint === true)
        .map((c) => c.id),
    );
  }

  /** Records held for their checkpoint. */
  held(): number {
    return this.heldCount;
  }

  /** A record worker `source` sent: dead-lettered, held for its checkpoint, or delivered now. */
  accept(source: number, egressId: string, message: Message): void {
    if (!this.egress.has(egressId)) {
      this.deadLetters.unknownEgress(egressId, message.typename);
    } else if (this.checkpointing && !this.deliverEarly.has(egressId)) {
      // Visible only once the checkpoint of its epoch is complete.
      const open = this.open[source];
      assert(open !== undefined, () => `egress from unknown worker ${source}`);
      open.push({ egressId, message });
      this.heldCount++;
    } else if (!this.egress.push({ egressId, message })) {
      this.deadLetters.unknownEgress(egressId, message.typename);
    }
  }

  /** Worker `source` finished its share of `epoch`: what it sent since its last mark belongs to it. */
  onEpochMark(source: number, epoch: number): void {
    const open = this.open[source];
    assert(open !== undefined, () => `EPOCH_MARK from unknown worker ${source}`);
    if (open.length === 0) return;
    const bucket = this.byEpoch.get(epoch);
    if (bucket === undefined) this.byEpoch.set(epoch, open);
    else for (const r of open) bucket.push(r);
    this.open[source] = [];
  }

  /**
   * Before checkpoint `epoch` is recorded: at-least-once sinks that get records early have
   * written them, and exactly-once sinks' records of the epochs it covers are durable.
   */
  async beforeRecord(epoch: number): Promise<void> {
    if (this.deliverEarly.size > 0) await this.egress.whenWritten((c) => c.deliverBeforeCheckpoint === true);
    const records = this.upTo(epoch);
    if (records.length > 0 && this.egress.transactional().length > 0) await writeEgressEpoch(this.stateDir, epoch, records);
  }

  /** Checkpoint `epoch` is complete: release its records and queue the sinks' commit. */
  afterRecord(epoch: number): void {
    const epochs = [...this.byEpoch.keys()].filter((e) => e <= epoch).sort((a, b) => a - b);
    for (const e of epochs) {
      const records = this.byEpoch.get(e)!;
      for (const r of records) this.egress.push(r);
      this.heldCount -= records.length;
      this.byEpoch.delete(e);
    }
    assert(this.heldCount >= 0, () => `egress held count went negative (${this.heldCount})`);
    this.egress.pump();
    this.egress.commit(epoch);
  }

  /** Ask every sink to write what it buffers (after each checkpoint); failures are logged only. */
  flushSinks(): void {
    for (const c of this.egress.connectors())
      void Promise.resolve(c.flush?.()).catch((e: unknown) =>
        this.logger.warn(`egress ${c.id}: flush failed`, { error: (e as Error).message }),
      );
  }

  private upTo(epoch: number): EgressRecord[] {
    const out: EgressRecord[] = [];
    // A loop, not push(...records): an epoch may hold more records than a call takes arguments.
    for (const e of [...this.byEpoch.keys()].filter((k) => k <= epoch).sort((a, b) => a - b))
      for (const r of this.byEpoch.get(e)!) out.push(r);
    return out;
  }

  /** A sink committed `epoch`: egress files every exactly-once sink has committed can go. */
  onCommitted(id: string, epoch: number): void {
    this.sinkCommitted.set(id, epoch);
    let min = Infinity;
    for (const c of this.egress.transactional()) min = Math.min(min, this.sinkCommitted.get(c.id) ?? c.committedEpoch!());
    for (const k of egressEpochs(this.stateDir)) if (k <= min) deleteEgressEpoch(this.stateDir, k);
  }

  /**
   * After a crash: hand each exactly-once sink the egress of complete checkpoints it had not
   * committed (it discarded any partly written epoch when it started), and drop files of epochs
   * after the recovered checkpoint `recovered` (never complete).
   */
  async redeliver(recovered: number): Promise<void> {
    if (!this.checkpointing) return;
    const sinks: EgressConnector[] = this.egress.transactional();
    for (const c of sinks) await c.discardUncommitted?.();
    for (const k of egressEpochs(this.stateDir)) {
      if (k > recovered) {
        deleteEgressEpoch(this.stateDir, k);
        continue;
      }
      const behind = sinks.filter((c) => c.committedEpoch!() < k);
      if (behind.length === 0) continue;
      const records = readEgressEpoch(this.stateDir, k);
      for (const c of behind) {
        const mine = records.filter((r) => r.egressId === c.id);
        this.logger.info(
          `egress ${c.id}: writing the ${mine.length} records of checkpoint ${k} again (committed up to ${c.committedEpoch!()})`,
        );
        for (const r of mine) this.egress.push(r);
        this.egress.commit(k, c.id);
      }
    }
  }
}
