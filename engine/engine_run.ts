/**
 * One run of the engine: the application loaded once, its state recovered from the last complete
 * checkpoint (recovery_plan.ts), its workers (worker_pool.ts), main loop, ingress router,
 * checkpoint coordinator and egress, from start until a clean stop or a failure. A run never
 * restarts itself: after a worker died, the Engine facade (engine.ts) tears it down and starts
 * a new run in the same process.
 */
import type { Packr } from 'msgpackr';
import { join } from 'node:path';
import { App, DEAD_LETTER_EGRESS } from '../api/app.js';
import type { EgressConnector, Logger } from '../api/connector_api.js';
import { endpointFor } from '../api/endpoint.js';
import { loadApp, type AppModuleRef } from '../api/load_app.js';
import { Message } from '../api/message.js';
import type { Payload } from '../api/types.js';
import { resolveOptions, type EngineOptions, type ResolvedOptions } from '../config/engine_options.js';
import { loadModuleInto } from '../config/module_app.js';
import type { WorkerInit } from '../config/worker_init.js';
import { ErrorCode, StatefnError, assert } from '../shared/errors.js';
import { ControlOp, EGRESS_FIELDS, FrameKind, createCodec } from '../shared/frames.js';
import { keyGroupRange } from '../shared/key_group.js';
import { Stat } from '../shared/stats_block.js';
import { manifestKey, readManifest } from '../snapshot/checkpoint_layout.js';
import { describeSnapshotStore, openSnapshotStore } from '../snapshot/store_config.js';
import type { UploadResult } from '../snapshot/upload_task.js';
import { moveAsideForRestore, repairEnvs, restoreRanges } from '../state/env_repair.js';
import { envDir, lockStateDir, removeOtherGenerations, writeLayout } from '../state/state_layout.js';
import { lowDiskError } from '../state/disk_space.js';
import { CheckpointCoordinator, type CheckpointInfo } from './checkpoint_coordinator.js';
import { CheckpointUploader } from './checkpoint_uploader.js';
import { writeCheckpointRecord } from './checkpoint_record.js';
import { DeadLetters } from './dead_letters.js';
import { EgressDispatcher } from './egress_dispatcher.js';
import { EpochEgress } from './epoch_egress.js';
import { IngressRouter } from './ingress_router.js';
import { MainLoop } from './main_loop.js';
import { isTsModule } from './module_url.js';
import { planRecovery, type RecoveryPlan } from './recovery_plan.js';
import { readRecoveryInput } from './recovery_source.js';
import { runStats, type EngineStats } from './run_stats.js';
import { WorkerPool } from './worker_pool.js';
import { lowDiskLogEveryMs, stopPollMs } from '../shared/limits.js';

/** A run's life: running, then stopping and stopped (clean stop), or failed at any point. */
export type RunState = 'running' | 'stopping' | 'stopped' | 'failed';

/** What outlives a run: the histories the Engine facade shows across restarts. */
export interface RunHistory {
  checkpoints: CheckpointInfo[];
  uploads: UploadResult[];
}

export class EngineRun {
  readonly options: ResolvedOptions;
  private readonly logger: Logger;
  private readonly codec: Packr = createCodec();
  private readonly startedAt = Date.now();
  private readonly ingressController = new AbortController();
  readonly pool: WorkerPool;
  private readonly loop: MainLoop;
  private readonly egress: EgressDispatcher;
  private readonly deadLetters: DeadLetters;
  private readonly epochEgress: EpochEgress;
  private readonly router: IngressRouter;
  /** Created once the workers are ready (one more thread only when the run is up). */
  private uploader: CheckpointUploader | undefined;
  private readonly coordinator: CheckpointCoordinator;
  private state: RunState = 'running';
  private failure: Error | undefined;
  private readonly failedWaiters: ((e: Error) => void)[] = [];
  private teardown: Promise<void> = Promise.resolve();
  private quiesced = 0;
  private shutdownDone = 0;
  private controlWaiter: (() => void) | undefined;

  private constructor(
    readonly app: App,
    private readonly appRef: AppModuleRef,
    options: ResolvedOptions,
    private readonly plan: RecoveryPlan,
    private readonly releaseLock: () => void,
    private readonly history: RunHistory,
  ) {
    this.options = options;
    this.logger = options.logger;
    const n = options.workers;
    const egresses: EgressConnector[] = [...app.egresses.values()];
    if (!app.egresses.has(DEAD_LETTER_EGRESS) && options.deadLetterFile && options.deadLetterEgress !== undefined) {
      egresses.push(options.deadLetterEgress(options.stateDir));
    }
    this.egress = new EgressDispatcher(
      egresses,
      this.logger,
      () => this.loop.schedule(),
      (id, epoch) => this.epochEgress.onCommitted(id, epoch),
    );
    this.deadLetters = new DeadLetters(this.logger, this.egress);
    const L = options.limits;
    this.pool = new WorkerPool(n, L, this.codec, (f, bytes) => {
      this.deadLetters.unsendable(
        f,
        new StatefnError(ErrorCode.PAYLOAD_TOO_LARGE, `message of ${bytes} bytes exceeds frameBytesMax ${L.frameBytesMax}`),
      );
    });
    this.epochEgress = new EpochEgress(n, this.egress, this.deadLetters, options.stateDir, options.checkpointing, this.logger);
    this.loop = new MainLoop(this.pool.doorbells, this.pool.mainIdx, this.pool.inputs, {
      active: () => this.state !== 'stopped' && this.state !== 'failed',
      onFrame: (f, source) => this.onFrame(f, source),
      onBadFrame: (e) => this.fail(e),
      afterRead: () => this.afterRead(),
    });
    this.coordinator = new CheckpointCoordinator(
      {
        workers: n,
        limits: L,
        stateDir: options.stateDir,
        running: () => this.state === 'running',
        sendBarrier: (epoch) => this.pool.control(ControlOp.BARRIER, epoch),
        sendCommit: (epoch) => this.pool.control(ControlOp.COMMIT, epoch),
        positions: () => this.router.positions(),
        dirtyOverBound: () => {
          for (let w = 0; w < n; w++) if (this.pool.stats.get(w, Stat.dirty) > L.dirtyEntriesMax) return true;
          return false;
        },
        storageReady: () => this.storageReady(),
        egress: this.epochEgress,
        upload: async (epoch, positions, final) => this.uploader?.upload(epoch, positions, final),
        fail: (e) => this.fail(e),
        schedulePump: () => this.loop.schedule(),
      },
      plan.epoch,
      history.checkpoints,
    );
    this.router = new IngressRouter(
      app,
      plan.keyGroups,
      L,
      this.pool,
      this.deadLetters,
      {
        running: () => this.state === 'running',
        checkpointPendingMs: () => this.coordinator.pendingMs(),
        egressQueued: () => this.egress.queued(),
        egressHeld: () => this.epochEgress.held(),
      },
      this.logger,
      this.ingressController.signal,
      () => this.state,
      (opts) => this.whenDurable(opts),
      () => this.loop.schedule(),
    );
  }

  /**
   * Load the application, take the state directory's lock, decide what to recover from, and
   * start. `ref` is normalised (module as a file: URL) by the caller.
   */
  static async start(ref: AppModuleRef, options: EngineOptions & Record<string, unknown>, history: RunHistory): Promise<EngineRun> {
    const loaded = await loadApp(ref);
    if (ref.moduleYaml !== undefined) await loadModuleInto(loaded, ref.moduleYaml, options.connectorKinds ?? []);
    const opts = resolveOptions(loaded.options, options);
    const releaseLock = lockStateDir(opts.stateDir);
    let run: EngineRun | undefined;
    try {
      // Recovery writes to LMDB (rollback, restore): not on a file system without room.
      const low = lowDiskError(opts.stateDir, opts.limits.stateDirFreeBytesMin);
      if (low !== undefined) throw new StatefnError(low.code, `cannot start: ${low.message}`, { cause: low });
      const plan = planRecovery(await readRecoveryInput(opts, options.limits?.keyGroups));
      run = new EngineRun(loaded, ref, { ...opts, limits: { ...opts.limits, keyGroups: plan.keyGroups } }, plan, releaseLock, history);
      opts.logger.info(`snapshots: ${describeSnapshotStore(opts.snapshots)}`);
      for (const e of loaded.endpoints) {
        const embedded = [...loaded.functions.keys()].filter((t) => endpointFor(loaded.endpoints, t) === e);
        opts.logger.info(
          `remote endpoint ${e.urlPathTemplate} serves ${e.functions} (${e.source})` +
            (embedded.length > 0 ? `; the embedded ${embedded.join(', ')} ${embedded.length > 1 ? 'are' : 'is'} not used` : ''),
        );
      }
      if (plan.restoreFrom !== undefined && opts.fromSavepoint === undefined) {
        opts.logger.info(`local state is empty: restoring checkpoint ${plan.restoreFrom.epoch} from the snapshot store`);
      }
      await run.boot();
      return run;
    } catch (e) {
      // A start that fails half way (an ingress that cannot start, a worker that cannot restore)
      // shuts what it started: no worker thread or connector outlives it.
      if (run !== undefined) {
        run.fail(e as Error, false);
        await run.tornDown();
      }
      releaseLock();
      throw e;
    }
  }

  private async boot(): Promise<void> {
    const { workers: n, stateDir } = this.options;
    const { layout, migrateFrom: prev, recovered, restoreFrom } = this.plan;
    const migrateFrom = prev === undefined ? [] : Array.from({ length: prev.workers }, (_, i) => envDir(stateDir, prev.generation, i));
    if (prev !== undefined) this.logger.info(`rescaling state from ${prev.workers} to ${n} workers`, { keyGroups: layout.keyGroups });
    const snapshots = this.options.snapshots;
    const r = this.plan.epoch;
    const kgOf = (w: number, workers: number) => {
      const { start, end } = keyGroupRange(w, workers, layout.keyGroups);
      return { kgStart: start, kgEnd: end };
    };
    // Before any worker opens an environment: each one the workers use (the old layout's when
    // rescaling) is checked against checkpoint r; a damaged one is moved aside and its key groups
    // are restored from the snapshot store, or the start fails with the fix (state/env_repair.ts).
    let damaged: { dir: string; kgStart: number; kgEnd: number }[] = [];
    let healthyOld = migrateFrom;
    if (restoreFrom !== undefined) {
      // The whole state comes from the store: an environment left here would mix with it.
      const current = Array.from({ length: n }, (_, w) => envDir(stateDir, layout.generation, w));
      for (const m of moveAsideForRestore(current))
        this.logger.warn(`${m.dir} is replaced by the restored checkpoint; moved aside to ${m.movedTo}`);
    } else {
      const envs =
        prev === undefined
          ? Array.from({ length: n }, (_, w) => ({
              dir: envDir(stateDir, layout.generation, w),
              owner: `worker ${w}`,
              ...kgOf(w, n),
              // Beside state/, which a later rescale removes with its generation.
              asideBase: join(stateDir, `gen-${layout.generation}-worker-${w}`),
            }))
          : migrateFrom.map((dir, i) => ({
              dir,
              owner: `worker ${i} of layout generation ${prev.generation}`,
              ...kgOf(i, prev.workers),
              // The old generation's directory is removed once the rescaled workers are ready.
              asideBase: join(stateDir, `gen-${prev.generation}-worker-${i}`),
            }));
      const repair = await repairEnvs({
        stateDir,
        recoverEpoch: r,
        envs,
        verifyStore:
          snapshots === false
            ? undefined
            : async () => {
                await readManifest(openSnapshotStore(snapshots), manifestKey(r));
              },
        warn: (m, f) => this.logger.warn(m, f),
      });
      if (repair.restore) damaged = repair.damaged;
      healthyOld = migrateFrom.filter((dir) => !repair.damaged.some((d) => d.dir === dir));
    }
    const restoreFor = (w: number): WorkerInit['restoreFrom'] => {
      if (snapshots === false) return null;
      if (restoreFrom !== undefined) return { store: snapshots, epoch: restoreFrom.epoch, manifestKey: restoreFrom.manifestKey };
      const { kgStart, kgEnd } = kgOf(w, n);
      const keyGroups = restoreRanges(kgStart, kgEnd, damaged);
      return keyGroups.length === 0 ? null : { store: snapshots, epoch: r, manifestKey: manifestKey(r), keyGroups };
    };
    await this.pool.spawn(
      (w, memory) => ({
        index: w,
        workers: n,
        keyGroups: layout.keyGroups,
        limits: this.options.limits,
        ...memory,
        app: this.appRef,
        egressIds: [...this.app.egresses.keys()],
        remoteEndpoints: this.app.endpoints,
        stateDir: envDir(stateDir, layout.generation, w),
        migrateFrom: healthyOld,
        clock: this.options.clock?.buffer ?? null,
        recoverEpoch: this.plan.epoch,
        restoreFrom: restoreFor(w),
      }),
      this.appRef.module !== undefined && isTsModule(this.appRef.module),
      this.logger,
      this.plan.epoch,
      {
        onError: (w, e) => this.workerFailed(w, e),
        onExit: (w, code) => {
          if (this.state === 'running') this.workerFailed(w, new Error(`exited unexpectedly with code ${code}`));
        },
      },
    );
    if (prev !== undefined) removeOtherGenerations(stateDir, layout.generation);
    if (snapshots !== false) {
      this.uploader = new CheckpointUploader(
        {
          store: snapshots,
          retain: this.options.snapshotRetain,
          stateDir,
          workers: n,
          keyGroups: layout.keyGroups,
          generation: layout.generation,
          restoredFrom: restoreFrom?.manifest,
          recoveredEpoch: this.plan.epoch,
          lineage: layout.lineage!,
          logger: this.logger,
        },
        this.history.uploads,
        () => this.state === 'failed',
      );
    }
    // A checkpoint recovered from the snapshot store gets its local record now, before the layout
    // says the local state is whole: a crash before the first checkpoint then recovers it again.
    if (this.plan.recordFromStore !== undefined && recovered !== undefined) await writeCheckpointRecord(stateDir, recovered);
    writeLayout(stateDir, layout);
    for (const c of this.egress.connectors()) {
      await c.start?.({
        logger: this.logger,
        signal: this.ingressController.signal,
        lineage: layout.lineage!,
        deadLetter: (r, reason) =>
          this.deadLetters.write({
            code: (reason as { code?: string }).code ?? ErrorCode.EGRESS_FAILED,
            error: reason.message,
            egress: r.egressId,
            typename: r.message.typename,
            record: r.message.toJSON(),
            at: new Date().toISOString(),
          }),
      });
    }
    await this.epochEgress.redeliver(this.coordinator.epoch);
    this.coordinator.startInterval();
    this.loop.turn();
    const positions = recovered?.positions ?? {};
    if (recovered !== undefined) {
      this.logger.info(`recovered checkpoint ${recovered.epoch}${recovered.clean ? ' (clean stop)' : ''}`, {
        completedAt: recovered.completedAt,
      });
    }
    for (const reg of this.app.ingresses) {
      const pos = positions[reg.connector.id];
      if (pos !== undefined && reg.connector.seek !== undefined) {
        reg.connector.seek(pos);
        // The position's size, not the position: it may hold many idempotency keys.
        this.logger.info(`ingress ${reg.connector.id} resumes from its saved position`, { positionBytes: JSON.stringify(pos).length });
      }
      await reg.connector.start(this.router.context(reg.connector.id, reg.router));
    }
  }

  // ---- the main loop's work ----

  private afterRead(): boolean {
    // A dirty set over its bound clears only by a checkpoint (and pauses ingress meanwhile):
    // start one now instead of at the next interval (docs/checkpoints.md, "When checkpoints start").
    this.coordinator.checkDirtyBound();
    const parked = this.pool.flushOutboxes();
    this.egress.pump();
    this.router.releaseWaiters();
    this.pool.stats.set(this.pool.mainIdx, Stat.parkedBytes, parked);
    return this.router.waiting() || parked > 0;
  }

  private onFrame(f: unknown[], source: number): void {
    switch (f[0]) {
      case FrameKind.EGRESS:
        assert(
          (f.length - 1) % EGRESS_FIELDS === 0,
          () => `EGRESS frame from worker ${source} has ${f.length - 1} fields, not a multiple of ${EGRESS_FIELDS}`,
        );
        for (let i = 1; i < f.length; i += EGRESS_FIELDS)
          this.epochEgress.accept(source, f[i] as string, new Message(f[i + 1] as string, f[i + 2] as Payload));
        return;
      case FrameKind.DEAD:
        for (let i = 1; i < f.length; i++) this.deadLetters.write(f[i] as Record<string, unknown>);
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
      case ControlOp.ACK:
        this.coordinator.onAck(args[0] as number, args[1] as number);
        return;
      case ControlOp.EPOCH_MARK:
        this.epochEgress.onEpochMark(source, args[0] as number);
        return;
      case ControlOp.QUIESCED:
        this.quiesced++;
        assert(this.quiesced <= this.options.workers, 'more QUIESCED marks than workers');
        this.controlWaiter?.();
        return;
      case ControlOp.SHUTDOWN_DONE:
        this.shutdownDone++;
        assert(this.shutdownDone <= this.options.workers, 'more SHUTDOWN_DONE marks than workers');
        this.controlWaiter?.();
        return;
      default:
        this.fail(new StatefnError(ErrorCode.FRAME_MALFORMED, `main: unknown control op ${op} from worker ${source}`));
    }
  }

  // ---- the public API's parts (see Engine) ----

  writable(): boolean {
    return this.router.writable();
  }

  whenWritable(): Promise<void> {
    return this.router.whenWritable();
  }

  whenDurable(opts?: { soon?: boolean }): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return this.coordinator.whenDurable(opts);
  }

  checkpoint(): Promise<number> {
    return this.coordinator.checkpoint();
  }

  advanceClock(ms: number): void {
    const c = this.options.clock;
    if (c === undefined)
      throw new StatefnError(ErrorCode.CONFIG_INVALID, 'advanceClock needs an engine started with a ManualClock (options.clock)');
    c.advance(ms);
    this.pool.control(ControlOp.CLOCK);
    this.loop.schedule();
  }

  stats(): EngineStats {
    return runStats(this.pool.stats, {
      uptimeMs: Date.now() - this.startedAt,
      workers: this.options.workers,
      ingested: this.router.ingested,
      deadLetters: this.deadLetters.count,
      backPressured: !this.writable() && this.state === 'running',
      checkpointPendingMs: this.coordinator.pendingMs(),
      lastCheckpoint: this.coordinator.last(),
    });
  }

  terminateWorker(w: number): Promise<void> {
    return this.pool.terminate(w);
  }

  egressWritten(id: string): number {
    return this.egress.written(id);
  }

  // ---- failure and stop ----

  private lowDiskLoggedAt = 0;

  /** The state directory has room for a checkpoint (logs, at most every 10 s, when it has not). */
  private storageReady(): boolean {
    const low = lowDiskError(this.options.stateDir, this.options.limits.stateDirFreeBytesMin);
    if (low === undefined) return true;
    if (Date.now() - this.lowDiskLoggedAt >= lowDiskLogEveryMs) {
      this.lowDiskLoggedAt = Date.now();
      this.logger.error(low.message, { code: low.code });
    }
    return false;
  }

  private workerFailed(w: number, e: Error): void {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.fail(new StatefnError(ErrorCode.WORKER_DIED, `worker ${w} died: ${e.message}`, { cause: e }));
  }

  /**
   * Fail the run: stop everything now (no clean stop); `failed()` rejects with `e`. `log`: false
   * when the caller reports the error itself (a failed start throws it).
   */
  fail(e: Error, log = true): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    this.state = 'failed';
    this.router.close();
    this.failure = e;
    if (log) this.logger.error(e.message, { code: (e as StatefnError).code, stack: e.stack });
    this.ingressController.abort();
    this.coordinator.stopTimers();
    this.teardown = Promise.allSettled([
      ...this.app.ingresses.map((reg) => Promise.resolve(reg.connector.stop())),
      this.pool.terminateAll(),
      this.uploader?.destroy(),
      ...this.egress.connectors().map((c) => Promise.resolve(c.stop?.())),
    ]).then(() => this.releaseLock());
    for (const f of this.failedWaiters) f(e);
    this.coordinator.rejectWaiters(e);
    this.controlWaiter?.();
  }

  /** After a failure: resolves once ingresses, workers, the uploader and egresses are shut and the lock is free. */
  tornDown(): Promise<void> {
    return this.teardown;
  }

  /** Resolves never; rejects when the run fails. */
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
        const e = new StatefnError(
          ErrorCode.ENGINE_STOPPED,
          `clean stop timed out waiting for ${what} after ${this.options.limits.stopTimeoutMs} ms; the next start resumes ` +
            `from the last complete checkpoint`,
        );
        this.fail(e);
        throw e;
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, stopPollMs));
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
   * checkpoint state and timers, drain egress, and close. A restart resumes exactly here.
   */
  async stop(): Promise<void> {
    if (this.state !== 'running') {
      if (this.state === 'failed') throw this.failure!;
      return;
    }
    this.state = 'stopping';
    this.coordinator.stopTimers();
    this.ingressController.abort();
    await Promise.all(this.app.ingresses.map((r) => Promise.resolve(r.connector.stop())));
    this.router.close();
    // Every record submitted so far is routed and will be saved with the workers' state below.
    const positions = this.router.positions();
    this.router.releaseWaiters(true);
    // Everything the main thread routed must reach the workers before they quiesce.
    await this.waitControl(() => {
      this.loop.schedule();
      return !this.pool.hasParked();
    }, "the main thread's outboxes");
    this.pool.control(ControlOp.QUIESCE);
    this.loop.schedule();
    await this.waitControl(() => this.quiesced === this.options.workers, 'workers to quiesce');
    // A checkpoint under way completes first (its barriers were ahead of the quiesce marks).
    await this.waitControl(() => !this.coordinator.busy(), 'the checkpoint under way');
    await this.coordinator.settled();
    // No room for the final checkpoint: stop as a crash would (the next start recovers the last
    // complete checkpoint; nothing acknowledged is lost) rather than let LMDB run out mid-write.
    const low = lowDiskError(this.options.stateDir, this.options.limits.stateDirFreeBytesMin);
    if (low !== undefined) {
      this.fail(new StatefnError(low.code, `${low.message}; stopped without a final checkpoint`, { cause: low }), false);
      await this.tornDown();
      throw this.failure!;
    }
    const finalEpoch = this.coordinator.nextFinalEpoch();
    this.pool.control(ControlOp.SHUTDOWN, finalEpoch);
    this.loop.schedule();
    await this.waitControl(() => this.shutdownDone === this.options.workers, 'workers to save state');
    await this.coordinator.completeFinal(finalEpoch, positions);
    await this.uploader?.destroy();
    // Frames sent before SHUTDOWN_DONE (egress, dead letters) were read by the loop already.
    await this.egress.drain();
    for (const c of this.egress.connectors()) {
      await c.flush?.();
      await c.stop?.();
    }
    this.state = 'stopped';
    await this.pool.terminateAll();
    this.releaseLock();
  }
}
