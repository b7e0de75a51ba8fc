/**
 * The connector interfaces. Ingresses and egresses run on the main thread only; a module that
 * registers them is imported by every thread, so connector constructors must not do I/O: all I/O
 * starts in `start()`.
 */
import type { Address } from './address.js';
import type { Message } from './message.js';
import type { EngineLimits } from '../shared/limits.js';

/** A message routed to an address. */
export interface RoutedMessage {
  readonly to: Address;
  readonly message: Message;
}

/** Turns an ingress record into zero or more routed messages. Throwing rejects the record. */
export type Router<R> = (record: R) => RoutedMessage | readonly RoutedMessage[] | undefined;

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** What the engine gives an ingress when it starts. */
export interface IngressContext<R> {
  /**
   * Hand records to the engine (they are routed by the ingress's router, or must be
   * `RoutedMessage`s when it has none). Always accepts the records; returns false when the
   * engine is back-pressured, and the ingress should then wait for `whenWritable()` before
   * submitting more.
   */
  submit(records: readonly R[]): boolean;
  /** Resolves when the engine can take more records (immediately if it can now). */
  whenWritable(): Promise<void>;
  /** Aborted when the engine stops. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Report a record the ingress could not decode: it goes to the dead-letter egress, counted. */
  reject(record: unknown, reason: Error): void;
  /** True if messages to this function type can be delivered (a registered or remote type). */
  hasFunction(typename: string): boolean;
  /**
   * Resolves once everything submitted so far is part of a complete checkpoint (it survives any
   * crash); rejects if the engine fails first. For ingresses that acknowledge to their clients.
   * `soon`: a client is waiting, so start a checkpoint within `limits.durableWaitMs` rather than
   * at the next interval (group commit: every waiter of that window shares one checkpoint).
   */
  whenDurable(opts?: { soon?: boolean }): Promise<void>;
  /**
   * The engine's limits (shared/limits.ts), so an ingress can refuse at its edge what the engine
   * could not carry: a record whose message exceeds `frameBytesMax` would be dead-lettered after
   * it was taken. The engine always sets it; a context made by hand (a test) may not.
   */
  readonly limits?: EngineLimits;
}

export interface IngressConnector<R = RoutedMessage> {
  /** The ingress id, `namespace/name`. */
  readonly id: string;
  start(ctx: IngressContext<R>): void | Promise<void>;
  /** Stop producing; resolve once no more `submit` calls will come. */
  stop(): void | Promise<void>;
  /**
   * A replayable ingress reports how far it got (JSON-serializable), so a restart continues
   * after the last record submitted before a clean stop (and, with checkpoints, before the last
   * complete checkpoint). Taken at each checkpoint's barrier, so it may also carry what an ingress
   * must keep exactly with the checkpoint (the HTTP ingress keeps its idempotency keys here).
   */
  position?(): unknown;
  /** Continue from a position `position()` returned; called before `start`. */
  seek?(position: unknown): void;
}

/** A message a function sent to an egress. */
export interface EgressRecord {
  readonly egressId: string;
  readonly message: Message;
}

export interface EgressContext {
  readonly logger: Logger;
  readonly signal: AbortSignal;
  /**
   * Identifies the history of checkpoints the epochs of `commitEpoch` belong to: the same across
   * restarts of one state directory, new when the state is created or replaced (then epoch
   * numbers start over or go back). A sink that stores its committed epoch outside the state
   * directory must store this with it and treat another lineage's epoch as nothing committed.
   */
  readonly lineage: string;
  /** Hand a record the sink cannot write (wrong type, malformed) to the dead-letter egress, counted. */
  deadLetter(record: EgressRecord, reason: Error): void;
}

export interface EgressConnector {
  /** The egress id, `namespace/name`, that functions pass to `ctx.egress`. */
  readonly id: string;
  start?(ctx: EgressContext): void | Promise<void>;
  /**
   * With checkpoints on, the engine holds egress records until their checkpoint completes. A sink
   * that sets this gets them as they are produced instead (lower latency, at-least-once: a record
   * may be written again after a crash), and the checkpoint waits until they are written.
   */
  readonly deliverBeforeCheckpoint?: boolean;
  /** Take a batch of records, in order. A rejection is retried with backoff. */
  write(records: readonly EgressRecord[]): void | Promise<void>;
  /** Make everything written so far durable/visible. */
  flush?(): void | Promise<void>;
  /**
   * Exactly-once sinks: make everything written so far durable and record that checkpoint
   * `epoch`'s records are all in. After a crash the engine re-writes the records of complete
   * checkpoints after `committedEpoch()` (the sink dropped any partly written epoch at start).
   */
  commitEpoch?(epoch: number): Promise<void>;
  /** The last epoch `commitEpoch` recorded (read at start); see commitEpoch. */
  committedEpoch?(): number;
  /** Drop what was written after the last committed epoch (called at recovery, before re-writing). */
  discardUncommitted?(): Promise<void>;
  stop?(): void | Promise<void>;
}
