/**
 * The engine's main thread: loads the application, spawns the workers and wires the ring mesh,
 * routes ingress records to the worker that owns each key group, delivers egress, runs periodic
 * flushes (the future checkpoint coordinator), supervises workers, and stops cleanly.
 *
 * The main thread never blocks: it waits for worker frames with `Atomics.waitAsync` on its
 * doorbell, and parks frames a full ring cannot take (back-pressure then pauses the ingresses).
 */
import { randomUUID } from 'node:crypto';
import { endpointFor } from '../api/endpoint.js';
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import type { Packr } from 'msgpackr';
import { App, DEAD_LETTER_EGRESS } from '../api/app.js';
import { checkAddress } from '../api/address.js';
import { Doorbells, allocateDoorbells } from '../shared/doorbell.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { ControlOp, FrameKind, EGRESS_FIELDS, createCodec } from '../shared/frames.js';
import { keyGroupOf, ownerTable } from '../shared/key_group.js';
import { InLink, OutLink } from '../shared/link.js';
import { loadApp, type AppModuleRef } from '../api/load_app.js';
import { Message } from '../api/message.js';
import { allocateRing } from '../shared/ring_buffer.js';
import { REMOTE_BATCH_BUCKETS, Stat, StatsBlock } from '../shared/stats_block.js';
import { Types, type Payload } from '../api/types.js';
import type { EgressConnector, EgressRecord, IngressContext, Logger, RoutedMessage } from '../api/connector_api.js';
import type { WorkerInit } from '../config/worker_init.js';
import { EgressDispatcher } from './egress_dispatcher.js';
import { readCheckpointRecord, writeCheckpointRecord, type CheckpointRecord } from './checkpoint_record.js';
import { deleteEgressEpoch, egressEpochs, readEgressEpoch, writeEgressEpoch } from './egress_log.js';
import { Piscina } from 'piscina';
import type { UploadResult, UploadTask } from '../snapshot/upload_task.js';
import { latestCheckpoint, manifestKey, readSavepoint, savepointKey, type CheckpointManifest } from '../snapshot/checkpoint_layout.js';
import { openSnapshotStore } from '../snapshot/store_config.js';
import { keyGroupRange } from '../shared/key_group.js';
import { loadModuleInto } from '../config/module_app.js';
import type { ConnectorKind } from '../api/connector_kind.js';
import { resolveOptions, type EngineOptions, type ResolvedOptions } from '../config/engine_options.js';
import { clearLocalState, envDir, lockStateDir, readLayout, removeOtherGenerations, writeLayout, type Layout } from '../state/state_layout.js';

const DEAD_LETTER_TYPE = Types.json<Record<string, unknown>>('statefn/dead-letter');
const FLUSH_HISTORY = 16;
/** Ingress pauses while a checkpoint has been under way for more than this many intervals. */
const CHECKPOINT_LAG_INTERVALS_MAX = 10;
/** Egress records held for their checkpoint, as a multiple of pendingMessagesMax, above which ingress pauses. */
const EGRESS_HELD_PER_PENDING = 8;

export interface FlushInfo {
  epoch: number;
  atMs: number;
  durationMs: number;
  writes: number;
  ok: boolean;
}

export interface EngineStats {
  uptimeMs: number;
  workers: number;
  ingested: number;
  processed: number;
  sent: number;
  egressed: number;
  deadLetters: number;
  failures: number;
  pending: number;
  mailboxed: number;
  parkedBytes: number;
  cacheEntries: number;
  timers: number;
  backPressured: boolean;
  /** How long the checkpoint under way has taken so far (0 when none). */
  checkpointPendingMs: number;
  lastFlush: FlushInfo | undefined;
  /** Remote functions: requests sent (negotiation rounds included), messages they carried, attempts repeated, batches failed for good. */
  remote: {
    calls: number; batched: number; retries: number; failures: number;
    /** Requests by batch size: `{'1': n, '2-3': n, '4-7': n, ..., '1024+': n}`. */
    batchSizes: Record<string, number>;
  };
}

/** Where the worker entry point is, and how to start it (from source under tsx, or compiled). */
function spawnWorker(init: WorkerInit, name: string, tsApp: boolean): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`../workers/worker_main.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  if (!fromSource && !tsApp) return new Worker(url, { workerData: init, name });
  // TypeScript (engine from source, or a user's .ts app): register tsx's loader in the worker
  // before importing the entry point.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })` +
    `.catch((e) => { setImmediate(() => { throw e; }); });`;
  return new Worker(code, { eval: true, workerData: init, name });
}

function isTsModule(m: string): boolean {
  return /\.(m|c)?tsx?$/.test(m.split('?')[0]!);
}

/** Normalise a module path or URL to a file: URL string. */
export function moduleUrl(m: string): string {
  if (m.startsWith('file:') || m.startsWith('data:')) return m;
  return pathToFileURL(isAbsolute(m) ? m : resolvePath(m)).href;
}

export class Engine {
  readonly options: ResolvedOptions;
  private readonly logger: Logger;
  private readonly codec: Packr = createCodec();
  private readonly threads: number;
  private readonly mainIdx: number;
  private readonly doorbells: Doorbells;
  private readonly statsBlock: StatsBlock;
  private readonly owner: Uint16Array;
  private readonly outs: OutLink[] = [];
  private readonly inputs: InLink[] = [];
  private readonly workers: Worker[] = [];
  private readonly egress: EgressDispatcher;
  /** Egresses that take records before their checkpoint completes (see EgressConnector.deliverBeforeCheckpoint). */
  private readonly deliverEarly: Set<string>;
  private readonly startedAt = Date.now();
  private ingressControllers: AbortController = new AbortController();
  private writableWaiters: (() => void)[] = [];
  private pumpScheduled = false;
  /** The pump waits on the main thread's doorbell (schedulePump rings it). */
  private mainSleeping = false;
  private pumpTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private epoch = 0;
  private flushInFlight: { epoch: number; started: number; acks: number; writes: number; positions: Record<string, unknown> } | undefined;
  /** Egress records per worker since its last EPOCH_MARK, then per epoch until the epoch's checkpoint completes. */
  private egressOpen: EgressRecord[][] = [];
  private egressByEpoch = new Map<number, EgressRecord[]>();
  /** Records in egressOpen and egressByEpoch: held until their checkpoint completes (bounded by back-pressure). */
  private egressHeld = 0;
  private recordWrite: Promise<void> = Promise.resolve();
  private recovered: CheckpointRecord | undefined;
  /** One thread that uploads checkpoints to the snapshot store (piscina: interchangeable work). */
  private uploader: Piscina | undefined;
  readonly uploads: UploadResult[] = [];
  private restoreFromStore: { epoch: number; manifestKey: string; manifest: CheckpointManifest } | undefined;
  private flushWaiters = new Map<number, (() => void)[]>();
  readonly flushes: FlushInfo[] = [];
  private quiesced = 0;
  private shutdownDone = 0;
  private controlWaiter: (() => void) | undefined;
  private state: 'running' | 'stopping' | 'stopped' | 'failed' = 'running';
  private failure: Error | undefined;
  private readonly failedWaiters: ((e: Error) => void)[] = [];
  private ingested = 0;
  /** Ingresses may submit: from start until their stop() resolved (or the engine failed). */
  private ingressOpen = true;
  private mainDead = 0;
  private releaseLock: () => void = () => {};
  private readonly deadLetterOwned: EgressConnector | undefined;

  protected constructor(
    readonly app: App,
    private readonly appRef: AppModuleRef,
    options: ResolvedOptions,
    private readonly layout: Layout,
  ) {
    this.options = options;
    this.logger = options.logger;
    const n = options.workers;
    this.threads = n + 1;
    this.mainIdx = n;
    this.doorbells = new Doorbells(allocateDoorbells(this.threads));
    this.statsBlock = new StatsBlock(StatsBlock.allocate(this.threads), this.threads);
    this.owner = ownerTable(n, layout.keyGroups);
    const egresses: EgressConnector[] = [...app.egresses.values()];
    if (!app.egresses.has(DEAD_LETTER_EGRESS) && options.deadLetterFile) {
      if (options.deadLetterEgress !== undefined) {
        this.deadLetterOwned = options.deadLetterEgress(options.stateDir);
        egresses.push(this.deadLetterOwned);
      }
    }
    this.deliverEarly = new Set(egresses.filter((c) => c.deliverBeforeCheckpoint === true).map((c) => c.id));
    this.egress = new EgressDispatcher(egresses, this.logger, () => this.schedulePump(), (id, epoch) => this.onEgressCommitted(id, epoch));
  }

  /**
   * Start an engine for the application module `app` (a path or file: URL whose default export
   * is an App or a function returning one; `params` are passed to that function in every thread).
   */
  static async start(app: string | AppModuleRef, options: EngineOptions & Record<string, unknown> = {}): Promise<Engine> {
    const ref: AppModuleRef = typeof app === 'string' ? { module: moduleUrl(app) } : { ...app };
    if (ref.module !== undefined) ref.module = moduleUrl(ref.module);
    if (ref.module !== undefined && isTsModule(ref.module) && !import.meta.url.endsWith('.ts')) {
      const { register } = await import('tsx/esm/api');
      register();
    }
    const loaded = await loadApp(ref);
    if (ref.moduleYaml !== undefined) await loadModuleInto(loaded, ref.moduleYaml, (options.connectorKinds as readonly ConnectorKind[] | undefined) ?? []);
    const opts = resolveOptions(loaded.options, options);
    const releaseLock = lockStateDir(opts.stateDir);
    try {
      let fromStore: CheckpointManifest | null = null;
      let fromStoreKey = '';
      if (opts.fromSavepoint !== undefined) {
        if (opts.snapshots === false) throw new StatefnError(ErrorCode.CONFIG_INVALID, 'fromSavepoint needs a snapshot store (snapshots is false)');
        fromStore = await readSavepoint(openSnapshotStore(opts.snapshots), opts.fromSavepoint);
        fromStoreKey = savepointKey(opts.fromSavepoint);
        // The savepoint replaces the local state (the snapshot store is kept).
        clearLocalState(opts.stateDir);
        opts.logger.info(`restoring savepoint '${opts.fromSavepoint}' (checkpoint ${fromStore.epoch}); local state replaced`);
      }
      const prev = readLayout(opts.stateDir);
      // An empty local disk with a snapshot store that holds checkpoints: restore from it.
      if (fromStore === null && prev === undefined && opts.snapshots !== false && readCheckpointRecord(opts.stateDir) === undefined) {
        fromStore = await latestCheckpoint(openSnapshotStore(opts.snapshots), { logger: opts.logger });
        if (fromStore !== null) fromStoreKey = manifestKey(fromStore.epoch);
      }
      if (fromStore !== null) opts.limits = { ...opts.limits, keyGroups: fromStore.keyGroups };
      if (prev !== undefined && options.limits?.keyGroups !== undefined && prev.keyGroups !== opts.limits.keyGroups) {
        throw new StatefnError(ErrorCode.CONFIG_INVALID, `keyGroups is ${prev.keyGroups} for the state in ${opts.stateDir} and cannot change (asked for ${opts.limits.keyGroups})`);
      }
      const keyGroups = prev?.keyGroups ?? opts.limits.keyGroups;
      const limits = { ...opts.limits, keyGroups };
      if (opts.workers > keyGroups) {
        throw new StatefnError(ErrorCode.CONFIG_INVALID, `workers (${opts.workers}) must be at most keyGroups (${keyGroups})`);
      }
      // The state's history continues only when the local state does (see Layout.lineage).
      const lineage = prev?.lineage !== undefined && fromStore === null ? prev.lineage : randomUUID();
      const layout: Layout = prev === undefined
        ? { version: 1, keyGroups, workers: opts.workers, generation: 0, lineage }
        : prev.workers === opts.workers ? { ...prev, lineage } : { version: 1, keyGroups, workers: opts.workers, generation: prev.generation + 1, lineage };
      const engine = new Engine(loaded, ref, { ...opts, limits }, layout);
      for (const e of loaded.endpoints) {
        const embedded = [...loaded.functions.keys()].filter((t) => endpointFor(loaded.endpoints, t) === e);
        opts.logger.info(`remote endpoint ${e.urlPathTemplate} serves ${e.functions} (${e.source})${embedded.length > 0 ? `; the embedded ${embedded.join(', ')} ${embedded.length > 1 ? 'are' : 'is'} not used` : ''}`);
      }
      engine.releaseLock = releaseLock;
      engine.recovered = readCheckpointRecord(opts.stateDir);
      if (fromStore !== null) {
        const positions = (fromStore.meta.positions ?? {}) as Record<string, unknown>;
        engine.recovered = { version: 1, epoch: fromStore.epoch, positions, completedAt: 'restored from the snapshot store', clean: false };
        engine.restoreFromStore = { epoch: fromStore.epoch, manifestKey: fromStoreKey, manifest: fromStore };
        if (opts.fromSavepoint === undefined) opts.logger.info(`local state is empty: restoring checkpoint ${fromStore.epoch} from the snapshot store`);
      }
      engine.epoch = engine.recovered?.epoch ?? 0;
      await engine.boot(prev);
      return engine;
    } catch (e) {
      releaseLock();
      throw e;
    }
  }

  private async boot(prev: Layout | undefined): Promise<void> {
    const { workers: n, limits: L } = this.options;
    const rings: (SharedArrayBuffer | null)[][] = [];
    for (let a = 0; a < this.threads; a++) {
      const row: (SharedArrayBuffer | null)[] = [];
      for (let b = 0; b < this.threads; b++) row.push(a === b ? null : allocateRing(L.ringBytes));
      rings.push(row);
    }
    for (let w = 0; w < n; w++) {
      this.outs.push(new OutLink(rings[this.mainIdx]![w]!, this.codec, this.doorbells, w, L.frameBytesMax, L.batchMessagesMax, (f, bytes) => {
        this.deadLetterMain(f, new StatefnError(ErrorCode.PAYLOAD_TOO_LARGE, `message of ${bytes} bytes exceeds frameBytesMax ${L.frameBytesMax}`));
      }));
      this.inputs.push(new InLink(rings[w]![this.mainIdx]!, this.codec, w, `worker ${w}`));
    }
    const migrating = prev !== undefined && prev.generation !== this.layout.generation;
    const migrateFrom = migrating ? Array.from({ length: prev.workers }, (_, i) => envDir(this.options.stateDir, prev.generation, i)) : [];
    if (migrating) this.logger.info(`rescaling state from ${prev.workers} to ${n} workers`, { keyGroups: this.layout.keyGroups });
    const ready: Promise<void>[] = [];
    for (let w = 0; w < n; w++) this.egressOpen.push([]);
    for (let w = 0; w < n; w++) {
      const init: WorkerInit = {
        index: w, workers: n, keyGroups: this.layout.keyGroups, limits: this.options.limits, rings,
        doorbells: this.doorbells.buffer, stats: this.statsBlock.buffer, app: this.appRef, egressIds: [...this.app.egresses.keys()], remoteEndpoints: this.app.endpoints,
        stateDir: envDir(this.options.stateDir, this.layout.generation, w), migrateFrom,
        clock: this.options.clock?.buffer ?? null,
        recoverEpoch: this.epoch,
        restoreFrom: this.restoreFromStore !== undefined && this.options.snapshots !== false
          ? { store: this.options.snapshots, epoch: this.restoreFromStore.epoch, manifestKey: this.restoreFromStore.manifestKey }
          : null,
      };
      const worker = spawnWorker(init, `statefn-worker-${w}`, this.appRef.module !== undefined && isTsModule(this.appRef.module));
      this.workers.push(worker);
      ready.push(new Promise<void>((resolve, reject) => {
        worker.once('message', (m: { type?: string; rolledBack?: { undone: number; epochs: number[] } }) => {
          if (m?.type !== 'ready') return reject(new Error(`worker ${w}: unexpected first message`));
          if (m.rolledBack !== undefined && m.rolledBack.undone > 0) {
            this.logger.warn(`worker ${w} rolled back ${m.rolledBack.undone} writes of epochs ${m.rolledBack.epochs.join(', ')} (after the last complete checkpoint ${this.epoch})`);
          }
          resolve();
        });
        worker.once('error', reject);
      }));
      worker.on('error', (e) => this.workerFailed(w, e));
      worker.on('exit', (code) => {
        if (this.state === 'running') this.workerFailed(w, new Error(`exited unexpectedly with code ${code}`));
      });
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await Promise.all(this.workers.map((w) => w.terminate()));
      throw new StatefnError(ErrorCode.WORKER_DIED, `a worker failed to start: ${(e as Error).message}`, { cause: e });
    }
    if (migrating) removeOtherGenerations(this.options.stateDir, this.layout.generation);
    if (this.options.snapshots !== false) {
      const fromSource = import.meta.url.endsWith('.ts');
      const filename = new URL(fromSource ? '../snapshot/upload_bootstrap.mjs' : '../snapshot/upload_task.js', import.meta.url).href;
      this.uploader = new Piscina({ filename, minThreads: 1, maxThreads: 1, idleTimeout: 2 ** 31 - 1, maxQueue: 4 });
    }
    writeLayout(this.options.stateDir, this.layout);
    for (const c of this.egress.connectors()) {
      await c.start?.({
        logger: this.logger,
        signal: this.ingressControllers.signal,
        lineage: this.layout.lineage!,
        deadLetter: (r, reason) => this.writeDeadLetter({
          code: (reason as { code?: string }).code ?? ErrorCode.EGRESS_FAILED, error: reason.message, egress: r.egressId, typename: r.message.typename, record: r.message.toJSON(), at: new Date().toISOString(),
        }),
      });
    }
    await this.redeliverEgress();
    // The flush interval also keeps the process alive while the engine runs (Atomics.waitAsync
    // on the doorbell does not).
    this.flushTimer = setInterval(() => this.startFlush(), L.flushIntervalMs);
    this.pumpLoop();
    const positions = this.recovered?.positions ?? {};
    if (this.recovered !== undefined) {
      this.logger.info(`recovered checkpoint ${this.recovered.epoch}${this.recovered.clean ? ' (clean stop)' : ''}`, { completedAt: this.recovered.completedAt });
    }
    for (const reg of this.app.ingresses) {
      const pos = positions[reg.connector.id];
      if (pos !== undefined && reg.connector.seek !== undefined) {
        reg.connector.seek(pos);
        this.logger.info(`ingress ${reg.connector.id} resumes from its saved position`, { position: pos });
      }
      const ctx = this.ingressContext(reg.connector.id, reg.router);
      await reg.connector.start(ctx);
    }
  }

  // ---- ingress ----

  private ingressContext(id: string, router: ((r: unknown) => RoutedMessage | readonly RoutedMessage[] | undefined) | undefined): IngressContext<unknown> {
    return {
      submit: (records) => {
        if (!this.ingressOpen) {
          throw new StatefnError(ErrorCode.ENGINE_STOPPED, `ingress ${id}: submit after the ingress was stopped (engine ${this.state}); stop producing when stop() is called or ctx.signal is aborted`);
        }
        for (const r of records) {
          if (router === undefined) {
            this.routeIngress(id, r as RoutedMessage, r);
            continue;
          }
          let routed: RoutedMessage | readonly RoutedMessage[] | undefined;
          try {
            routed = router(r);
          } catch (e) {
            this.rejectRecord(id, r, e);
            continue;
          }
          if (routed === undefined) continue;
          if (Array.isArray(routed)) for (const m of routed as RoutedMessage[]) this.routeIngress(id, m, r);
          else this.routeIngress(id, routed as RoutedMessage, r);
        }
        for (const o of this.outs) o.flush();
        this.statsBlock.set(this.mainIdx, Stat.ingested, this.ingested);
        return this.writable();
      },
      whenWritable: () => this.whenWritable(),
      signal: this.ingressControllers.signal,
      logger: this.logger,
      reject: (record, reason) => this.rejectRecord(id, record, reason),
      hasFunction: (typename) => this.app.hasFunction(typename),
      whenDurable: (opts) => this.whenDurable(opts),
    };
  }

  private routeIngress(ingressId: string, m: RoutedMessage, record: unknown): void {
    const to = m?.to;
    // Duck-typed, not instanceof: an app may import statefn's classes from another copy of the
    // package (e.g. its TypeScript sources while the engine runs compiled).
    const msg = m?.message as Message | undefined;
    if (typeof to?.typename !== 'string' || typeof to.id !== 'string' || typeof msg?.typename !== 'string' || msg.payload === undefined) {
      try {
        checkAddress(to, `ingress ${ingressId}: routed message .to`);
        throw new StatefnError(ErrorCode.INGRESS_RECORD_INVALID, `ingress ${ingressId}: routed message must carry a Message (Message.of(type, value))`);
      } catch (e) {
        this.rejectRecord(ingressId, record, e);
        return;
      }
    }
    if (!this.app.hasFunction(to.typename)) {
      this.rejectRecord(ingressId, record, new StatefnError(ErrorCode.UNKNOWN_FUNCTION_TYPE, `ingress ${ingressId}: no function type '${to.typename}' is registered`));
      return;
    }
    const w = this.owner[keyGroupOf(to.id, this.layout.keyGroups)]!;
    this.outs[w]!.message(to.typename, to.id, null, null, m.message.typename, m.message.payload);
    this.ingested++;
  }

  private rejectRecord(ingressId: string, record: unknown, e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    let shown: unknown;
    try {
      shown = record instanceof Uint8Array ? { base64: Buffer.from(record).toString('base64') } : JSON.parse(JSON.stringify(record ?? null)) as unknown;
    } catch {
      shown = String(record);
    }
    this.writeDeadLetter({ code: (err as { code?: string }).code ?? ErrorCode.INGRESS_RECORD_INVALID, error: err.message, ingress: ingressId, record: shown, at: new Date().toISOString() });
  }

  private deadLetterMain(fields: unknown[], e: StatefnError): void {
    const [targetType, targetId, , , typename] = fields as [string, string, unknown, unknown, string];
    this.writeDeadLetter({ code: e.code, error: e.message, target: { typename: targetType, id: targetId }, typename, at: new Date().toISOString() });
  }

  private writeDeadLetter(rec: Record<string, unknown>): void {
    this.mainDead++;
    if (this.mainDead <= 10 || this.mainDead % 1000 === 0) this.logger.warn(`dead letter #${this.mainDead}: ${String(rec.code)}: ${String(rec.error)}`);
    if (!this.egress.push({ egressId: DEAD_LETTER_EGRESS, message: Message.of(DEAD_LETTER_TYPE, rec) })) return;
    this.egress.pump();
  }

  /** True when the engine can take more ingress now. */
  writable(): boolean {
    if (this.state !== 'running') return false;
    // Bound the work not covered by a checkpoint: when one has been under way for too long (the
    // snapshot store is down or slow), pause ingress until it completes.
    const fl = this.flushInFlight;
    if (fl !== undefined && Date.now() - fl.started > CHECKPOINT_LAG_INTERVALS_MAX * this.options.limits.flushIntervalMs) return false;
    if (this.statsBlock.anyPressure()) return false;
    let parked = 0;
    for (const o of this.outs) parked += o.parkedBytes;
    // Ingress parked behind a full ring only adds queueing delay (the ring already holds tens of
    // thousands of messages of work per worker): bound it by one ring's worth.
    const L = this.options.limits;
    if (parked > Math.min(L.outboxBytesHighWater, L.ringBytes)) return false;
    return this.egress.queued() <= L.pendingMessagesMax && this.egressHeld <= EGRESS_HELD_PER_PENDING * L.pendingMessagesMax;
  }

  whenWritable(): Promise<void> {
    if (this.writable()) return Promise.resolve();
    return new Promise((resolve) => {
      this.writableWaiters.push(resolve);
      this.schedulePump();
    });
  }

  // ---- the main loop ----

  private schedulePump(): void {
    // Asleep on the doorbell: ring it, or work queued now (a checkpoint's barriers, commits,
    // egress) would wait for a frame from a worker or the wait's timeout (up to 50 ms).
    if (this.mainSleeping) {
      this.mainSleeping = false;
      this.doorbells.ringAlways(this.mainIdx);
      return;
    }
    if (this.pumpScheduled || this.state === 'stopped' || this.state === 'failed') return;
    this.pumpScheduled = true;
    setImmediate(() => this.pumpLoop());
  }

  private pumpLoop(): void {
    this.pumpScheduled = false;
    if (this.pumpTimer !== undefined) {
      clearTimeout(this.pumpTimer);
      this.pumpTimer = undefined;
    }
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.doorbells.awake(this.mainIdx);
    let frames = 0;
    for (const link of this.inputs) {
      const fs = link.read(256, (e) => this.fail(e));
      frames += fs.length;
      for (const f of fs) this.onFrame(f, link.source);
    }
    // A dirty set over its bound clears only by a checkpoint (and pauses ingress meanwhile):
    // start one now instead of at the next interval (docs/checkpoints.md, "When checkpoints start").
    if (this.flushInFlight === undefined && this.state === 'running' && this.dirtyOverBound()) this.checkpointSoon();
    let parked = 0;
    for (const o of this.outs) {
      o.flush();
      parked += o.parkedBytes;
    }
    this.egress.pump();
    if (this.writableWaiters.length > 0 && this.writable()) {
      const w = this.writableWaiters;
      this.writableWaiters = [];
      for (const f of w) f();
    }
    const s = this.statsBlock;
    s.set(this.mainIdx, Stat.parkedBytes, parked);
    if (frames > 0 || this.inputs.some((l) => !l.isEmpty())) {
      this.schedulePump();
      return;
    }
    // Idle: sleep on the doorbell, but poll soon while anyone waits on back-pressure or parked frames.
    const seq = this.doorbells.prepareWait(this.mainIdx);
    if (this.inputs.some((l) => !l.isEmpty())) {
      this.schedulePump();
      return;
    }
    const timeout = this.writableWaiters.length > 0 || parked > 0 ? 1 : 50;
    this.pumpScheduled = true;
    const r = this.doorbells.waitAsync(this.mainIdx, seq, timeout);
    if (r === undefined) {
      setImmediate(() => this.pumpLoop());
    } else {
      this.mainSleeping = true;
      void r.then(() => {
        this.mainSleeping = false;
        this.pumpLoop();
      });
    }
  }

  private onFrame(f: unknown[], source: number): void {
    switch (f[0]) {
      case FrameKind.EGRESS:
        for (let i = 1; i < f.length; i += EGRESS_FIELDS) {
          const egressId = f[i] as string;
          const message = new Message(f[i + 1] as string, f[i + 2] as Payload);
          if (!this.egress.has(egressId)) {
            this.writeDeadLetter({ code: ErrorCode.UNKNOWN_EGRESS, error: `no egress '${egressId}' is registered`, typename: message.typename, at: new Date().toISOString() });
          } else if (this.options.checkpointing && !this.deliverEarly.has(egressId)) {
            // Visible only once the checkpoint of its epoch is complete.
            this.egressOpen[source]!.push({ egressId, message });
            this.egressHeld++;
          } else if (!this.egress.push({ egressId, message })) {
            this.writeDeadLetter({ code: ErrorCode.UNKNOWN_EGRESS, error: `no egress '${egressId}' is registered`, typename: message.typename, at: new Date().toISOString() });
          }
        }
        return;
      case FrameKind.DEAD:
        for (let i = 1; i < f.length; i++) this.writeDeadLetter(f[i] as Record<string, unknown>);
        return;
      case FrameKind.CONTROL:
        this.onControl(f[1] as number, f.slice(2), source);
        return;
      default:
        this.fail(new StatefnError(ErrorCode.FRAME_MALFORMED, `main: unexpected frame kind ${String(f[0])} from worker ${source}`));
    }
  }

  private onControl(op: number, args: unknown[], source: number): void {
    switch (op) {
      case ControlOp.ACK: {
        const fl = this.flushInFlight;
        if (fl === undefined || fl.epoch !== args[0]) return;
        fl.acks++;
        fl.writes += args[1] as number;
        if (fl.acks === this.options.workers) this.finishFlush(fl);
        return;
      }
      case ControlOp.EPOCH_MARK: {
        const epoch = args[0] as number;
        const open = this.egressOpen[source]!;
        if (open.length > 0) {
          const bucket = this.egressByEpoch.get(epoch);
          if (bucket === undefined) this.egressByEpoch.set(epoch, open);
          else for (const r of open) bucket.push(r);
          this.egressOpen[source] = [];
        }
        return;
      }
      case ControlOp.QUIESCED:
        this.quiesced++;
        this.controlWaiter?.();
        return;
      case ControlOp.SHUTDOWN_DONE:
        this.shutdownDone++;
        this.controlWaiter?.();
        return;
      default:
        this.fail(new StatefnError(ErrorCode.FRAME_MALFORMED, `main: unknown control op ${op} from worker ${source}`));
    }
  }

  // ---- flushes (epochs) ----

  /**
   * Start checkpoint `epoch`: note how far every ingress got (all it submitted so far is ahead of
   * the barrier in the rings) and send the barrier to every worker (docs/checkpoints.md).
   */
  private startFlush(): void {
    if (this.flushInFlight !== undefined || this.state !== 'running') return;
    const epoch = ++this.epoch;
    this.flushInFlight = { epoch, started: Date.now(), acks: 0, writes: 0, positions: this.ingressPositions() };
    // This checkpoint covers every durability waiter so far.
    this.soonWanted = false;
    if (this.soonTimer !== undefined) clearTimeout(this.soonTimer);
    this.soonTimer = undefined;
    for (const o of this.outs) o.control(ControlOp.BARRIER, epoch);
    this.schedulePump();
  }

  private ingressPositions(): Record<string, unknown> {
    const positions: Record<string, unknown> = {};
    for (const r of this.app.ingresses) if (r.connector.position !== undefined) positions[r.connector.id] = r.connector.position();
    return positions;
  }

  /** Every worker's part is durable: record the checkpoint, then release its egress and let workers drop undo records. */
  private completeCheckpoint(epoch: number, positions: Record<string, unknown>, clean: boolean): Promise<void> {
    const record: CheckpointRecord = { version: 1, epoch, positions, completedAt: new Date().toISOString(), clean };
    this.recordWrite = this.recordWrite.then(async () => {
      // At-least-once sinks that get records before their checkpoint: written before it completes.
      if (this.deliverEarly.size > 0) await this.egress.whenWritten((c) => c.deliverBeforeCheckpoint === true);
      // Exactly-once sinks: the epoch's egress is durable before the checkpoint is.
      const egress = this.egressUpTo(epoch);
      if (egress.length > 0 && this.egress.transactional().length > 0) await writeEgressEpoch(this.options.stateDir, epoch, egress);
      await writeCheckpointRecord(this.options.stateDir, record);
      this.releaseEgress(epoch);
      this.egress.commit(epoch);
      this.resolveDurable(epoch);
      if (!clean) for (const o of this.outs) o.control(ControlOp.COMMIT, epoch);
      this.schedulePump();
    });
    this.recordWrite.catch((e: unknown) => this.fail(new StatefnError(ErrorCode.STATE_DIR_INVALID, `cannot write the checkpoint record: ${(e as Error).message}`, { cause: e })));
    return this.recordWrite;
  }

  /**
   * Resolves when checkpoint `this.epoch + 1` (the first to cover what is submitted now)
   * completes. `soon`: start that checkpoint within `limits.durableWaitMs` (group commit).
   */
  whenDurable(opts?: { soon?: boolean }): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const epoch = this.epoch + 1;
    if (opts?.soon === true) this.checkpointSoon();
    return new Promise((resolve, reject) => {
      let w = this.durableWaiters.get(epoch);
      if (w === undefined) this.durableWaiters.set(epoch, (w = []));
      w.push({ resolve, reject });
    });
  }

  /** A checkpoint is wanted soon: start one after durableWaitMs, or right after the one under way. */
  private checkpointSoon(): void {
    this.soonWanted = true;
    if (this.flushInFlight !== undefined || this.soonTimer !== undefined) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      if (this.soonWanted) this.startFlush();
    }, this.options.limits.durableWaitMs);
  }

  private dirtyOverBound(): boolean {
    const max = this.options.limits.dirtyEntriesMax;
    for (let w = 0; w < this.options.workers; w++) if (this.statsBlock.get(w, Stat.dirty) > max) return true;
    return false;
  }

  /** A durability waiter arrived after the last checkpoint started (it waits for the next one). */
  private soonWanted = false;
  private soonTimer: NodeJS.Timeout | undefined;

  private resolveDurable(upTo: number): void {
    for (const [epoch, ws] of this.durableWaiters) {
      if (epoch > upTo) continue;
      this.durableWaiters.delete(epoch);
      for (const w of ws) w.resolve();
    }
  }

  private durableWaiters = new Map<number, { resolve: () => void; reject: (e: Error) => void }[]>();

  private egressUpTo(epoch: number): EgressRecord[] {
    const out: EgressRecord[] = [];
    // A loop, not push(...records): an epoch may hold more records than a call takes arguments.
    for (const e of [...this.egressByEpoch.keys()].filter((k) => k <= epoch).sort((a, b) => a - b)) for (const r of this.egressByEpoch.get(e)!) out.push(r);
    return out;
  }

  private readonly sinkCommitted = new Map<string, number>();

  /** A sink committed `epoch`: egress files every exactly-once sink has committed can go. */
  private onEgressCommitted(id: string, epoch: number): void {
    this.sinkCommitted.set(id, epoch);
    const sinks = this.egress.transactional();
    let min = Infinity;
    for (const c of sinks) min = Math.min(min, this.sinkCommitted.get(c.id) ?? c.committedEpoch!());
    for (const k of egressEpochs(this.options.stateDir)) if (k <= min) deleteEgressEpoch(this.options.stateDir, k);
  }

  /**
   * After a crash: hand each exactly-once sink the egress of complete checkpoints it had not
   * committed (it cut any partly written epoch when it started), and drop files of epochs after
   * the recovered checkpoint (never complete).
   */
  private async redeliverEgress(): Promise<void> {
    if (!this.options.checkpointing) return;
    const sinks = this.egress.transactional();
    for (const c of sinks) await c.discardUncommitted?.();
    for (const k of egressEpochs(this.options.stateDir)) {
      if (k > this.epoch) {
        deleteEgressEpoch(this.options.stateDir, k);
        continue;
      }
      const behind = sinks.filter((c) => c.committedEpoch!() < k);
      if (behind.length === 0) continue;
      const records = readEgressEpoch(this.options.stateDir, k);
      for (const c of behind) {
        const mine = records.filter((r) => r.egressId === c.id);
        this.logger.info(`egress ${c.id}: writing the ${mine.length} records of checkpoint ${k} again (committed up to ${c.committedEpoch!()})`);
        for (const r of mine) this.egress.push(r);
        this.egress.commit(k, c.id);
      }
    }
  }

  private releaseEgress(upTo: number): void {
    const epochs = [...this.egressByEpoch.keys()].filter((e) => e <= upTo).sort((a, b) => a - b);
    for (const e of epochs) {
      for (const r of this.egressByEpoch.get(e)!) this.egress.push(r);
      this.egressHeld -= this.egressByEpoch.get(e)!.length;
      this.egressByEpoch.delete(e);
    }
    this.egress.pump();
  }

  private finishFlush(fl: { epoch: number; started: number; writes: number; positions: Record<string, unknown> }): void {
    // The next barrier waits until this checkpoint is uploaded and recorded.
    void this.uploadEpoch(fl.epoch, fl.positions).then(() => {
      this.flushInFlight = undefined;
      // Waiters that arrived while it ran want the next one.
      if (this.soonWanted) this.checkpointSoon();
      return this.completeCheckpoint(fl.epoch, fl.positions, false);
    }).then(() => this.afterCheckpoint(fl), (e: unknown) => this.fail(e as Error));
  }

  /**
   * Upload epoch `epoch` to the snapshot store (incremental: only what it changed), retrying with
   * backoff while the store is unavailable; message processing goes on meanwhile.
   */
  private async uploadEpoch(epoch: number, positions: Record<string, unknown>, final = false): Promise<void> {
    const pool = this.uploader;
    const snapshots = this.options.snapshots;
    if (pool === undefined || snapshots === false) return;
    const n = this.options.workers;
    const task: UploadTask = {
      epoch, keyGroups: this.layout.keyGroups, store: snapshots, retain: this.options.snapshotRetain, final,
      meta: { positions, workers: n, layoutGeneration: this.layout.generation },
      // The first checkpoint after a restore builds on the restored one (a savepoint's manifest
      // may not be among the store's checkpoints any more).
      ...(this.restoreFromStore !== undefined && this.uploads.length === 0 ? { previous: this.restoreFromStore.manifest } : {}),
      envs: Array.from({ length: n }, (_, w) => {
        const r = keyGroupRange(w, n, this.layout.keyGroups);
        return { dir: envDir(this.options.stateDir, this.layout.generation, w), kgStart: r.start, kgEnd: r.end };
      }),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const r = (await pool.run(task)) as UploadResult;
        this.uploads.push(r);
        if (this.uploads.length > FLUSH_HISTORY) this.uploads.shift();
        return;
      } catch (e) {
        if (this.state === 'failed') throw e;
        const delay = Math.min(30_000, 100 * 2 ** Math.min(attempt, 9));
        this.logger.warn(`checkpoint ${epoch}: upload to the snapshot store failed (attempt ${attempt}); retrying in ${delay} ms`, { error: (e as Error).message });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private afterCheckpoint(fl: { epoch: number; started: number; writes: number }): void {
    const info: FlushInfo = { epoch: fl.epoch, atMs: Date.now(), durationMs: Date.now() - fl.started, writes: fl.writes, ok: true };
    this.flushes.push(info);
    if (this.flushes.length > FLUSH_HISTORY) this.flushes.shift();
    for (const c of this.egress.connectors()) void Promise.resolve(c.flush?.()).catch((e: unknown) => this.logger.warn(`egress ${c.id}: flush failed`, { error: (e as Error).message }));
    const w = this.flushWaiters.get(fl.epoch);
    this.flushWaiters.delete(fl.epoch);
    w?.forEach((f) => f());
  }

  /** Flush all workers' state to LMDB now; resolves when every worker has written it. */
  async flush(): Promise<number> {
    while (this.flushInFlight !== undefined) {
      const e = this.flushInFlight.epoch;
      await new Promise<void>((r) => this.flushWaiters.set(e, [...(this.flushWaiters.get(e) ?? []), r]));
    }
    this.startFlush();
    const e = this.epoch;
    await new Promise<void>((r) => this.flushWaiters.set(e, [...(this.flushWaiters.get(e) ?? []), r]));
    return e;
  }

  // ---- clock ----

  /** Advance the injected manual clock and let workers fire what became due. */
  advanceClock(ms: number): void {
    const c = this.options.clock;
    if (c === undefined) throw new StatefnError(ErrorCode.CONFIG_INVALID, 'advanceClock needs an engine started with a ManualClock (options.clock)');
    c.advance(ms);
    for (const o of this.outs) o.control(ControlOp.CLOCK);
    this.schedulePump();
  }

  // ---- stats ----

  stats(): EngineStats {
    const s = this.statsBlock;
    return {
      uptimeMs: Date.now() - this.startedAt,
      workers: this.options.workers,
      ingested: this.ingested,
      processed: s.sum(Stat.processed),
      sent: s.sum(Stat.sent),
      egressed: s.sum(Stat.egressed),
      deadLetters: this.mainDead,
      failures: s.sum(Stat.failures),
      pending: s.sum(Stat.pending),
      mailboxed: s.sum(Stat.mailboxed),
      parkedBytes: s.sum(Stat.parkedBytes),
      cacheEntries: s.sum(Stat.cacheEntries),
      timers: s.sum(Stat.timers),
      backPressured: !this.writable() && this.state === 'running',
      checkpointPendingMs: this.flushInFlight === undefined ? 0 : Date.now() - this.flushInFlight.started,
      lastFlush: this.flushes[this.flushes.length - 1],
      remote: {
        calls: s.sum(Stat.remoteCalls), batched: s.sum(Stat.remoteBatched), retries: s.sum(Stat.remoteRetries), failures: s.sum(Stat.remoteFailures),
        batchSizes: Object.fromEntries(Array.from({ length: REMOTE_BATCH_BUCKETS }, (_, k) => [
          k === 0 ? '1' : k === REMOTE_BATCH_BUCKETS - 1 ? `${2 ** k}+` : `${2 ** k}-${2 ** (k + 1) - 1}`, s.sum(Stat.remoteBatchHist + k),
        ])),
      },
    };
  }

  /** Terminate worker `w` as if it had crashed (fault injection for tests): the engine fails with WORKER_DIED. */
  async terminateWorker(w: number): Promise<void> {
    await this.workers[w]?.terminate();
  }

  /** Records written by the egress `id` so far. */
  egressWritten(id: string): number {
    return this.egress.written(id);
  }

  // ---- failure and stop ----

  private workerFailed(w: number, e: Error): void {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.fail(new StatefnError(ErrorCode.WORKER_DIED, `worker ${w} died: ${e.message}`, { cause: e }));
  }

  private fail(e: Error): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    this.state = 'failed';
    this.ingressOpen = false;
    this.failure = e;
    this.logger.error(e.message, { code: (e as StatefnError).code, stack: e.stack });
    this.ingressControllers.abort();
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.soonTimer !== undefined) clearTimeout(this.soonTimer);
    this.teardown = Promise.allSettled([
      ...this.app.ingresses.map((reg) => Promise.resolve(reg.connector.stop())),
      ...this.workers.map((w) => w.terminate()),
      this.uploader?.destroy(),
      ...this.egress.connectors().map((c) => Promise.resolve(c.stop?.())),
    ]).then(() => this.releaseLock());
    for (const f of this.failedWaiters) f(e);
    for (const ws of this.durableWaiters.values()) for (const w of ws) w.reject(e);
    this.durableWaiters.clear();
    this.controlWaiter?.();
  }

  private teardown: Promise<void> = Promise.resolve();

  /** After a failure: resolves once ingresses, workers, the uploader and egresses are shut and the lock is free. */
  tornDown(): Promise<void> {
    return this.teardown;
  }

  /** Resolves never; rejects when the engine fails (a worker died, a corrupt frame). */
  failed(): Promise<never> {
    return new Promise((_, reject) => {
      if (this.failure) reject(this.failure);
      else this.failedWaiters.push(reject);
    });
  }

  private async waitControl(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + this.options.limits.stopTimeoutMs;
    while (!cond()) {
      if (this.state === 'failed') throw this.failure!;
      const left = deadline - Date.now();
      if (left <= 0) {
        const e = new StatefnError(ErrorCode.ENGINE_STOPPED, `clean stop timed out waiting for ${what} after ${this.options.limits.stopTimeoutMs} ms; the next start resumes from the last flush`);
        this.fail(e);
        throw e;
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 100));
        this.controlWaiter = () => {
          clearTimeout(t);
          r();
        };
      });
      this.controlWaiter = undefined;
    }
  }

  /**
   * Stop cleanly: stop ingresses, let in-flight work settle, save every message not yet handled,
   * flush state and timers, drain egress, and close. A restart resumes exactly here.
   */
  async stop(): Promise<void> {
    if (this.state !== 'running') {
      if (this.state === 'failed') throw this.failure!;
      return;
    }
    this.state = 'stopping';
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.soonTimer !== undefined) clearTimeout(this.soonTimer);
    this.ingressControllers.abort();
    await Promise.all(this.app.ingresses.map((r) => Promise.resolve(r.connector.stop())));
    this.ingressOpen = false;
    // Every record submitted so far is routed and will be saved with the workers' state below.
    const positions = this.ingressPositions();
    for (const f of this.writableWaiters) f();
    this.writableWaiters = [];
    // Everything the main thread routed must reach the workers before they quiesce.
    await this.waitControl(() => {
      this.schedulePump();
      return this.outs.every((o) => !o.hasParked());
    }, 'the main thread\'s outboxes');
    for (const o of this.outs) o.control(ControlOp.QUIESCE);
    this.schedulePump();
    await this.waitControl(() => this.quiesced === this.options.workers, 'workers to quiesce');
    // A checkpoint under way completes first (its barriers were ahead of the quiesce marks).
    await this.waitControl(() => this.flushInFlight === undefined, 'the checkpoint under way');
    await this.recordWrite;
    const finalEpoch = ++this.epoch;
    for (const o of this.outs) o.control(ControlOp.SHUTDOWN, finalEpoch);
    this.schedulePump();
    await this.waitControl(() => this.shutdownDone === this.options.workers, 'workers to save state');
    await this.uploadEpoch(finalEpoch, positions, true);
    await this.completeCheckpoint(finalEpoch, positions, true);
    await this.uploader?.destroy();
    // Frames sent before SHUTDOWN_DONE (egress, dead letters) were read by the pump already.
    await this.egress.drain();
    for (const c of this.egress.connectors()) {
      await c.flush?.();
      await c.stop?.();
    }
    this.state = 'stopped';
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.releaseLock();
  }
}

