/**
 * Delivering messages to their addresses, one at a time per address (mailboxes.ts): remote
 * function types go to the RemoteInvoker, embedded handlers run here, synchronously or, when
 * they return a promise, with their address busy until it settles. A failing invocation is
 * retried after a backoff (its address stays busy so later messages keep their order), then
 * dead-lettered.
 */
import type { WorkerInit } from '../config/worker_init.js';
import { Message } from '../api/message.js';
import type { Payload } from '../api/types.js';
import type { Clock } from '../shared/clock.js';
import { backoffDelayMs, type BackoffPolicy } from '../shared/backoff.js';
import { ErrorCode, StatefnError, isStatefnError } from '../shared/errors.js';
import { Stat, type StatsBlock } from '../shared/stats_block.js';
import type { AddressState } from './address_state.js';
import type { Effects } from './effects.js';
import type { FnRuntime, FunctionTable } from './function_table.js';
import { Invocation } from './invocation.js';
import { addressKey, type Envelope, type Mailboxes } from './mailboxes.js';
import type { RemoteInvoker } from './remote_invoker.js';
import type { Router } from './router.js';
import type { StateCache } from './state_cache.js';
import { handlerRetryMaxMs } from '../shared/limits.js';
import type { WorkerStatus } from './worker_status.js';

export class Dispatcher {
  private readonly attemptsMax: number;
  /**
   * Retry delays of a failing handler: exactly doubling from handlerRetryBackoffMs, without
   * jitter (a retry of one address's handler is no herd, and its timing is part of the
   * documented behaviour), capped so a large attempt count cannot overflow the timer.
   */
  private readonly retryPolicy: BackoffPolicy;

  constructor(
    init: WorkerInit,
    private readonly self: number,
    private readonly fns: FunctionTable,
    private readonly mailboxes: Mailboxes,
    private readonly cache: StateCache,
    private readonly effects: Effects,
    private readonly remote: RemoteInvoker,
    private readonly router: Router,
    private readonly stats: StatsBlock,
    private readonly clock: Clock,
    private readonly status: WorkerStatus,
  ) {
    const L = init.limits;
    this.attemptsMax = L.handlerAttemptsMax;
    this.retryPolicy = { baseMs: L.handlerRetryBackoffMs, maxMs: Math.max(L.handlerRetryBackoffMs, handlerRetryMaxMs), jitter: 0 };
  }

  /** Deliver one message: queue it behind its address's invocation in progress, or invoke it now. */
  deliver(
    targetType: string,
    targetId: string,
    callerType: string | null,
    callerId: string | null,
    typename: string,
    payload: Payload,
    attempt: number,
  ): void {
    const fn = this.fns.get(targetType);
    const env: Envelope = { targetType, targetId, callerType, callerId, typename, payload, attempt };
    if (fn === undefined) {
      this.router.deadLetter(env, new StatefnError(ErrorCode.UNKNOWN_FUNCTION_TYPE, `no function type '${targetType}' is registered`));
      return;
    }
    if (
      this.mailboxes.anyBusy &&
      this.mailboxes.enqueueIfBusy(addressKey(targetType, targetId), env, fn.remote?.endpoint.maxNumBatchRequests)
    ) {
      return;
    }
    if (fn.remote !== undefined) this.remote.start(fn, addressKey(targetType, targetId), [env]);
    else this.invoke(fn, env);
  }

  private invoke(fn: FnRuntime, env: Envelope): void {
    let st: AddressState;
    try {
      st = this.cache.load(fn, env.targetType, env.targetId);
    } catch (e) {
      this.router.deadLetter(env, e);
      return;
    }
    const now = this.clock.now();
    const inv = new Invocation(
      { typename: env.targetType, id: env.targetId },
      env.callerType === null ? undefined : { typename: env.callerType, id: env.callerId! },
      st,
      fn.specs,
      fn.Storage,
      this.clock,
      now,
    );
    let result: void | Promise<void>;
    try {
      result = fn.spec.handler(inv, new Message(env.typename, env.payload));
    } catch (e) {
      inv.closed = true;
      this.failed(fn, env, e);
      return;
    }
    if (result !== undefined && typeof result.then === 'function') {
      const key = addressKey(env.targetType, env.targetId);
      this.mailboxes.beginAsync(key, env);
      result.then(
        () => {
          this.mailboxes.endAsync(key, env);
          inv.closed = true;
          this.applyOrFail(fn, env, inv, now);
          this.status.kick();
        },
        (e: unknown) => {
          this.mailboxes.endAsync(key, env);
          inv.closed = true;
          this.failed(fn, env, e);
          this.status.kick();
        },
      );
      return;
    }
    inv.closed = true;
    this.applyOrFail(fn, env, inv, now);
  }

  private applyOrFail(fn: FnRuntime, env: Envelope, inv: Invocation, now: number): void {
    try {
      this.effects.apply(fn, inv, now);
    } catch (e) {
      this.failed(fn, env, e);
      return;
    }
    this.stats.add(this.self, Stat.processed, 1);
    this.release(fn, env);
  }

  /** The invocation for env's address is over: run the next waiting message, if any. */
  private release(fn: FnRuntime, env: Envelope): void {
    if (fn.remote !== undefined) {
      this.remote.next(fn, addressKey(env.targetType, env.targetId));
      return;
    }
    if (!this.mailboxes.anyBusy) return;
    const key = addressKey(env.targetType, env.targetId);
    if (!this.mailboxes.isBusy(key)) return;
    if (this.status.quiescing) return; // keep the mailbox; it is saved at shutdown
    this.mailboxes.drain(key, (next) => this.invoke(fn, next));
  }

  private failed(fn: FnRuntime, env: Envelope, e: unknown): void {
    this.stats.add(this.self, Stat.failures, 1);
    if (env.attempt < this.attemptsMax && !(isStatefnError(e) && !e.retriable && e.code !== ErrorCode.HANDLER_FAILED)) {
      // Retry later; the address stays busy so later messages keep their order behind it.
      const key = addressKey(env.targetType, env.targetId);
      const delay = backoffDelayMs(this.retryPolicy, env.attempt - 1);
      this.mailboxes.beginAsync(key, env);
      setTimeout(() => {
        this.mailboxes.endAsync(key, env);
        if (this.status.stopped) return;
        if (this.status.quiescing) {
          // Not retried now: it waits at the head of its mailbox and is recorded at shutdown.
          this.mailboxes.requeueFront(key, [{ ...env, attempt: env.attempt + 1 }]);
          this.status.kick();
          return;
        }
        this.invoke(fn, { ...env, attempt: env.attempt + 1 });
        this.status.kick();
      }, delay);
      return;
    }
    this.router.deadLetter(env, e);
    this.release(fn, env);
  }
}
