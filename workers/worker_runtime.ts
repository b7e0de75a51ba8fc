/**
 * The worker runtime: owns a range of key groups, their state (LMDB + cache), their timers, and
 * the invocation of every function instance in them.
 *
 * The loop, one step at a time (never blocking; the event loop stays free for async handlers,
 * LMDB commits and timers):
 *   1. read frames from the input rings into the `pending` queue (ingress from the main ring
 *      only while this worker is not back-pressured, except by its dirty set, which only a barrier on that ring clears; worker rings always, so cycles can't wedge);
 *   2. handle up to `batchMessagesMax` pending messages, each on its address: synchronously when
 *      the handler is sync, else the address is busy until its promise settles and later
 *      messages for it wait in its mailbox, in arrival order;
 *   3. fire due timers;
 *   4. flush outgoing batches into the rings (parking what does not fit);
 *   5. sleep on the doorbell when there is nothing to do.
 */
import type { Packr } from 'msgpackr';
import type { Address } from '../api/address.js';
import type { App } from '../api/app.js';
import { DEAD_LETTER_EGRESS } from '../api/app.js';
import type { Clock } from '../shared/clock.js';
import { Doorbells } from '../shared/doorbell.js';
import { ErrorCode, StatefnError, assert, errorInfo, isStatefnError } from '../shared/errors.js';
import { ControlOp, FrameKind, MESSAGE_FIELDS, createCodec } from '../shared/frames.js';
import type { FunctionSpec, ValueSpec } from '../api/function_api.js';
import { keyGroupOf, keyGroupRange, ownerTable } from '../shared/key_group.js';
import { InLink, OutLink } from '../shared/link.js';
import { Message } from '../api/message.js';
import { REMOTE_BATCH_BUCKETS, Stat, StatsBlock } from '../shared/stats_block.js';
import type { Payload } from '../api/types.js';
import { decodeState, encodeState, isEmptyState, type AddressState } from './address_state.js';
import { Invocation, storageClass } from './invocation.js';
import { ckptKey, kgEpochBound, kgOfKey, stateKey, undoKey, type UndoDb } from '../state/state_keys.js';
import { pruneCommitted } from './recovery.js';
import { undoDbOf, type StateStore, type WriteOp } from '../state/state_store.js';
import { TimerService, tokenInUseError, type Timer } from './timer_service.js';
import type { WorkerInit } from '../config/worker_init.js';
import { endpointFor, endpointUrl, type RemoteEndpoint } from '../api/endpoint.js';
import { RemoteHttpClient } from '../remote/http_client.js';
import { decodeFromFunction, encodeToFunction } from '../remote/protocol.js';
import { buildRequest, registerSpecs, REMOTE_STATE_SPEC, stageResponse, type RemoteFnState, type RemoteValues } from './remote_batch.js';

/** Messages handled between pushes of what is queued for other workers (a power of two, minus 1). */
const PEER_FLUSH_EVERY_MASK = 63;

/** Rounds of "incomplete invocation context" a remote batch may take before it fails. */
const REMOTE_NEGOTIATION_ROUNDS = 4;

/** States encoded and queued per loop step during a flush. */
const FLUSH_SLICE_STATES = 500;
const UNDO_ABSENT = Buffer.from([0]);
const UNDO_PRESENT = Buffer.from([1]);

/** A worker's part of a checkpoint while its barriers arrive. */
interface Cut {
  epoch: number;
  /** Input threads whose barrier has not arrived yet: what they send meanwhile is recorded. */
  waiting: Set<number>;
  /** Messages of the cut (flat, MESSAGE_FIELDS each): unhandled at capture, then recorded. */
  recorded: unknown[];
  captured: AddressState[];
  timerOps: WriteOp[];
}

interface FnRuntime {
  spec: FunctionSpec;
  /** Set for a function type served by a remote endpoint (its state is REMOTE_STATE_SPEC). */
  remote?: RemoteFnState;
  specs: readonly ValueSpec[];
  specIndex: Map<string, number>;
  Storage: new (inv: Invocation) => object;
  hasCallTtl: boolean;
  cache: Map<string, AddressState>;
}

/** A message waiting for a busy address, or being retried. */
interface Envelope {
  targetType: string;
  targetId: string;
  callerType: string | null;
  callerId: string | null;
  typename: string;
  payload: Payload;
  attempt: number;
}

export class WorkerRuntime {
  private readonly self: number;
  private readonly main: number;
  private readonly codec: Packr;
  private readonly doorbells: Doorbells;
  private readonly stats: StatsBlock;
  private readonly owner: Uint16Array;
  private readonly kgStart: number;
  private readonly kgEnd: number;
  private readonly inputs: InLink[] = [];
  private readonly outs: (OutLink | null)[] = [];
  private readonly fns = new Map<string, FnRuntime>();
  private readonly egressIds: Set<string>;
  readonly timers: TimerService;

  /** Decoded messages waiting to be handled: flat, MESSAGE_FIELDS per message, from `head`. */
  private pending: unknown[] = [];
  private pendingHead = 0;
  /** Addresses with an invocation in progress (async or retrying), with their waiting messages. */
  private readonly busy = new Map<string, Envelope[]>();
  private mailboxed = 0;
  private asyncInFlight = 0;
  private cacheEntries = 0;
  private dirty: AddressState[] = [];

  private scheduled = false;
  private sleeping = false;
  private pressured = false;
  /** Back-pressured for a reason that reading the main ring would worsen (everything but the dirty set). */
  private gateMain = false;
  private quiescing = false;
  private quiesceMarks = 0;
  private quiescedSent = false;
  private marksSent = false;
  private stopped = false;
  /** The checkpoint cut in progress (between the first and the last barrier of its epoch). */
  private cut: Cut | null = null;
  /** The write of the last cut, until it has committed. */
  private flushing: Promise<void> | null = null;
  /** Inputs of async invocations running now and of messages waiting to be retried, by address. */
  private readonly running = new Map<string, Envelope>();
  /** Remote batches in flight, by address (their messages are part of any checkpoint taken meanwhile). */
  private readonly remoteRunning = new Map<string, Envelope[]>();
  /** Addresses of remote functions whose mailbox reached the endpoint's maxNumBatchRequests. */
  private readonly remoteFull = new Set<string>();
  private readonly endpoints: readonly RemoteEndpoint[];
  private readonly remoteClients = new Map<RemoteEndpoint, RemoteHttpClient>();
  /** Aborts remote calls in flight when the worker stops (their batches are saved and sent again). */
  private readonly remoteAbort = new AbortController();
  private readonly badFrame = (err: StatefnError): void => this.fatal(err);
  private readonly loopFn = (): void => this.loop();

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
    this.owner = ownerTable(init.workers, init.keyGroups);
    const r = keyGroupRange(init.index, init.workers, init.keyGroups);
    this.kgStart = r.start;
    this.kgEnd = r.end;
    const L = init.limits;
    const threads = init.workers + 1;
    for (let t = 0; t < threads; t++) {
      if (t === this.self) {
        this.outs.push(null);
        continue;
      }
      const inBuf = init.rings[t]![this.self]!;
      this.inputs.push(new InLink(inBuf, this.codec, t, t === this.main ? 'main' : `worker ${t}`));
      const outBuf = init.rings[this.self]![t]!;
      this.outs.push(new OutLink(outBuf, this.codec, this.doorbells, t, L.frameBytesMax, L.batchMessagesMax, (f, n) => this.oversize(f, n)));
    }
    // Read the main thread's ring last so internal traffic is preferred under load.
    this.inputs.sort((a, b) => (a.source === this.main ? 1 : 0) - (b.source === this.main ? 1 : 0));
    this.endpoints = init.remoteEndpoints;
    for (const spec of app.functions.values()) {
      // A type a remote endpoint serves runs remote (configuration decides, not the code).
      if (endpointFor(this.endpoints, spec.typename) !== undefined) continue;
      const specs = spec.specs ?? [];
      this.fns.set(spec.typename, {
        spec,
        specs,
        specIndex: new Map(specs.map((s, i) => [s.name, i])),
        Storage: storageClass(specs),
        hasCallTtl: specs.some((s) => s.expireAfterCall !== undefined),
        cache: new Map(),
      });
    }
    this.egressIds = new Set([...app.egresses.keys(), ...init.egressIds, DEAD_LETTER_EGRESS]);
    this.timers = new TimerService(store, this.codec, this.kgStart, this.kgEnd, L.timerHorizonMs, clock.now());
  }

  /**
   * Re-enqueue the messages checkpoint `epoch` recorded (in flight across its cut, or waiting at
   * a clean stop), in their recorded order, then run. The environment was rolled back to that
   * checkpoint before (recovery.ts).
   */
  start(epoch: number): void {
    for (let kg = this.kgStart; kg < this.kgEnd; kg++) {
      for (const { value } of this.store.range('ckpt', kgEpochBound(kg, epoch), kgEpochBound(kg, epoch + 1))) {
        const f = this.codec.unpack(value) as unknown[];
        for (let i = 0; i < MESSAGE_FIELDS; i++) this.pending.push(f[i]);
      }
    }
    this.kick();
  }

  /** Schedule a loop step soon (idempotent). */
  kick(): void {
    // Asleep on the doorbell (scheduled for its wake-up): ring it, or an async completion (a
    // remote reply, an async handler, a retry timer) would wait for the next frame or the timeout.
    if (this.sleeping && !this.stopped) {
      this.doorbells.ringAlways(this.self);
      return;
    }
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(this.loopFn);
  }

  private loop(): void {
    this.scheduled = false;
    if (this.stopped) return;
    if (this.sleeping) {
      this.sleeping = false;
      this.doorbells.awake(this.self);
    }
    const L = this.init.limits;
    try {
      // 1. inputs
      for (const link of this.inputs) {
        if (this.gated(link)) continue;
        // Ingress (the main ring) is admitted a few frames per step and only while less than a
        // batch is pending, so fan-out of admitted work, not ingress, bounds the pending queue.
        // The backlog then waits in the ring as bytes, where it costs nothing, instead of as
        // decoded objects that every young-generation GC would copy while they wait.
        const isMain = link.source === this.main;
        if (isMain && !this.quiescing && this.pendingCount() >= this.init.limits.batchMessagesMax) continue;
        const frames = link.read(isMain ? 4 : 64, this.badFrame);
        for (const f of frames) this.onFrame(f, link.source);
      }
      // 2. pending messages
      if (!this.quiescing) this.handlePending(L.batchMessagesMax);
      // 3. timers
      if (!this.quiescing) this.fireTimers();
      // 4. outputs
      let parked = 0;
      for (const o of this.outs) {
        if (o === null) continue;
        o.flush();
        parked += o.parkedBytes;
      }
      this.updatePressure(parked);
      if (this.quiescing) this.checkQuiesced();
      // 5. next step
      const more = (!this.quiescing && this.pendingCount() > 0) || this.inputs.some((l) => !l.isEmpty() && !this.gated(l));
      if (more) {
        this.kick();
      } else if (parked > 0) {
        // Waiting for a consumer to make room: poll gently (consumers do not ring producers).
        this.scheduled = true;
        setTimeout(this.loopFn, 1);
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
    return link.source === this.main && this.gateMain && !this.quiescing;
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
    const timeout = due === Infinity ? 1000 : Math.max(0, Math.min(1000, due - now));
    this.scheduled = true;
    const p = this.doorbells.waitAsync(this.self, seq, timeout);
    if (p === undefined) setImmediate(this.loopFn);
    else void p.then(this.loopFn);
  }

  // ---- frames ----

  private onFrame(f: unknown[], source: number): void {
    switch (f[0]) {
      case FrameKind.MESSAGES: {
        const p = this.pending;
        for (let i = 1; i < f.length; i++) p.push(f[i]);
        // In flight across the cut: sent before the sender's barrier, arriving after our capture.
        const cut = this.cut;
        if (cut !== null && cut.waiting.has(source)) for (let i = 1; i < f.length; i++) cut.recorded.push(f[i]);
        return;
      }
      case FrameKind.CONTROL:
        this.onControl(f[1] as number, f.slice(2), source);
        return;
      default:
        throw new StatefnError(ErrorCode.FRAME_MALFORMED, `worker ${this.self}: unexpected frame kind ${String(f[0])} from thread ${source}`);
    }
  }

  private onControl(op: number, args: unknown[], source: number): void {
    switch (op) {
      case ControlOp.BARRIER:
        this.onBarrier(args[0] as number, source);
        return;
      case ControlOp.COMMIT:
        void pruneCommitted(this.store, this.kgStart, this.kgEnd, args[0] as number).catch((e: unknown) => this.fatal(e));
        return;
      case ControlOp.CLOCK:
        this.timers.scan(this.clock.now());
        return;
      case ControlOp.QUIESCE:
        // Stop invoking handlers. Once running async invocations have settled (their effects
        // may still send), every other worker gets a mark after everything we sent it.
        this.quiescing = true;
        // Remote calls in flight are cut short; their batches are saved with the mailboxes.
        if (this.remoteRunning.size > 0) this.remoteAbort.abort();
        return;
      case ControlOp.QUIESCE_MARK:
        this.quiesceMarks++;
        return;
      case ControlOp.SHUTDOWN:
        void this.shutdown(args[0] as number);
        return;
      default:
        throw new StatefnError(ErrorCode.FRAME_MALFORMED, `worker ${this.self}: unknown control op ${op} from thread ${source}`);
    }
  }

  /** Quiesced once every other worker's mark arrived and no async invocation is running. */
  private checkQuiesced(): void {
    if (this.asyncInFlight > 0) return;
    if (!this.marksSent) {
      this.marksSent = true;
      for (const o of this.outs) {
        if (o !== null && o.dest !== this.main) {
          o.control(ControlOp.QUIESCE_MARK);
          o.flush();
        }
      }
    }
    if (this.quiescedSent || this.quiesceMarks < this.init.workers - 1) return;
    this.quiescedSent = true;
    this.outs[this.main]!.control(ControlOp.QUIESCED, this.pendingCount() + this.mailboxed);
    this.outs[this.main]!.flush();
  }

  // ---- handling messages ----

  private pendingCount(): number {
    return (this.pending.length - this.pendingHead) / MESSAGE_FIELDS;
  }

  private handlePending(max: number): void {
    const p = this.pending;
    let h = this.pendingHead;
    let n = 0;
    while (h < p.length && n < max) {
      const targetType = p[h] as string;
      const targetId = p[h + 1] as string;
      const callerType = p[h + 2] as string | null;
      const callerId = p[h + 3] as string | null;
      const typename = p[h + 4] as string;
      const payload = p[h + 5] as Payload;
      h += MESSAGE_FIELDS;
      n++;
      this.deliver(targetType, targetId, callerType, callerId, typename, payload, 1);
      if ((n & PEER_FLUSH_EVERY_MASK) === 0) this.flushPeers();
    }
    if (h >= p.length) {
      this.pending = [];
      this.pendingHead = 0;
    } else if (h > 65536 && h * 2 > p.length) {
      this.pending = p.slice(h);
      this.pendingHead = 0;
    } else {
      this.pendingHead = h;
    }
    this.stats.set(this.self, Stat.pending, this.pendingCount());
  }

  /**
   * Push what is queued for other workers now, mid-batch, so they start on it while this worker
   * goes on (pipelining): otherwise a batch of chained messages moves between two workers as one
   * frame and each waits while the other works.
   */
  private flushPeers(): void {
    for (const o of this.outs) {
      if (o !== null && o.dest !== this.main && o.queuedMessages() > 0) o.flush();
    }
  }

  private deliver(
    targetType: string, targetId: string, callerType: string | null, callerId: string | null,
    typename: string, payload: Payload, attempt: number,
  ): void {
    const fn = this.fns.get(targetType) ?? this.remoteFn(targetType);
    if (fn === undefined) {
      this.deadLetter({ targetType, targetId, callerType, callerId, typename, payload, attempt },
        new StatefnError(ErrorCode.UNKNOWN_FUNCTION_TYPE, `no function type '${targetType}' is registered`));
      return;
    }
    if (this.busy.size > 0) {
      const key = targetType + '\0' + targetId;
      const q = this.busy.get(key);
      if (q !== undefined) {
        q.push({ targetType, targetId, callerType, callerId, typename, payload, attempt });
        this.mailboxed++;
        if (fn.remote !== undefined && q.length >= fn.remote.endpoint.maxNumBatchRequests) this.remoteFull.add(key);
        return;
      }
    }
    const env = { targetType, targetId, callerType, callerId, typename, payload, attempt };
    if (fn.remote !== undefined) this.startRemoteBatch(fn, targetType + '\0' + targetId, [env]);
    else this.invoke(fn, env);
  }

  // ---- remote functions ----

  /** The runtime of a function type a remote endpoint serves (made on its first message), or undefined. */
  private remoteFn(typename: string): FnRuntime | undefined {
    const endpoint = endpointFor(this.endpoints, typename);
    if (endpoint === undefined) return undefined;
    const specs = [REMOTE_STATE_SPEC];
    const fn: FnRuntime = {
      spec: { typename, specs, handler: () => { throw new StatefnError(ErrorCode.INVARIANT, `remote function ${typename} invoked as embedded`); } },
      remote: { typename, endpoint, url: endpointUrl(endpoint, typename), specs: new Map() },
      specs,
      specIndex: new Map([[REMOTE_STATE_SPEC.name, 0]]),
      Storage: storageClass(specs),
      hasCallTtl: false,
      cache: new Map(),
    };
    this.fns.set(typename, fn);
    return fn;
  }

  private remoteClient(e: RemoteEndpoint): RemoteHttpClient {
    let c = this.remoteClients.get(e);
    if (c === undefined) this.remoteClients.set(e, (c = new RemoteHttpClient(e, this.remoteAbort.signal)));
    return c;
  }

  /** Send `envs` (this address's waiting messages, in order) to the function as one batch. */
  private startRemoteBatch(fn: FnRuntime, key: string, envs: Envelope[]): void {
    if (!this.busy.has(key)) this.busy.set(key, []);
    this.remoteRunning.set(key, envs);
    this.asyncInFlight++;
    this.runRemoteBatch(fn, envs).then(
      () => {
        this.asyncInFlight--;
        this.remoteRunning.delete(key);
        this.stats.add(this.self, Stat.processed, envs.length);
        this.nextRemoteBatch(fn, key);
        this.kick();
      },
      (e: unknown) => {
        this.asyncInFlight--;
        this.remoteRunning.delete(key);
        this.remoteFailed(fn, key, envs, e);
        this.kick();
      },
    );
  }

  /** Call the function (negotiating missing state first), then commit the reply like an embedded invocation. */
  private async runRemoteBatch(fn: FnRuntime, envs: Envelope[]): Promise<void> {
    const remote = fn.remote!;
    const first = envs[0]!;
    const st = this.loadState(fn, first.targetType, first.targetId);
    const client = this.remoteClient(remote.endpoint);
    for (let round = 1; round <= REMOTE_NEGOTIATION_ROUNDS; round++) {
      const values = st.values[0] as RemoteValues | undefined;
      const sent = new Set(remote.specs.keys());
      const body = encodeToFunction(buildRequest(remote, first.targetId, values, envs, this.clock.now()));
      this.stats.add(this.self, Stat.remoteCalls, 1);
      this.stats.add(this.self, Stat.remoteBatched, envs.length);
      this.stats.add(this.self, Stat.remoteBatchHist + Math.min(REMOTE_BATCH_BUCKETS - 1, 31 - Math.clz32(envs.length)), 1);
      const retriesBefore = client.stats.retries;
      let reply;
      try {
        reply = decodeFromFunction(await client.call(remote.url, body));
      } finally {
        this.stats.add(this.self, Stat.remoteRetries, client.stats.retries - retriesBefore);
      }
      if (reply.kind === 'incomplete') {
        registerSpecs(remote, reply.missingValues, sent);
        continue;
      }
      if (this.stopped) return;
      const now = this.clock.now();
      const inv = new Invocation({ typename: first.targetType, id: first.targetId }, undefined, st, fn.specs, fn.Storage, this.clock, now);
      if (reply.kind === 'result') stageResponse(remote, inv.self, st.values[0] as RemoteValues | undefined, reply.result, inv, now);
      inv.closed = true;
      this.commit(fn, inv, now);
      return;
    }
    throw new StatefnError(ErrorCode.REMOTE_PROTOCOL, `${first.targetType}/${first.targetId}: the function still answered "incomplete invocation context" after ${REMOTE_NEGOTIATION_ROUNDS} rounds`);
  }

  /** The batch is done: send what waited meanwhile as the next batch (up to maxNumBatchRequests). */
  private nextRemoteBatch(fn: FnRuntime, key: string): void {
    const q = this.busy.get(key);
    if (q === undefined) return;
    if (this.quiescing || this.stopped) return; // keep the mailbox; it is saved at shutdown
    if (q.length === 0) {
      this.busy.delete(key);
      this.remoteFull.delete(key);
      return;
    }
    const max = fn.remote!.endpoint.maxNumBatchRequests;
    const batch = q.length <= max ? q.splice(0) : q.splice(0, max);
    this.mailboxed -= batch.length;
    if (q.length < max) this.remoteFull.delete(key);
    this.startRemoteBatch(fn, key, batch);
  }

  /**
   * A batch failed for good (its call after retries, a malformed reply, a reply whose effects are
   * invalid). The endpoint's policy decides: dead-letter its messages and go on, or fail the
   * worker so the engine restores the last checkpoint and sends the batch again.
   */
  private remoteFailed(fn: FnRuntime, key: string, envs: Envelope[], e: unknown): void {
    if (this.stopped) return;
    if (this.quiescing && this.remoteAbort.signal.aborted) {
      // Stopping: the call was cut short; the batch waits at the head of its mailbox and is saved.
      const q = this.busy.get(key) ?? [];
      q.unshift(...envs);
      this.busy.set(key, q);
      this.mailboxed += envs.length;
      return;
    }
    this.stats.add(this.self, Stat.remoteFailures, 1);
    const endpoint = fn.remote!.endpoint;
    const info = errorInfo(e);
    const err = new StatefnError(
      isStatefnError(e) ? e.code : ErrorCode.REMOTE_FAILED,
      `remote function ${envs[0]!.targetType}/${envs[0]!.targetId} (endpoint ${fn.remote!.url.text}, ${endpoint.source}): batch of ${envs.length} message(s) failed: ${info.message}`,
      { cause: e },
    );
    if (endpoint.onFailure === 'restore') {
      this.fatal(err);
      return;
    }
    for (const env of envs) this.deadLetter(env, err);
    this.nextRemoteBatch(fn, key);
  }

  private loadState(fn: FnRuntime, fnType: string, id: string): AddressState {
    let st = fn.cache.get(id);
    if (st !== undefined) return st;
    const kg = keyGroupOf(id, this.init.keyGroups);
    assert(this.owner[kg] === this.self, () => `message for ${fnType}/${id} (key group ${kg}) reached worker ${this.self}`);
    const bytes = this.store.getState(stateKey(kg, fnType, id));
    st = decodeState(this.codec, bytes, fn.specs, fn.specIndex, fnType, id, kg);
    fn.cache.set(id, st);
    this.cacheEntries++;
    if (this.cacheEntries > this.init.limits.stateCacheEntriesMax) this.evict();
    return st;
  }

  private invoke(fn: FnRuntime, env: Envelope): void {
    let st: AddressState;
    try {
      st = this.loadState(fn, env.targetType, env.targetId);
    } catch (e) {
      this.deadLetter(env, e);
      return;
    }
    const now = this.clock.now();
    const inv = new Invocation(
      { typename: env.targetType, id: env.targetId },
      env.callerType === null ? undefined : { typename: env.callerType, id: env.callerId! },
      st, fn.specs, fn.Storage, this.clock, now,
    );
    let result: void | Promise<void>;
    try {
      result = fn.spec.handler(inv, new Message(env.typename, env.payload));
    } catch (e) {
      inv.closed = true;
      this.failed(fn, env, e);
      return;
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      const key = env.targetType + '\0' + env.targetId;
      if (!this.busy.has(key)) this.busy.set(key, []);
      this.asyncInFlight++;
      this.running.set(key, env);
      (result as Promise<void>).then(
        () => {
          this.asyncInFlight--;
          this.running.delete(key);
          inv.closed = true;
          this.commitOrFail(fn, env, inv, now);
          this.kick();
        },
        (e: unknown) => {
          this.asyncInFlight--;
          this.running.delete(key);
          inv.closed = true;
          this.failed(fn, env, e);
          this.kick();
        },
      );
      return;
    }
    inv.closed = true;
    this.commitOrFail(fn, env, inv, now);
  }

  private commitOrFail(fn: FnRuntime, env: Envelope, inv: Invocation, now: number): void {
    try {
      this.commit(fn, inv, now);
    } catch (e) {
      this.failed(fn, env, e);
      return;
    }
    this.stats.add(this.self, Stat.processed, 1);
    this.release(fn, env);
  }

  /** Apply a successful invocation's state and effects. Validates everything before applying. */
  private commit(fn: FnRuntime, inv: Invocation, now: number): void {
    const self = inv.self;
    // Validate effects first so a bad one fails the whole invocation (nothing half-applied).
    if (inv.egresses !== null) {
      for (let i = 0; i < inv.egresses.length; i += 2) {
        const id = inv.egresses[i] as string;
        if (!this.egressIds.has(id)) {
          throw new StatefnError(ErrorCode.UNKNOWN_EGRESS, `${self.typename}/${self.id}: no egress '${id}' is registered (known: ${[...this.egressIds].join(', ')})`);
        }
      }
    }
    const st = inv.state;
    if (st.capture && (inv.staged !== null || fn.hasCallTtl)) this.snapshotCaptured(st);
    if (inv.delayed !== null) {
      // A token of a pending delayed message (or used twice here) fails the invocation; check
      // before anything is applied. Tokens this invocation cancels are free again.
      let used: Set<string> | undefined;
      for (const d of inv.delayed) {
        if (d.token === null) continue;
        used ??= new Set();
        const freed = inv.cancels !== null && inv.cancels.includes(d.token);
        if (used.has(d.token) || (!freed && this.timers.tokenInUse(st.kg, self.typename, self.id, d.token))) {
          throw tokenInUseError(d.token, self.typename, self.id);
        }
        used.add(d.token);
      }
    }
    if (inv.staged !== null) {
      const w = inv.written!;
      for (let i = 0; i < fn.specs.length; i++) {
        if (!w[i]) continue;
        const v = inv.staged[i];
        st.values[i] = v;
        const spec = fn.specs[i]!;
        st.expires[i] = v === undefined ? 0 : spec.expireAfterWrite !== undefined ? now + spec.expireAfterWrite : spec.expireAfterCall !== undefined ? now + spec.expireAfterCall : 0;
      }
      this.markDirty(st);
    }
    if (fn.hasCallTtl) {
      for (let i = 0; i < fn.specs.length; i++) {
        const spec = fn.specs[i]!;
        if (spec.expireAfterCall === undefined || st.values[i] === undefined) continue;
        if (st.expires[i] !== 0 && st.expires[i]! <= now && !inv.written?.[i]) {
          st.values[i] = undefined; // expired before this call
          st.expires[i] = 0;
        } else {
          st.expires[i] = now + spec.expireAfterCall;
        }
      }
      this.markDirty(st);
    }
    if (inv.cancels !== null) {
      const kg = st.kg;
      for (const token of inv.cancels) this.timers.cancel(kg, self.typename, self.id, token);
    }
    if (inv.delayed !== null) {
      for (const d of inv.delayed) {
        this.timers.add({
          fireAt: now + d.delayMs, targetType: d.to.typename, targetId: d.to.id, senderType: self.typename, senderId: self.id,
          typename: d.message.typename, payload: d.message.payload, token: d.token, senderKg: st.kg,
        });
      }
    }
    if (inv.sends !== null) {
      const s = inv.sends;
      for (let i = 0; i < s.length; i += 2) {
        const to = s[i] as Address;
        const m = s[i + 1] as Message;
        this.route(to.typename, to.id, self.typename, self.id, m.typename, m.payload);
      }
    }
    if (inv.egresses !== null) {
      const out = this.outs[this.main]!;
      const e = inv.egresses;
      for (let i = 0; i < e.length; i += 2) {
        const m = e[i + 1] as Message;
        out.egressRecord(e[i] as string, m.typename, m.payload);
      }
      this.stats.add(this.self, Stat.egressed, e.length / 2);
    }
  }

  private markDirty(st: AddressState): void {
    if (st.dirty) return;
    st.dirty = true;
    this.dirty.push(st);
  }

  /** Send a message to its owner: locally into `pending`, or into the owner's ring. */
  private route(targetType: string, targetId: string, callerType: string | null, callerId: string | null, typename: string, payload: Payload): void {
    const kg = keyGroupOf(targetId, this.init.keyGroups);
    const w = this.owner[kg]!;
    this.stats.add(this.self, Stat.sent, 1);
    if (w === this.self) {
      // The frame limit applies to local messages too, so whether a message is accepted never
      // depends on where its target's key group lives (which changes with rescaling). Only big
      // payloads pay for measuring (a string's UTF-8 may take up to 3 bytes per unit).
      if (typeof payload !== 'number' && typeof payload !== 'boolean' && payload.length > this.init.limits.frameBytesMax >> 2) {
        const bytes = this.codec.pack([FrameKind.MESSAGES, targetType, targetId, callerType, callerId, typename, payload]).length;
        if (bytes > this.init.limits.frameBytesMax) {
          this.oversize([targetType, targetId, callerType, callerId, typename, payload], bytes);
          return;
        }
      }
      this.pending.push(targetType, targetId, callerType, callerId, typename, payload);
      return;
    }
    this.outs[w]!.message(targetType, targetId, callerType, callerId, typename, payload);
  }

  /** The invocation for env's address is over: run the next waiting message, if any. */
  private release(fn: FnRuntime, env: Envelope): void {
    if (fn.remote !== undefined) {
      this.nextRemoteBatch(fn, env.targetType + '\0' + env.targetId);
      return;
    }
    if (this.busy.size === 0) return;
    const key = env.targetType + '\0' + env.targetId;
    const q = this.busy.get(key);
    if (q === undefined) return;
    if (this.quiescing) return; // keep the mailbox; it is saved at shutdown
    // Run waiting messages synchronously until one goes async (which re-marks the address busy).
    while (q.length > 0) {
      const next = q.shift()!;
      this.mailboxed--;
      this.busy.delete(key);
      this.invoke(fn, next);
      if (this.busy.get(key) !== undefined) {
        const q2 = this.busy.get(key)!;
        if (q2 !== q) for (const e of q) q2.push(e); // a mailbox may exceed the argument limit of push(...q)
        return;
      }
    }
    this.busy.delete(key);
  }

  private failed(fn: FnRuntime, env: Envelope, e: unknown): void {
    this.stats.add(this.self, Stat.failures, 1);
    const L = this.init.limits;
    const key = env.targetType + '\0' + env.targetId;
    if (env.attempt < L.handlerAttemptsMax && !(isStatefnError(e) && !e.retriable && e.code !== ErrorCode.HANDLER_FAILED)) {
      // Retry later; the address stays busy so later messages keep their order behind it.
      if (!this.busy.has(key)) this.busy.set(key, []);
      const delay = L.handlerRetryBackoffMs * 2 ** (env.attempt - 1);
      this.asyncInFlight++;
      this.running.set(key, env);
      setTimeout(() => {
        this.asyncInFlight--;
        if (this.running.get(key) === env) this.running.delete(key);
        if (this.stopped) return;
        if (this.quiescing) {
          // Not retried now: it waits at the head of its mailbox and is saved at shutdown.
          this.busy.get(key)?.unshift({ ...env, attempt: env.attempt + 1 });
          this.mailboxed++;
          this.kick();
          return;
        }
        this.invoke(fn, { ...env, attempt: env.attempt + 1 });
        this.kick();
      }, delay);
      return;
    }
    this.deadLetter(env, e);
    this.release(fn, env);
  }

  private deadLetter(env: Envelope, e: unknown): void {
    const info = errorInfo(e);
    this.stats.add(this.self, Stat.dead, 1);
    const p = env.payload;
    const rec: Record<string, unknown> = {
      code: info.code,
      error: info.message,
      target: { typename: env.targetType, id: env.targetId },
      caller: env.callerType === null ? null : { typename: env.callerType, id: env.callerId },
      typename: env.typename,
      value: p instanceof Uint8Array ? { base64: Buffer.from(p).toString('base64') } : p,
      attempts: env.attempt,
      worker: this.self,
      at: new Date(this.clock.now()).toISOString(),
    };
    // The record travels to the main thread in one frame, so it must fit in frameBytesMax (the
    // message may be the oversized one, or just big once in base64, or the error text huge):
    // drop the value (keeping its size), then shorten the error, rather than fail the worker.
    const fits = (): boolean => this.codec.pack([FrameKind.DEAD, rec]).length <= this.init.limits.frameBytesMax;
    if (!fits()) {
      rec.value = { omitted: true, bytes: p instanceof Uint8Array ? p.length : Buffer.byteLength(String(p)) };
      if (!fits()) rec.error = `${info.message.slice(0, this.init.limits.frameBytesMax >> 3)}... (truncated)`;
    }
    this.outs[this.main]!.dead([rec]);
  }

  private oversize(fields: unknown[], bytes: number): void {
    const [targetType, targetId, callerType, callerId, typename, payload] = fields as [string, string, string | null, string | null, string, Payload];
    if (typeof targetType === 'string' && typeof targetId === 'string' && fields.length === MESSAGE_FIELDS) {
      this.deadLetter({ targetType, targetId, callerType, callerId, typename, payload, attempt: 1 },
        new StatefnError(ErrorCode.PAYLOAD_TOO_LARGE, `message of ${bytes} bytes exceeds frameBytesMax ${this.init.limits.frameBytesMax}`));
    } else {
      // An egress record too large for a frame.
      this.deadLetter({ targetType: String(fields[0]), targetId: '(egress)', callerType: null, callerId: null, typename: String(fields[1]), payload: new Uint8Array(0), attempt: 1 },
        new StatefnError(ErrorCode.PAYLOAD_TOO_LARGE, `egress record of ${bytes} bytes exceeds frameBytesMax ${this.init.limits.frameBytesMax}`));
    }
  }

  private readonly dueBuf: Timer[] = [];

  private fireTimers(): void {
    const due = this.dueBuf;
    due.length = 0;
    this.timers.due(this.clock.now(), this.init.limits.batchMessagesMax, due);
    for (const t of due) this.route(t.targetType, t.targetId, t.senderType, t.senderId, t.typename, t.payload);
    this.stats.set(this.self, Stat.timers, this.timers.inMemory);
  }

  private updatePressure(parked: number): void {
    const L = this.init.limits;
    const pending = this.pendingCount();
    // The dirty set (state changed since the last checkpoint) waits in memory for the next
    // barrier: bound it too, so a slow or stuck checkpoint pauses ingress instead of growing it.
    const dirty = this.dirty.length;
    const gateOn = parked > L.outboxBytesHighWater || pending > L.pendingMessagesMax || this.mailboxed > L.mailboxMessagesMax || this.asyncInFlight >= L.asyncInvocationsMax || this.remoteFull.size > 0;
    const gateOff = parked <= L.outboxBytesLowWater && pending <= L.pendingMessagesMax / 2 && this.mailboxed <= L.mailboxMessagesMax / 2 && this.asyncInFlight < L.asyncInvocationsMax && this.remoteFull.size === 0;
    const on = gateOn || dirty > L.dirtyEntriesMax;
    const off = gateOff && dirty <= L.dirtyEntriesMax / 2;
    // A dirty set over its bound clears only by a checkpoint, whose barrier arrives on the main
    // ring behind the ingress already in it: keep reading that ring (the main thread stops
    // submitting while any worker is pressured, so the overshoot is at most one ring's worth).
    // Gating it deadlocked large key spaces: every worker waited for a barrier it never read.
    if (!this.gateMain && gateOn) this.gateMain = true;
    else if (this.gateMain && gateOff) this.gateMain = false;
    if (!this.pressured && on) {
      this.pressured = true;
      this.stats.setPressure(this.self, true);
    } else if (this.pressured && off) {
      this.pressured = false;
      this.stats.setPressure(this.self, false);
    }
    const s = this.stats;
    s.set(this.self, Stat.parkedBytes, parked);
    s.set(this.self, Stat.mailboxed, this.mailboxed);
    s.set(this.self, Stat.asyncInFlight, this.asyncInFlight);
    s.set(this.self, Stat.cacheEntries, this.cacheEntries);
    s.set(this.self, Stat.dirty, this.dirty.length);
  }

  /** Drop clean entries, oldest first, until the cache is back under 90% of its bound. */
  private evict(): void {
    // Not while a flush is being written: its states are clean already but their records are not
    // in LMDB yet, so reloading an evicted one would read an older value. The cache may exceed its
    // bound by what is loaded during one write; the first load after it evicts.
    if (this.flushing !== null) return;
    const target = Math.floor(this.init.limits.stateCacheEntriesMax * 0.9);
    for (const fn of this.fns.values()) {
      for (const [id, st] of fn.cache) {
        if (this.cacheEntries <= target) return;
        if (st.dirty || this.busy.has(st.fnType + '\0' + id)) continue;
        fn.cache.delete(id);
        this.cacheEntries--;
      }
    }
  }

  // ---- checkpoints ----

  private onBarrier(epoch: number, source: number): void {
    if (this.cut === null) {
      this.startCut(epoch, source);
    } else {
      assert(this.cut.epoch === epoch, () => `worker ${this.self}: barrier ${epoch} from thread ${source} during cut ${this.cut!.epoch}`);
      this.cut.waiting.delete(source);
    }
    if (this.cut!.waiting.size === 0) this.completeCut();
  }

  /**
   * The first barrier of an epoch: capture the dirty set and every message not handled yet, then
   * forward the barrier behind everything already sent, and mark where this epoch's egress ends.
   */
  private startCut(epoch: number, firstSource: number): void {
    assert(this.flushing === null, () => `worker ${this.self}: barrier ${epoch} while the previous epoch is still being written`);
    const recorded = this.unhandledMessages();
    const waiting = new Set(this.inputs.map((l) => l.source));
    waiting.delete(firstSource);
    this.cut = { epoch, waiting, recorded, captured: this.captureDirty(), timerOps: this.timers.takeOps() };
    for (const o of this.outs) {
      if (o === null) continue;
      o.control(o.dest === this.main ? ControlOp.EPOCH_MARK : ControlOp.BARRIER, epoch);
      o.flush();
    }
  }

  /**
   * Every message received and not handled yet (flat, MESSAGE_FIELDS each). Per address, oldest
   * first: the running (or retrying) input, its mailbox, then pending.
   */
  private unhandledMessages(): unknown[] {
    const out: unknown[] = [];
    for (const e of this.running.values()) out.push(e.targetType, e.targetId, e.callerType, e.callerId, e.typename, e.payload);
    for (const b of this.remoteRunning.values()) for (const e of b) out.push(e.targetType, e.targetId, e.callerType, e.callerId, e.typename, e.payload);
    for (const q of this.busy.values()) for (const e of q) out.push(e.targetType, e.targetId, e.callerType, e.callerId, e.typename, e.payload);
    const p = this.pending;
    for (let h = this.pendingHead; h < p.length; h++) out.push(p[h]);
    return out;
  }

  private captureDirty(): AddressState[] {
    const captured = this.dirty;
    this.dirty = [];
    for (const st of captured) {
      st.dirty = false;
      st.capture = true;
    }
    return captured;
  }

  private completeCut(): void {
    const cut = this.cut!;
    this.cut = null;
    const started = Date.now();
    this.flushing = this.writeEpoch(cut).then((writes) => {
      // Clear before acknowledging: the next barrier may arrive as soon as the ACK is out.
      this.flushing = null;
      if (writes < 0) return;
      this.outs[this.main]!.control(ControlOp.ACK, cut.epoch, writes, Date.now() - started);
      this.kick();
    });
  }

  /**
   * Write this worker's part of a checkpoint: the captured states (encoded in slices between loop
   * steps; a captured state a handler is about to change is copied first, `snapshotCaptured`),
   * the timers' changes, undo records for all of them, and the recorded messages, as one sorted
   * lmdb-js transaction on its write thread. Then acknowledge the epoch.
   */
  private async writeEpoch(cut: Cut): Promise<number> {
    const emptied: AddressState[] = [];
    const ops: WriteOp[] = [];
    try {
      for (const op of cut.timerOps) {
        ops.push(this.undoOf(cut.epoch, op.db as UndoDb, op.key, this.store.get(op.db, op.key)));
        ops.push(op);
      }
      for (let i = 0; i < cut.captured.length; ) {
        const end = Math.min(cut.captured.length, i + FLUSH_SLICE_STATES);
        const now = this.clock.now();
        for (; i < end; i++) {
          const st = cut.captured[i]!;
          if (st.capture || st.snap !== null) this.encodeCaptured(st, ops, emptied, now, cut.epoch);
        }
        if (i < cut.captured.length) await new Promise<void>((r) => setImmediate(r));
      }
      this.recordMessages(cut.epoch, cut.recorded, ops);
      // This parity's undo database holds epoch n-2's records, whose checkpoint is complete.
      await this.store.clear(undoDbOf(cut.epoch));
      await this.store.write(ops);
    } catch (e) {
      this.fatal(e);
      return -1;
    }
    this.dropEmptied(emptied);
    this.timers.afterFlush(this.clock.now());
    this.stats.set(this.self, Stat.flushedEpoch, cut.epoch);
    return ops.length;
  }

  private undoOf(epoch: number, db: UndoDb, key: Buffer, old: Buffer | undefined): WriteOp {
    const value = old === undefined ? UNDO_ABSENT : Buffer.concat([UNDO_PRESENT, old]);
    return { db: undoDbOf(epoch), key: undoKey(kgOfKey(key), epoch, db, key), value };
  }

  private recordMessages(epoch: number, fields: unknown[], ops: WriteOp[]): void {
    let seq = 0;
    for (let h = 0; h + MESSAGE_FIELDS <= fields.length; h += MESSAGE_FIELDS) {
      const f = fields.slice(h, h + MESSAGE_FIELDS);
      const kg = keyGroupOf(f[1] as string, this.init.keyGroups);
      ops.push({ db: 'ckpt', key: ckptKey(kg, epoch, seq++), value: Buffer.from(this.codec.pack(f)) });
    }
  }

  private encodeCaptured(st: AddressState, ops: WriteOp[], emptied: AddressState[], now: number, epoch: number): void {
    st.capture = false;
    const fn = this.fns.get(st.fnType)!;
    const snap = st.snap;
    st.snap = null;
    const value = encodeState(this.codec, snap === null ? st : { ...st, values: snap.values, expires: snap.expires }, fn.specs, now);
    const key = stateKey(st.kg, st.fnType, st.id);
    ops.push(this.undoOf(epoch, 'state', key, st.persisted));
    ops.push({ db: 'state', key, value });
    st.persisted = value;
    if (value === undefined && isEmptyState(st)) emptied.push(st);
  }

  /**
   * A handler is about to change a state the epoch being written has not encoded yet: keep a copy
   * of its values as they were (copy-on-write; the epoch encodes the copy).
   */
  private snapshotCaptured(st: AddressState): void {
    st.capture = false;
    st.snap = { values: st.values.slice(), expires: st.expires.slice() };
  }

  /** After an epoch committed: drop from the cache the states it deleted that are still empty and idle. */
  private dropEmptied(emptied: AddressState[]): void {
    for (const st of emptied) {
      if (st.dirty || !isEmptyState(st) || this.busy.has(st.fnType + '\0' + st.id)) continue;
      const fn = this.fns.get(st.fnType)!;
      if (fn.cache.get(st.id) === st) {
        fn.cache.delete(st.id);
        this.cacheEntries--;
      }
    }
  }

  // ---- shutdown ----

  /**
   * Clean stop (after QUIESCE, so every message addressed to this worker is here): the final
   * epoch records every message not handled yet (mailboxes and pending), writes state and timers,
   * then LMDB closes. The main thread completes the checkpoint once every worker is done.
   */
  private async shutdown(epoch: number): Promise<void> {
    while (this.flushing !== null) await this.flushing;
    assert(this.cut === null, () => `worker ${this.self}: shutdown during cut ${this.cut!.epoch}`);
    const recorded = this.unhandledMessages();
    this.outs[this.main]!.control(ControlOp.EPOCH_MARK, epoch);
    this.cut = { epoch, waiting: new Set(), recorded, captured: this.captureDirty(), timerOps: this.timers.takeOps() };
    this.completeCut();
    await this.flushing;
    try {
      await this.store.close();
    } catch (e) {
      this.fatal(e);
      return;
    }
    this.outs[this.main]!.control(ControlOp.SHUTDOWN_DONE, recorded.length / MESSAGE_FIELDS);
    this.outs[this.main]!.flush();
    this.stopped = true;
    this.onExit(0);
  }

  private fatal(e: unknown): void {
    this.stopped = true;
    const err = e instanceof Error ? e : new Error(String(e));
    // Let the main thread's supervisor see the error through the worker's 'error' event.
    setImmediate(() => {
      throw err;
    });
  }
}
