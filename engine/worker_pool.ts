/**
 * The worker threads of one engine run and the shared memory that connects them: the ring mesh
 * (one single-producer/single-consumer ring per ordered pair of threads), the doorbells, and the
 * stats block. The pool spawns the workers, waits until each is ready (it restored and recovered
 * its state), watches them, and gives the main thread its links: `outs[w]` to worker w and
 * `inputs[w]` from it. The thread index `workers` is the main thread's.
 *
 * Also here: the restart policy applied when a worker thread dies (WorkerRestartPolicy): a
 * bounded number of in-process restarts from the last complete checkpoint, with backoff.
 */
import { Worker } from 'node:worker_threads';
import type { Packr } from 'msgpackr';
import type { Logger } from '../api/connector_api.js';
import type { WorkerInit } from '../config/worker_init.js';
import { backoffDelayMs, type BackoffPolicy } from '../shared/backoff.js';
import { Doorbells, allocateDoorbells } from '../shared/doorbell.js';
import { ErrorCode, StatefnError, assert } from '../shared/errors.js';
import { type EngineLimits, workerRestartBackoffBaseMs, workerRestartBackoffMaxMs } from '../shared/limits.js';
import { InLink, OutLink } from '../shared/link.js';
import { allocateRing } from '../shared/ring_buffer.js';
import { StatsBlock } from '../shared/stats_block.js';

/** The shared memory every worker gets at spawn. */
export interface PoolMemory {
  rings: (SharedArrayBuffer | null)[][];
  doorbells: SharedArrayBuffer;
  stats: SharedArrayBuffer;
}

/** How the pool reports a worker's death. */
export interface WorkerWatch {
  /** The worker threw (an uncaught error) or failed. */
  onError(w: number, e: Error): void;
  /** The worker's thread exited. */
  onExit(w: number, code: number): void;
}

/** Start a worker from its entry point (from source under tsx, or compiled). */
function spawnWorker(init: WorkerInit, name: string, tsApp: boolean): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`../workers/worker_main.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  if (!fromSource && !tsApp) return new Worker(url, { workerData: init, name });
  // TypeScript (engine from source, or a user's .ts app): register tsx's loader in the worker
  // before importing the entry point.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const code =
    `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })` +
    `.catch((e) => { setImmediate(() => { throw e; }); });`;
  // From source, the application's `import ... from 'statefn'` must reach these same sources
  // (package.json's "statefn-source" export condition), not a second copy in dist/.
  const execArgv = fromSource ? [...process.execArgv, '--conditions=statefn-source'] : undefined;
  return new Worker(code, { eval: true, workerData: init, name, ...(execArgv ? { execArgv } : {}) });
}

export class WorkerPool {
  /** The main thread's index among the threads (after the workers). */
  readonly mainIdx: number;
  readonly doorbells: Doorbells;
  readonly stats: StatsBlock;
  /** outs[w]: main thread -> worker w. */
  readonly outs: OutLink[] = [];
  /** inputs[w]: worker w -> main thread. */
  readonly inputs: InLink[] = [];
  private readonly memory: PoolMemory;
  private readonly threads: Worker[] = [];

  /** @param onTooLarge a message the main thread cannot send: larger than a frame (its fields, its size) */
  constructor(
    readonly workers: number,
    limits: EngineLimits,
    codec: Packr,
    onTooLarge: (fields: unknown[], bytes: number) => void,
  ) {
    const threads = workers + 1;
    this.mainIdx = workers;
    this.doorbells = new Doorbells(allocateDoorbells(threads));
    this.stats = new StatsBlock(StatsBlock.allocate(threads), threads);
    const rings: (SharedArrayBuffer | null)[][] = [];
    for (let a = 0; a < threads; a++) {
      const row: (SharedArrayBuffer | null)[] = [];
      for (let b = 0; b < threads; b++) row.push(a === b ? null : allocateRing(limits.ringBytes));
      rings.push(row);
    }
    for (let w = 0; w < workers; w++) {
      this.outs.push(
        new OutLink(rings[this.mainIdx]![w]!, codec, this.doorbells, w, limits.frameBytesMax, limits.batchMessagesMax, onTooLarge),
      );
      this.inputs.push(new InLink(rings[w]![this.mainIdx]!, codec, w, `worker ${w}`));
    }
    this.memory = { rings, doorbells: this.doorbells.buffer, stats: this.stats.buffer };
  }

  /**
   * Spawn every worker with the init `initFor` makes and resolve once all are ready; a worker
   * that fails to start terminates them all (WORKER_DIED). `recoveredEpoch` is named in the
   * warning of a worker that rolled back writes after it.
   */
  async spawn(
    initFor: (w: number, memory: PoolMemory) => WorkerInit,
    tsApp: boolean,
    logger: Logger,
    recoveredEpoch: number,
    watch: WorkerWatch,
  ): Promise<void> {
    assert(this.threads.length === 0, 'a worker pool spawns its workers once');
    const ready: Promise<void>[] = [];
    for (let w = 0; w < this.workers; w++) {
      const worker = spawnWorker(initFor(w, this.memory), `statefn-worker-${w}`, tsApp);
      this.threads.push(worker);
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.once('message', (m: { type?: string; rolledBack?: { undone: number; epochs: number[] } }) => {
            if (m?.type !== 'ready') return reject(new Error(`worker ${w}: unexpected first message`));
            if (m.rolledBack !== undefined && m.rolledBack.undone > 0) {
              logger.warn(
                `worker ${w} rolled back ${m.rolledBack.undone} writes of epochs ${m.rolledBack.epochs.join(', ')} (after ` +
                  `the last complete checkpoint ${recoveredEpoch})`,
              );
            }
            resolve();
          });
          worker.once('error', reject);
        }),
      );
      worker.on('error', (e) => watch.onError(w, e));
      worker.on('exit', (code) => watch.onExit(w, code));
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await this.terminateAll();
      throw new StatefnError(ErrorCode.WORKER_DIED, `a worker failed to start: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Send a control frame to every worker. */
  control(op: number, ...args: unknown[]): void {
    for (const o of this.outs) o.control(op, ...args);
  }

  /** Push what the outboxes hold into the rings (as far as they take it); returns the bytes still parked. */
  flushOutboxes(): number {
    let parked = 0;
    for (const o of this.outs) {
      o.flush();
      parked += o.parkedBytes;
    }
    return parked;
  }

  /** Bytes parked in the main thread's outboxes (frames a full ring could not take yet). */
  parkedBytes(): number {
    let parked = 0;
    for (const o of this.outs) parked += o.parkedBytes;
    return parked;
  }

  hasParked(): boolean {
    return this.outs.some((o) => o.hasParked());
  }

  /** Terminate worker `w` (fault injection, or part of a teardown). */
  async terminate(w: number): Promise<void> {
    await this.threads[w]?.terminate();
  }

  terminateAll(): Promise<number[]> {
    return Promise.all(this.threads.map((t) => t.terminate()));
  }
}

/**
 * When a worker thread dies, the engine restores the last complete checkpoint in the same process
 * and goes on, at most `max` times (the count is never reset: a worker that keeps dying is a
 * bug to report, not to hide), each after a backoff delay; any other failure is final.
 */
export class WorkerRestartPolicy {
  private restarts = 0;

  constructor(
    /** The engine's limit workerRestartsMax. */
    readonly max: number,
    private readonly backoff: BackoffPolicy = { baseMs: workerRestartBackoffBaseMs, maxMs: workerRestartBackoffMaxMs },
  ) {}

  /** For failure `e`: the restart's number and the delay before it, or undefined to give up. */
  next(e: Error): { restart: number; delayMs: number } | undefined {
    if ((e as StatefnError).code !== ErrorCode.WORKER_DIED || this.restarts >= this.max) return undefined;
    const delayMs = backoffDelayMs(this.backoff, this.restarts);
    this.restarts++;
    return { restart: this.restarts, delayMs };
  }
}
