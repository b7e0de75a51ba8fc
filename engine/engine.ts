/**
 * The engine's public face (`Engine.start`, `stop`, `stats`, `whenDurable`, ...). The work of a
 * running engine is done by one EngineRun at a time (engine_run.ts: workers, main loop, ingress,
 * checkpoints, egress). When a worker thread dies, the engine restores the last complete
 * checkpoint in the same process and goes on with a new run, within the bounds of
 * WorkerRestartPolicy (worker_pool.ts); any other failure, or one restart too many, is final and
 * makes `failed()` reject. Applications that embed the engine get this recovery as the `statefn`
 * command does.
 */
import type { App } from '../api/app.js';
import type { AppModuleRef } from '../api/load_app.js';
import type { EngineOptions, ResolvedOptions } from '../config/engine_options.js';
import { assert, type StatefnError } from '../shared/errors.js';
import type { UploadResult } from '../snapshot/upload_task.js';
import type { CheckpointInfo } from './checkpoint_coordinator.js';
import { EngineRun, type RunHistory } from './engine_run.js';
import { isTsModule, moduleUrl } from './module_url.js';
import type { EngineStats } from './run_stats.js';
import type { StatsBlock } from '../shared/stats_block.js';
import { WorkerRestartPolicy } from './worker_pool.js';

export type { CheckpointInfo } from './checkpoint_coordinator.js';
export type { EngineStats } from './run_stats.js';
/** @deprecated renamed CheckpointInfo. */
export type FlushInfo = CheckpointInfo;
export { moduleUrl } from './module_url.js';

/** running -> (restarting -> running)* -> stopping -> stopped, or failed from any but stopped. */
type EngineState = 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

export class Engine {
  private current: EngineRun;
  private state: EngineState = 'running';
  private failure: Error | undefined;
  private readonly failedWaiters: ((e: Error) => void)[] = [];
  private readonly restartPolicy: WorkerRestartPolicy;
  /** The restart under way (state 'restarting'). */
  private restarting: Promise<void> | undefined;
  /** tornDown() was called during a restart: give up instead of starting a new run. */
  private abandoned = false;

  protected constructor(
    private readonly ref: AppModuleRef,
    private readonly startOptions: EngineOptions & Record<string, unknown>,
    first: EngineRun,
    private readonly history: RunHistory,
  ) {
    this.current = first;
    this.restartPolicy = new WorkerRestartPolicy(first.options.limits.workerRestartsMax);
    this.watch(first);
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
    const history: RunHistory = { checkpoints: [], uploads: [] };
    const run = await EngineRun.start(ref, options, history);
    return new Engine(ref, options, run, history);
  }

  /** The resolved options of the running engine. */
  get options(): ResolvedOptions {
    return this.current.options;
  }

  /** The application as the running engine loaded it (a restart loads a fresh instance). */
  get app(): App {
    return this.current.app;
  }

  /** The most recent completed checkpoints, newest last (kept across restarts). */
  get checkpoints(): readonly CheckpointInfo[] {
    return this.history.checkpoints;
  }

  /** @deprecated renamed `checkpoints`. */
  get flushes(): readonly CheckpointInfo[] {
    return this.history.checkpoints;
  }

  /** The most recent uploads to the snapshot store, newest last (kept across restarts). */
  get uploads(): readonly UploadResult[] {
    return this.history.uploads;
  }

  // ---- supervision: restart after a worker died ----

  private watch(run: EngineRun): void {
    run.failed().catch((e: unknown) => this.onRunFailed(run, e as Error));
  }

  private onRunFailed(run: EngineRun, e: Error): void {
    // A failure during a clean stop makes stop() reject; after it, nothing is restarted.
    if (run !== this.current || this.state !== 'running') return;
    const next = this.abandoned ? undefined : this.restartPolicy.next(e);
    if (next === undefined) {
      this.failForGood(e);
      return;
    }
    this.state = 'restarting';
    const logger = run.options.logger;
    logger.warn(`restoring the last complete checkpoint after: ${e.message} (restart ${next.restart}/${this.restartPolicy.max})`);
    const restarting: Promise<void> = this.restart(run, e, next.restart, next.delayMs).finally(() => {
      // A run that failed at once may have started the next restart already.
      if (this.restarting === restarting) this.restarting = undefined;
    });
    this.restarting = restarting;
  }

  private async restart(old: EngineRun, cause: Error, restart: number, delayMs: number): Promise<void> {
    await old.tornDown();
    await new Promise((r) => setTimeout(r, delayMs));
    if (this.abandoned) return this.failForGood(cause);
    let run: EngineRun;
    try {
      // A fresh instance of the module: the old run's connectors were stopped. A savepoint was
      // restored by the first run already; the local state now goes on from it.
      run = await EngineRun.start(
        { ...this.ref, reload: (this.ref.reload ?? 0) + restart },
        { ...this.startOptions, fromSavepoint: undefined },
        this.history,
      );
    } catch (e) {
      old.options.logger.error(`restart ${restart} failed: ${(e as Error).message}`, { code: (e as StatefnError).code });
      return this.failForGood(e as Error);
    }
    this.current = run;
    this.state = 'running';
    this.watch(run);
    if (this.abandoned) {
      run.fail(cause);
      return;
    }
    run.options.logger.info(`running again with ${run.options.workers} workers`);
  }

  private failForGood(e: Error): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    this.state = 'failed';
    this.failure = e;
    for (const f of this.failedWaiters) f(e);
    this.failedWaiters.length = 0;
  }

  /** Resolves never; rejects when the engine fails for good (not after a worker death it recovers from). */
  failed(): Promise<never> {
    return new Promise((_, reject) => {
      if (this.failure) reject(this.failure);
      else this.failedWaiters.push(reject);
    });
  }

  /**
   * After a failure: resolves once ingresses, workers, the uploader and egresses are shut and the
   * lock is free. Called during a restart, it abandons the engine: no new run is started.
   */
  async tornDown(): Promise<void> {
    if (this.restarting !== undefined) {
      this.abandoned = true;
      await this.restarting;
    }
    await this.current.tornDown();
  }

  // ---- the running engine ----

  stats(): EngineStats {
    return this.current.stats();
  }

  /**
   * The current run's shared stats block, for per-thread figures (tests, benchmarks).
   * @internal
   */
  get statsBlock(): StatsBlock {
    return this.current.pool.stats;
  }

  /** True when the engine can take more ingress now. */
  writable(): boolean {
    return this.current.writable();
  }

  /** Resolves when the engine can take more ingress (after a restart under way, from the new run). */
  async whenWritable(): Promise<void> {
    if (this.restarting !== undefined) await this.restarting;
    return this.current.whenWritable();
  }

  /**
   * Resolves when checkpoint `epoch + 1` (the first to cover what is submitted now) completes;
   * rejects if the engine fails first. `soon`: start that checkpoint within `limits.durableWaitMs`
   * (group commit).
   */
  whenDurable(opts?: { soon?: boolean }): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return this.current.whenDurable(opts);
  }

  /** Take a checkpoint now (after the one under way); resolves with its epoch once it is complete. */
  async checkpoint(): Promise<number> {
    if (this.restarting !== undefined) await this.restarting;
    return this.current.checkpoint();
  }

  /** @deprecated renamed `checkpoint()`. */
  flush(): Promise<number> {
    return this.checkpoint();
  }

  /** Advance the injected manual clock and let workers fire what became due. */
  advanceClock(ms: number): void {
    this.current.advanceClock(ms);
  }

  /** Terminate worker `w` as if it had crashed (fault injection): the engine restores the last complete checkpoint and goes on. */
  terminateWorker(w: number): Promise<void> {
    return this.current.terminateWorker(w);
  }

  /** Records written by the egress `id` so far (by the running engine). */
  egressWritten(id: string): number {
    return this.current.egressWritten(id);
  }

  /**
   * Stop cleanly: stop ingresses, let in-flight work settle, save every message not yet handled,
   * checkpoint state and timers, drain egress, and close. A restart resumes exactly here. A
   * restart under way completes first.
   */
  async stop(): Promise<void> {
    if (this.restarting !== undefined) await this.restarting;
    if (this.state !== 'running') {
      if (this.state === 'failed') throw this.failure!;
      return;
    }
    this.state = 'stopping';
    try {
      await this.current.stop();
    } catch (e) {
      this.failForGood(e as Error);
      throw e;
    }
    assert(this.state === 'stopping', () => `engine stopped in state ${this.state}`);
    this.state = 'stopped';
  }
}
