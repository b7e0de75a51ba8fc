/**
 * A worker's part of checkpoint n (Chandy-Lamport with barrier alignment). The first barrier of
 * epoch n, from any input ring, captures this worker's dirty states, timer changes and every
 * message received but not handled yet, and forwards the barrier on every output ring. Until
 * the barrier of epoch n has arrived on every input ring, the messages arriving on the rings
 * whose barrier is still missing were sent before the checkpoint and are recorded with it. Once
 * aligned, the epoch's state, undo records and recorded messages are written to LMDB in one
 * transaction, and the epoch is acknowledged to the main thread.
 */
import type { Packr } from 'msgpackr';
import type { Clock } from '../shared/clock.js';
import { assert } from '../shared/errors.js';
import { ControlOp, MESSAGE_FIELDS } from '../shared/frames.js';
import { keyGroupOf } from '../shared/key_group.js';
import { Stat, type StatsBlock } from '../shared/stats_block.js';
import { ckptKey, kgOfKey, stateKey, undoKey, type UndoDb } from '../state/state_keys.js';
import { epochStampOp, undoDbOf, type StateStore, type WriteOp } from '../state/state_store.js';
import { encodeState, isEmptyState, type AddressState } from './address_state.js';
import type { FunctionTable } from './function_table.js';
import type { Router } from './router.js';
import type { StateCache } from './state_cache.js';
import type { TimerService } from './timer_service.js';
import { checkpointEncodeSliceStates } from '../shared/limits.js';

const UNDO_ABSENT = Buffer.from([0]);
const UNDO_PRESENT = Buffer.from([1]);

/** What one epoch's checkpoint captured, while its barriers arrive and until it is written. */
interface EpochCapture {
  readonly epoch: number;
  /** Input threads whose barrier has not arrived yet: what they send meanwhile is recorded. */
  readonly waiting: Set<number>;
  /** Messages of the checkpoint (flat, MESSAGE_FIELDS each): unhandled at capture, then recorded. */
  readonly recorded: unknown[];
  readonly captured: AddressState[];
  readonly timerOps: WriteOp[];
}

/** What the checkpoint needs from the rest of the worker. */
export interface WorkerCheckpointOptions {
  readonly self: number;
  readonly keyGroups: number;
  /** Thread indexes of the input rings (each delivers one barrier per epoch). */
  readonly inputSources: readonly number[];
  readonly store: StateStore;
  readonly codec: Packr;
  readonly clock: Clock;
  readonly stats: StatsBlock;
  readonly fns: FunctionTable;
  readonly cache: StateCache;
  readonly timers: TimerService;
  readonly router: Router;
  /** Every message received and not handled yet (flat, MESSAGE_FIELDS each), oldest first per address. */
  readonly unhandledMessages: () => unknown[];
  readonly fatal: (e: unknown) => void;
  readonly kick: () => void;
}

export class WorkerCheckpoint {
  /** The checkpoint whose barriers are arriving (between the first and the last of its epoch). */
  private aligning: EpochCapture | null = null;
  /** The write of the last aligned checkpoint, until it has committed. */
  private writing: Promise<void> | null = null;

  constructor(private readonly o: WorkerCheckpointOptions) {}

  /** Messages of a MESSAGES frame from `source` arrived: record them when they cross the checkpoint. */
  onMessages(frame: readonly unknown[], source: number): void {
    // In flight across the checkpoint: sent before the sender's barrier, arriving after our capture.
    const a = this.aligning;
    if (a !== null && a.waiting.has(source)) for (let i = 1; i < frame.length; i++) a.recorded.push(frame[i]);
  }

  /** The barrier of checkpoint `epoch` arrived from `source`. */
  onBarrier(epoch: number, source: number): void {
    assert(
      this.o.inputSources.includes(source),
      () => `worker ${this.o.self}: barrier ${epoch} from thread ${source}, which is not an input`,
    );
    if (this.aligning === null) {
      this.start(epoch, source);
    } else {
      const a = this.aligning;
      assert(a.epoch === epoch, () => `worker ${this.o.self}: barrier ${epoch} from thread ${source} during checkpoint ${a.epoch}`);
      assert(a.waiting.has(source), () => `worker ${this.o.self}: second barrier ${epoch} from thread ${source}`);
      a.waiting.delete(source);
    }
    if (this.aligning!.waiting.size === 0) void this.complete();
  }

  /**
   * The final checkpoint of a clean stop (after QUIESCE, so every message addressed to this
   * worker is here): records every message not handled yet, writes state and timers. Returns the
   * number of messages recorded.
   */
  async final(epoch: number): Promise<number> {
    while (this.writing !== null) await this.writing;
    assert(this.aligning === null, () => `worker ${this.o.self}: shutdown during checkpoint ${this.aligning!.epoch}`);
    const recorded = this.o.unhandledMessages();
    this.o.router.toMain.control(ControlOp.EPOCH_MARK, epoch);
    this.aligning = { epoch, waiting: new Set(), recorded, captured: this.o.cache.captureDirty(), timerOps: this.o.timers.takeOps() };
    await this.complete();
    return recorded.length / MESSAGE_FIELDS;
  }

  /**
   * The first barrier of an epoch: capture the dirty set and every message not handled yet, then
   * forward the barrier behind everything already sent, and mark where this epoch's egress ends.
   */
  private start(epoch: number, firstSource: number): void {
    assert(this.writing === null, () => `worker ${this.o.self}: barrier ${epoch} while the previous epoch is still being written`);
    const recorded = this.o.unhandledMessages();
    const waiting = new Set(this.o.inputSources);
    waiting.delete(firstSource);
    this.aligning = { epoch, waiting, recorded, captured: this.o.cache.captureDirty(), timerOps: this.o.timers.takeOps() };
    this.o.router.forwardBarrier(epoch);
  }

  /**
   * Every barrier of the epoch arrived: write it, then acknowledge it to the main thread. Returns
   * the write (also kept in `writing` until it has committed).
   */
  private complete(): Promise<void> {
    const a = this.aligning!;
    assert(
      a.waiting.size === 0,
      () => `worker ${this.o.self}: checkpoint ${a.epoch} completed while ${a.waiting.size} barrier(s) are missing`,
    );
    this.aligning = null;
    const started = Date.now();
    this.o.cache.setWriting(true);
    this.writing = this.write(a).then((writes) => {
      // Clear before acknowledging: the next barrier may arrive as soon as the ACK is out.
      this.writing = null;
      this.o.cache.setWriting(false);
      if (writes < 0) return;
      this.o.router.toMain.control(ControlOp.ACK, a.epoch, writes, Date.now() - started);
      this.o.kick();
    });
    return this.writing;
  }

  /**
   * Write this worker's part of a checkpoint: the captured states (encoded in slices between loop
   * steps; a captured state a handler is about to change is copied first, `snapshotCaptured`),
   * the timers' changes, undo records for all of them, the recorded messages and the epoch stamp,
   * as one sorted lmdb-js transaction on its write thread, then synced to disk. Returns the number
   * of writes, or -1 when it failed (the worker has failed then).
   */
  private async write(a: EpochCapture): Promise<number> {
    const emptied: AddressState[] = [];
    const ops: WriteOp[] = [];
    const store = this.o.store;
    try {
      for (const op of a.timerOps) {
        ops.push(this.undoOf(a.epoch, op.db as UndoDb, op.key, store.get(op.db, op.key)));
        ops.push(op);
      }
      for (let i = 0; i < a.captured.length;) {
        const end = Math.min(a.captured.length, i + checkpointEncodeSliceStates);
        const now = this.o.clock.now();
        for (; i < end; i++) {
          const st = a.captured[i]!;
          if (st.capture || st.snap !== null) this.encodeCaptured(st, ops, emptied, now, a.epoch);
        }
        if (i < a.captured.length) await new Promise<void>((r) => setImmediate(r));
      }
      this.recordMessages(a.epoch, a.recorded, ops);
      // In the same transaction: an environment stamped n holds all of epoch n (checked against
      // the checkpoint record at start, state/env_check.ts).
      ops.push(epochStampOp(a.epoch));
      // This parity's undo database holds epoch n-2's records, whose checkpoint is complete.
      await store.clear(undoDbOf(a.epoch));
      await store.write(ops);
      // On disk before the ACK (LMDB is opened with noSync): the checkpoint record, written once
      // every worker acknowledged, then never names an epoch a power cut could take back.
      await store.sync();
    } catch (e) {
      this.o.fatal(e);
      return -1;
    }
    this.o.cache.dropEmptied(emptied);
    this.o.timers.afterCheckpoint(this.o.clock.now());
    this.o.stats.set(this.o.self, Stat.checkpointedEpoch, a.epoch);
    return ops.length;
  }

  private undoOf(epoch: number, db: UndoDb, key: Buffer, old: Buffer | undefined): WriteOp {
    const value = old === undefined ? UNDO_ABSENT : Buffer.concat([UNDO_PRESENT, old]);
    return { db: undoDbOf(epoch), key: undoKey(kgOfKey(key), epoch, db, key), value };
  }

  private recordMessages(epoch: number, fields: unknown[], ops: WriteOp[]): void {
    assert(
      fields.length % MESSAGE_FIELDS === 0,
      () => `worker ${this.o.self}: checkpoint ${epoch} recorded ${fields.length} fields, not whole messages`,
    );
    let seq = 0;
    for (let h = 0; h + MESSAGE_FIELDS <= fields.length; h += MESSAGE_FIELDS) {
      const f = fields.slice(h, h + MESSAGE_FIELDS);
      const kg = keyGroupOf(f[1] as string, this.o.keyGroups);
      ops.push({ db: 'ckpt', key: ckptKey(kg, epoch, seq++), value: Buffer.from(this.o.codec.pack(f)) });
    }
  }

  private encodeCaptured(st: AddressState, ops: WriteOp[], emptied: AddressState[], now: number, epoch: number): void {
    st.capture = false;
    const fn = this.o.fns.known(st.fnType);
    assert(fn !== undefined, () => `worker ${this.o.self}: cached state of unknown function type ${st.fnType}`);
    // The slots as captured: copied by the first invocation that changed them since (their bytes
    // and immutable values are never changed in place, address_state.ts), or the current ones.
    const snap = st.snap;
    st.snap = null;
    const value = encodeState(this.o.codec, snap === null ? st : { ...snap, orphans: st.orphans }, fn.specs, now);
    const key = stateKey(st.kg, st.fnType, st.id);
    ops.push(this.undoOf(epoch, 'state', key, st.persisted));
    ops.push({ db: 'state', key, value });
    st.persisted = value;
    if (value === undefined && isEmptyState(st)) emptied.push(st);
  }
}
