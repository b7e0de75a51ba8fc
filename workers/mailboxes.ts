/**
 * Per-address mailboxes: an address handles one message at a time. While an invocation of an
 * address is in progress (an async handler, a retry waiting for its delay, a remote batch), the
 * address is busy and later messages for it wait in its mailbox, in arrival order. This also
 * counts what bounds a worker: messages waiting in mailboxes and invocations in progress.
 */
import { assert } from '../shared/errors.js';
import type { Envelope as FrameEnvelope } from '../shared/frames.js';

/** A message waiting for a busy address, being invoked asynchronously, or being retried. */
export interface Envelope extends FrameEnvelope {
  /** 1 for the first attempt. */
  attempt: number;
}

/** The mailbox key of an address. */
export function addressKey(fnType: string, id: string): string {
  return fnType + '\0' + id;
}

export class Mailboxes {
  /** Busy addresses, with the messages waiting for them. */
  private readonly busy = new Map<string, Envelope[]>();
  /** Inputs of async invocations running now and of messages waiting to be retried, by address. */
  private readonly running = new Map<string, Envelope>();
  /** Remote batches in flight, by address (their messages are part of any checkpoint taken meanwhile). */
  private readonly remoteRunning = new Map<string, Envelope[]>();
  /** Addresses of remote functions whose mailbox reached the endpoint's maxNumBatchRequests. */
  private readonly remoteFull = new Set<string>();
  private waitingCount = 0;
  private activeCount = 0;

  /** Messages waiting in mailboxes. */
  get waiting(): number {
    return this.waitingCount;
  }

  /** Invocations in progress that the worker waits for (async handlers, retry delays, remote batches). */
  get active(): number {
    return this.activeCount;
  }

  /** Remote addresses whose mailbox holds a full batch already. */
  get remoteFullCount(): number {
    return this.remoteFull.size;
  }

  isBusy(key: string): boolean {
    return this.busy.has(key);
  }

  /**
   * True when any address is busy. The message path checks this before it builds an address key:
   * usually nothing is busy, and the key (a concatenated string, hashed on lookup) is not free.
   */
  get anyBusy(): boolean {
    return this.busy.size > 0;
  }

  /**
   * Queue `env` behind the invocation in progress at its address and return true, or return false
   * when the address is free (the caller invokes it now). `remoteBatchMax` is the endpoint's batch
   * bound for a remote function.
   */
  enqueueIfBusy(key: string, env: Envelope, remoteBatchMax: number | undefined): boolean {
    if (this.busy.size === 0) return false;
    const q = this.busy.get(key);
    if (q === undefined) return false;
    q.push(env);
    this.waitingCount++;
    if (remoteBatchMax !== undefined && q.length >= remoteBatchMax) this.remoteFull.add(key);
    return true;
  }

  /** An async invocation (or a retry delay) of `env` starts: its address is busy until it ends. */
  beginAsync(key: string, env: Envelope): void {
    if (!this.busy.has(key)) this.busy.set(key, []);
    this.activeCount++;
    this.running.set(key, env);
  }

  /** The async invocation of `env` settled (its address stays busy until `drain`). */
  endAsync(key: string, env: Envelope): void {
    assert(this.activeCount > 0, () => `mailboxes: end of an async invocation at ${key} that never began`);
    this.activeCount--;
    if (this.running.get(key) === env) this.running.delete(key);
  }

  /** A remote batch of `envs` starts: its address is busy until the batch and its successors end. */
  beginRemote(key: string, envs: Envelope[]): void {
    if (!this.busy.has(key)) this.busy.set(key, []);
    this.remoteRunning.set(key, envs);
    this.activeCount++;
  }

  endRemote(key: string): void {
    assert(this.activeCount > 0 && this.remoteRunning.has(key), () => `mailboxes: end of a remote batch at ${key} that never began`);
    this.activeCount--;
    this.remoteRunning.delete(key);
  }

  /** Put messages back at the head of their address's mailbox (stopping: they are recorded with it). */
  requeueFront(key: string, envs: readonly Envelope[]): void {
    const q = this.busy.get(key) ?? [];
    q.unshift(...envs);
    this.busy.set(key, q);
    this.waitingCount += envs.length;
  }

  /**
   * The next remote batch of a busy address (up to `max` waiting messages), or null when there is
   * none; an address with an empty mailbox is free again.
   */
  takeRemoteBatch(key: string, max: number): Envelope[] | null {
    const q = this.busy.get(key);
    if (q === undefined) return null;
    if (q.length === 0) {
      this.busy.delete(key);
      this.remoteFull.delete(key);
      return null;
    }
    const batch = q.length <= max ? q.splice(0) : q.splice(0, max);
    this.waitingCount -= batch.length;
    if (q.length < max) this.remoteFull.delete(key);
    return batch;
  }

  /**
   * The invocation in progress at `key` is over: `invoke` the waiting messages synchronously, in
   * order, until one goes async (which marks the address busy again, with the rest waiting behind
   * it); an address with an empty mailbox is free again.
   */
  drain(key: string, invoke: (env: Envelope) => void): void {
    const q = this.busy.get(key);
    if (q === undefined) return;
    while (q.length > 0) {
      const next = q.shift()!;
      this.waitingCount--;
      this.busy.delete(key);
      invoke(next);
      const q2 = this.busy.get(key);
      if (q2 !== undefined) {
        if (q2 !== q) for (const e of q) q2.push(e); // a mailbox may exceed the argument limit of push(...q)
        return;
      }
    }
    this.busy.delete(key);
  }

  /**
   * Append every message received and not handled yet to `out` (flat, MESSAGE_FIELDS each). Per
   * address, oldest first: the running (or retrying) input, the remote batch in flight, the mailbox.
   */
  appendUnhandled(out: unknown[]): void {
    for (const e of this.running.values()) out.push(e.targetType, e.targetId, e.callerType, e.callerId, e.typename, e.payload);
    for (const b of this.remoteRunning.values())
      for (const e of b) out.push(e.targetType, e.targetId, e.callerType, e.callerId, e.typename, e.payload);
    for (const q of this.busy.values())
      for (const e of q) out.push(e.targetType, e.targetId, e.callerType, e.callerId, e.typename, e.payload);
  }

  /** True while a remote batch is in flight. */
  hasRemoteInFlight(): boolean {
    return this.remoteRunning.size > 0;
  }
}
