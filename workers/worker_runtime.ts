/**
 * The worker runtime: owns a range of key groups, their state (LMDB + cache), their timers, and
 * the invocation of every function instance in them. This file holds the loop, the control
 * frames from the main thread and the clean stop; the parts it drives own their state:
 * pending_queue.ts, mailboxes.ts, dispatcher.ts, remote_invoker.ts, effects.ts, state_cache.ts,
 * router.ts, back_pressure.ts and worker_checkpoint.ts.
 *
 * The loop, one step at a time (never blocking; the event loop stays free for async handlers,
 * LMDB commits and timers):
 *   1. read frames from the input rings into the pending queue (ingress from the main ring only
 *      while this worker is not back-pressured, except by its dirty set, which only a barrier on
 *      that ring clears; worker rings always, so cycles can't wedge);
 *   2. handle up to `batchMessagesMax` pending messages, each on its address: synchronously when
 *      the handler is sync, else the address is busy until its promise settles and later
 *      messages for it wait in its mailbox, in arrival order;
 *   3. fire due timers;
 *   4. push outgoing batches into the rings (parking what does not fit);
 *   5. sleep on the doorbell when there is nothing to do.
 */
import type { Packr } from 'msgpackr';
import type { App } from '../api/app.js';
import type { Payload } from '../api/types.js';
import { DEAD_LETTER_EGRESS } from '../api/app.js';
import type { Clock } from '../shared/clock.js';
import { Doorbells } from '../shared/doorbell.js';
import { ErrorCode, StatefnError, assert } from '../shared/errors.js';
import { ControlOp, FrameKind, MESSAGE_FIELDS, createCodec } from '../shared/frames.js';
import { keyGroupRange, ownerTable } from '../shared/key_group.js';
import { InLink } from '../shared/link.js';
import { Stat, StatsBlock } from '../shared/stats_block.js';
import { kgEpochBound } from '../state/state_keys.js';
import type { StateStore } from '../state/state_store.js';
import type { WorkerInit } from '../config/worker_init.js';
import { BackPressure } from './back_pressure.js';
import { Dispatcher } from './dispatcher.js';
import { Effects } from './effects.js';
import { FunctionTable } from './function_table.js';
import { Mailboxes } from './mailboxes.js';
import { PendingQueue } from './pending_queue.js';
import { pruneCommitted } from './recovery.js';
import { RemoteInvoker } from './remote_invoker.js';
import { Router } from './router.js';
import { StateCache } from './state_cache.js';
import { TimerService, type Timer } from './timer_service.js';
import { WorkerCheckpoint } from './worker_checkpoint.js';
import { doorbellWaitMaxMs, mainRingFramesPerStep, parkedPollMs, peerPushMessagesMask, workerRingFramesPerStep } from '../shared/limits.js';
import type { WorkerStatus } from './worker_status.js';

/** The stages of a clean stop, in order. */
const enum StopStage {
  /** Handling messages. */
  Running,
  /** QUIESCE arrived: no handler is invoked any more; waiting for async work and peers' marks. */
  Quiescing,
  /** Every peer's mark arrived and nothing runs: QUIESCED was reported to the main thread. */
  Quiesced,
  /** SHUTDOWN arrived: the final checkpoint is being written. */
  ShuttingDown,
}

export class WorkerRuntime implements WorkerStatus {
  private readonly self: number;
  private readonly main: number;
  private readonly codec: Packr;
  private readonly doorbells: Doorbells;
  private readonly stats: StatsBlock;
  private readonly kgStart: number;
  private readonly kgEnd: number;
  private readonly inputs: InLink[] = [];
  readonly timers: TimerService;
  private readonly pending = new PendingQueue();
  private readonly mailboxes = new Mailboxes();
  private readonly cache: StateCache;
  private readonly router: Router;
  private readonly remote: RemoteInvoker;
  private readonly dispatcher: Dispatcher;
  private readonly pressure: BackPressure;
  private readonly checkpoint: WorkerCheckpoint;

  private scheduled = false;
  private sleeping = false;
  private stage = StopStage.Running;
  private quiesceMarks = 0;
  private marksSent = false;
  private stoppedFlag = false;
  private readonly dueBuf: Timer[] = [];
  private readonly badFrame = (err: StatefnError): void => this.fatal(err);
  private readonly loopFn = (): void => this.loop();
  private readonly deliverFn = (
    targetType: string,
    targetId: string,
    callerType: string | null,
    callerId: string | null,
    typename: string,
    payload: Payload,
  ): void => this.dispatcher.deliver(targetType, targetId, callerType, callerId, typename, payload, 1);
  private readonly everyHandled = (n: number): void => {
    if ((n & peerPushMessagesMask) === 0) this.router.pushToPeers();
  };

  constructor(
    private readonly init: WorkerInit,
    app: App,
    private readonly store: StateStore,
    private readonly clock: Clock,
    private readonly onExit: (code: number) => void,
  ) {
    this.self = init.index;
    this.main = init.workers;
    this.codec = createCodec();
    this.doorbells = new Doorbells(init.doorbells);
    this.stats = new StatsBlock(init.stats, init.workers + 1);
    const owner = ownerTable(init.workers, init.keyGroups);
    const r = keyGroupRange(init.index, init.workers, init.keyGroups);
    this.kgStart = r.start;
    this.kgEnd = r.end;
    const L = init.limits;
    for (let t = 0; t <= init.workers; t++) {
      if (t === this.self) continue;
      this.inputs.push(new InLink(init.rings[t]![this.self]!, this.codec, t, t === this.main ? 'main' : `worker ${t}`));
    }
    // Read the main thread's ring last so internal traffic is preferred under load.
    this.inputs.sort((a, b) => (a.source === this.main ? 1 : 0) - (b.source === this.main ? 1 : 0));
    const fns = new FunctionTable(app, init.remoteEndpoints);
    this.router = new Router(init, this.codec, this.doorbells, this.stats, owner, this.pending, clock);
    this.cache = new StateCache({
      store,
      codec: this.codec,
      self: this.self,
      owner,
      keyGroups: init.keyGroups,
      entriesMax: L.stateCacheEntriesMax,
      isBusy: (key) => this.mailboxes.isBusy(key),
      fnTypes: fns.embeddedTypes(),
    });
    this.timers = new TimerService(store, this.codec, this.kgStart, this.kgEnd, L.timerHorizonMs, clock.now());
    const egressIds = new Set([...app.egresses.keys(), ...init.egressIds, DEAD_LETTER_EGRESS]);
    const effects = new Effects(this.self, egressIds, this.timers, this.cache, this.router, this.stats);
    this.remote = new RemoteInvoker(this.self, this.mailboxes, this.cache, effects, this.router, this.stats, clock, this);
    this.dispatcher = new Dispatcher(
      init,
      this.self,
      fns,
      this.mailboxes,
      this.cache,
      effects,
      this.remote,
      this.router,
      this.stats,
      clock,
      this,
    );
    this.pressure = new BackPressure(this.self, L, this.stats);
    this.checkpoint = new WorkerCheckpoint({
      self: this.self,
      keyGroups: init.keyGroups,
      inputSources: this.inputs.map((l) => l.source),
      store,
      codec: this.codec,
      clock,
      stats: this.stats,
      fns,
      cache: this.cache,
      timers: this.timers,
      router: this.router,
      unhandledMessages: () => this.unhandledMessages(),
      fatal: (e) => this.fatal(e),
      kick: () => this.kick(),
    });
  }

  /** True once QUIESCE arrived (see WorkerStatus). */
  get quiescing(): boolean {
    return this.stage !== StopStage.Running;
  }

  /** True once the worker stopped (see WorkerStatus). */
  get stopped(): boolean {
    return this.stoppedFlag;
  }

  /**
   * Re-enqueue the messages checkpoint `epoch` recorded (in flight across it, or waiting at a
   * clean stop), in their recorded order, then run. The environment was rolled back to that
   * checkpoint before (recovery.ts).
   */
  start(epoch: number): void {
    for (let kg = this.kgStart; kg < this.kgEnd; kg++) {
      for (const { value } of this.store.range('ckpt', kgEpochBound(kg, epoch), kgEpochBound(kg, epoch + 1))) {
        const f = this.codec.unpack(value) as unknown[];
        assert(
          Array.isArray(f) && f.length >= MESSAGE_FIELDS,
          () => `worker ${this.self}: recorded message of checkpoint ${epoch} is malformed`,
        );
        this.pending.pushFields(f.slice(0, MESSAGE_FIELDS));
      }
    }
    this.kick();
  }

  /** Schedule a loop step soon (idempotent). */
  kick(): void {
    // Asleep on the doorbell (scheduled for its wake-up): ring it, or an async completion (a
    // remote reply, an async handler, a retry timer) would wait for the next frame or the timeout.
    if (this.sleeping && !this.stoppedFlag) {
      this.doorbells.ringAlways(this.self);
      return;
    }
    if (this.scheduled || this.stoppedFlag) return;
    this.scheduled = true;
    setImmediate(this.loopFn);
  }

  private loop(): void {
    this.scheduled = false;
    if (this.stoppedFlag) return;
    if (this.sleeping) {
      this.sleeping = false;
      this.doorbells.awake(this.self);
    }
    const L = this.init.limits;
    const quiescing = (): boolean => this.stage !== StopStage.Running;
    try {
      // 1. inputs
      for (const link of this.inputs) {
        if (this.gated(link)) continue;
        // Ingress (the main ring) is admitted a few frames per step and only while less than a
        // batch is pending, so fan-out of admitted work, not ingress, bounds the pending queue.
        // The backlog then waits in the ring as bytes, where it costs nothing, instead of as
        // decoded objects that every young-generation GC would copy while they wait.
        const isMain = link.source === this.main;
        if (isMain && !quiescing() && this.pending.count() >= L.batchMessagesMax) continue;
        const frames = link.read(isMain ? mainRingFramesPerStep : workerRingFramesPerStep, this.badFrame);
        for (const f of frames) this.onFrame(f, link.source);
      }
      // 2. pending messages
      if (!quiescing()) this.handlePending(L.batchMessagesMax);
      // 3. timers
      if (!quiescing()) this.fireTimers();
      // 4. outputs
      const parked = this.router.pushAll();
      this.pressure.update({
        parkedBytes: parked,
        pendingMessages: this.pending.count(),
        mailboxedMessages: this.mailboxes.waiting,
        asyncInvocations: this.mailboxes.active,
        remoteFullAddresses: this.mailboxes.remoteFullCount,
        cacheEntries: this.cache.entryCount,
        dirtyEntries: this.cache.dirtyCount,
      });
      if (quiescing()) this.checkQuiesced();
      // 5. next step
      const more = (!quiescing() && this.pending.count() > 0) || this.inputs.some((l) => !l.isEmpty() && !this.gated(l));
      if (more) {
        this.kick();
      } else if (parked > 0) {
        // Waiting for a consumer to make room: poll gently (consumers do not ring producers).
        this.scheduled = true;
        setTimeout(this.loopFn, parkedPollMs);
      } else {
        this.sleep();
      }
    } catch (e) {
      this.fatal(e);
    }
  }

  /**
   * True when `link` is not read now: the main thread's ring while this worker is back-pressured.
   * Once quiescing it is always read: no ingress follows QUIESCE on it, only control frames
   * (SHUTDOWN), and a quiescing worker no longer handles its pending messages, so its pressure
   * would never clear and a clean stop under load would wait for SHUTDOWN forever.
   */
  private gated(link: InLink): boolean {
    return link.source === this.main && this.pressure.gatesMainRing && this.stage === StopStage.Running;
  }

  private sleep(): void {
    const seq = this.doorbells.prepareWait(this.self);
    // Re-check after announcing sleep: a producer that published before it saw the flag is caught here.
    if (this.inputs.some((l) => !l.isEmpty() && !this.gated(l))) {
      this.doorbells.awake(this.self);
      this.kick();
      return;
    }
    this.sleeping = true;
    const due = this.quiescing ? Infinity : this.timers.nextDue();
    const now = this.clock.now();
    // With a manual clock, time moves only by CLOCK control frames, which ring the doorbell.
    const timeout = due === Infinity ? doorbellWaitMaxMs : Math.max(0, Math.min(doorbellWaitMaxMs, due - now));
    this.scheduled = true;
    const p = this.doorbells.waitAsync(this.self, seq, timeout);
    if (p === undefined) setImmediate(this.loopFn);
    else void p.then(this.loopFn);
  }

  // ---- frames ----

  private onFrame(f: unknown[], source: number): void {
    switch (f[0]) {
      case FrameKind.MESSAGES:
        this.pending.pushFrame(f);
        this.checkpoint.onMessages(f, source);
        return;
      case FrameKind.CONTROL:
        assert(typeof f[1] === 'number', () => `worker ${this.self}: control frame without an op from thread ${source}`);
        this.onControl(f[1], f.slice(2), source);
        return;
      default:
        throw new StatefnError(
          ErrorCode.FRAME_MALFORMED,
          `worker ${this.self}: unexpected frame kind ${String(f[0])} from thread ${source}`,
        );
    }
  }

  private onControl(op: number, args: unknown[], source: number): void {
    switch (op) {
      case ControlOp.BARRIER:
        this.checkpoint.onBarrier(this.epochArg(args, op, source), source);
        return;
      case ControlOp.COMMIT:
        void pruneCommitted(this.store, this.kgStart, this.kgEnd, this.epochArg(args, op, source)).catch((e: unknown) => this.fatal(e));
        return;
      case ControlOp.CLOCK:
        this.timers.scan(this.clock.now());
        return;
      case ControlOp.QUIESCE:
        // Stop invoking handlers. Once running async invocations have settled (their effects
        // may still send), every other worker gets a mark after everything we sent it.
        assert(
          source === this.main && this.stage === StopStage.Running,
          () => `worker ${this.self}: QUIESCE from thread ${source} in stop stage ${this.stage}`,
        );
        this.stage = StopStage.Quiescing;
        // Remote calls in flight are aborted; their batches are saved with the mailboxes.
        this.remote.abortInFlight();
        return;
      case ControlOp.QUIESCE_MARK:
        assert(source !== this.main, () => `worker ${this.self}: QUIESCE_MARK from the main thread`);
        this.quiesceMarks++;
        return;
      case ControlOp.SHUTDOWN:
        // The main thread sends SHUTDOWN once every worker reported QUIESCED.
        assert(
          source === this.main && this.stage === StopStage.Quiesced,
          () => `worker ${this.self}: SHUTDOWN from thread ${source} in stop stage ${this.stage}`,
        );
        this.stage = StopStage.ShuttingDown;
        void this.shutdown(this.epochArg(args, op, source));
        return;
      default:
        throw new StatefnError(ErrorCode.FRAME_MALFORMED, `worker ${this.self}: unknown control op ${op} from thread ${source}`);
    }
  }

  /** The epoch argument of a control frame. */
  private epochArg(args: unknown[], op: number, source: number): number {
    const epoch = args[0];
    assert(
      typeof epoch === 'number' && Number.isInteger(epoch) && epoch >= 0,
      () => `worker ${this.self}: control op ${op} from thread ${source} has epoch ${String(epoch)}`,
    );
    return epoch;
  }

  /** Quiesced once every other worker's mark arrived and no async invocation is running. */
  private checkQuiesced(): void {
    if (this.mailboxes.active > 0) return;
    if (!this.marksSent) {
      this.marksSent = true;
      this.router.sendQuiesceMarks();
    }
    if (this.stage !== StopStage.Quiescing || this.quiesceMarks < this.init.workers - 1) return;
    this.stage = StopStage.Quiesced;
    this.router.controlToMain(ControlOp.QUIESCED, this.pending.count() + this.mailboxes.waiting);
  }

  // ---- handling messages ----

  private handlePending(max: number): void {
    this.pending.take(max, this.deliverFn, this.everyHandled);
    this.stats.set(this.self, Stat.pending, this.pending.count());
  }

  private fireTimers(): void {
    const due = this.dueBuf;
    due.length = 0;
    this.timers.due(this.clock.now(), this.init.limits.batchMessagesMax, due);
    for (const t of due) this.router.route(t.targetType, t.targetId, t.senderType, t.senderId, t.typename, t.payload);
    this.stats.set(this.self, Stat.timers, this.timers.inMemory);
  }

  /**
   * Every message received and not handled yet (flat, MESSAGE_FIELDS each). Per address, oldest
   * first: the running (or retrying) input, its mailbox, then pending.
   */
  private unhandledMessages(): unknown[] {
    const out: unknown[] = [];
    this.mailboxes.appendUnhandled(out);
    this.pending.appendTo(out);
    return out;
  }

  // ---- shutdown ----

  /**
   * Clean stop (after QUIESCE, so every message addressed to this worker is here): the final
   * checkpoint records every message not handled yet (mailboxes and pending), writes state and
   * timers, then LMDB closes. The main thread completes the checkpoint once every worker is done.
   */
  private async shutdown(epoch: number): Promise<void> {
    const recorded = await this.checkpoint.final(epoch);
    try {
      await this.store.close();
    } catch (e) {
      this.fatal(e);
      return;
    }
    this.router.controlToMain(ControlOp.SHUTDOWN_DONE, recorded);
    this.stoppedFlag = true;
    this.onExit(0);
  }

  /** Fail the worker (see WorkerStatus). */
  fatal(e: unknown): void {
    this.stoppedFlag = true;
    const err = e instanceof Error ? e : new Error(String(e));
    // Let the main thread's supervisor see the error through the worker's 'error' event.
    setImmediate(() => {
      throw err;
    });
  }
}
