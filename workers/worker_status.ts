/**
 * What the parts of a worker need to know about, and ask of, the worker's loop: whether it is
 * stopping, and how to schedule a step or fail the worker.
 */
export interface WorkerStatus {
  /** True once QUIESCE arrived: no handler is invoked any more; waiting messages are recorded. */
  readonly quiescing: boolean;
  /** True once the worker stopped (cleanly or by a fatal error). */
  readonly stopped: boolean;
  /** Schedule a loop step soon (after an async completion). */
  kick(): void;
  /** Fail the worker: the main thread's supervisor restores the last checkpoint. */
  fatal(e: unknown): void;
}
