/**
 * Calls of remote functions (StateFun's request-reply protocol) for this worker's addresses:
 * one batch in flight per address, the messages that wait meanwhile form the next batch (up to
 * the endpoint's maxNumBatchRequests); missing state specs are negotiated, then the reply's
 * effects are applied like an embedded invocation's.
 */
import type { RemoteEndpoint } from '../api/endpoint.js';
import type { Clock } from '../shared/clock.js';
import { ErrorCode, StatefnError, errorInfo, isStatefnError } from '../shared/errors.js';
import { REMOTE_BATCH_BUCKETS, Stat, type StatsBlock } from '../shared/stats_block.js';
import { RemoteHttpClient } from '../remote/http_client.js';
import { decodeFromFunction, encodeToFunction } from '../remote/protocol.js';
import { readValue } from './address_state.js';
import type { Effects } from './effects.js';
import type { FnRuntime } from './function_table.js';
import { Invocation } from './invocation.js';
import type { Envelope, Mailboxes } from './mailboxes.js';
import { buildRequest, registerSpecs, stageResponse, type RemoteValues } from './remote_batch.js';
import type { Router } from './router.js';
import type { StateCache } from './state_cache.js';
import { remoteNegotiationRoundsMax } from '../shared/limits.js';
import type { WorkerStatus } from './worker_status.js';

export class RemoteInvoker {
  private readonly clients = new Map<RemoteEndpoint, RemoteHttpClient>();
  /** Aborts remote calls in flight when the worker stops (their batches are saved and sent again). */
  private readonly abortController = new AbortController();

  constructor(
    private readonly self: number,
    private readonly mailboxes: Mailboxes,
    private readonly cache: StateCache,
    private readonly effects: Effects,
    private readonly router: Router,
    private readonly stats: StatsBlock,
    private readonly clock: Clock,
    private readonly status: WorkerStatus,
  ) {}

  /** Stopping: abort remote calls in flight; their batches are recorded with the mailboxes. */
  abortInFlight(): void {
    if (this.mailboxes.hasRemoteInFlight()) this.abortController.abort();
  }

  /** Send `envs` (this address's waiting messages, in order) to the function as one batch. */
  start(fn: FnRuntime, key: string, envs: Envelope[]): void {
    this.mailboxes.beginRemote(key, envs);
    // HTTP attempts of this batch over every negotiation round: what its dead letters report.
    const tally = { attempts: 0 };
    this.run(fn, envs, tally).then(
      () => {
        this.mailboxes.endRemote(key);
        this.stats.add(this.self, Stat.processed, envs.length);
        this.next(fn, key);
        this.status.kick();
      },
      (e: unknown) => {
        this.mailboxes.endRemote(key);
        this.failed(fn, key, envs, e, tally.attempts);
        this.status.kick();
      },
    );
  }

  /** The batch is done: send what waited meanwhile as the next batch (up to maxNumBatchRequests). */
  next(fn: FnRuntime, key: string): void {
    if (!this.mailboxes.isBusy(key)) return;
    if (this.status.quiescing || this.status.stopped) return; // keep the mailbox; it is saved at shutdown
    const batch = this.mailboxes.takeRemoteBatch(key, fn.remote!.endpoint.maxNumBatchRequests);
    if (batch !== null) this.start(fn, key, batch);
  }

  private client(e: RemoteEndpoint): RemoteHttpClient {
    let c = this.clients.get(e);
    if (c === undefined) this.clients.set(e, (c = new RemoteHttpClient(e, this.abortController.signal)));
    return c;
  }

  /** Call the function (negotiating missing state first), then apply the reply like an embedded invocation. */
  private async run(fn: FnRuntime, envs: Envelope[], tally: { attempts: number }): Promise<void> {
    const remote = fn.remote!;
    const first = envs[0]!;
    const st = this.cache.load(fn, first.targetType, first.targetId);
    const client = this.client(remote.endpoint);
    for (let round = 1; round <= remoteNegotiationRoundsMax; round++) {
      const values = readValue(st, fn.specs, 0) as RemoteValues | undefined;
      const sent = new Set(remote.specs.keys());
      const body = encodeToFunction(buildRequest(remote, first.targetId, values, envs, this.clock.now()));
      this.stats.add(this.self, Stat.remoteCalls, 1);
      this.stats.add(this.self, Stat.remoteBatched, envs.length);
      this.stats.add(this.self, Stat.remoteBatchHist + Math.min(REMOTE_BATCH_BUCKETS - 1, 31 - Math.clz32(envs.length)), 1);
      const retriesBefore = client.stats.retries;
      let reply;
      try {
        reply = decodeFromFunction(await client.call(remote.url, body, tally));
      } finally {
        this.stats.add(this.self, Stat.remoteRetries, client.stats.retries - retriesBefore);
      }
      if (reply.kind === 'incomplete') {
        registerSpecs(remote, reply.missingValues, sent);
        continue;
      }
      if (this.status.stopped) return;
      const now = this.clock.now();
      const inv = new Invocation({ typename: first.targetType, id: first.targetId }, undefined, st, fn.specs, fn.Storage, this.clock, now);
      if (reply.kind === 'result') stageResponse(remote, inv.self, values, reply.result, inv, now);
      inv.closed = true;
      this.effects.apply(fn, inv, now);
      return;
    }
    throw new StatefnError(
      ErrorCode.REMOTE_PROTOCOL,
      `${first.targetType}/${first.targetId}: the function still answered "incomplete invocation context" after ` +
        `${remoteNegotiationRoundsMax} rounds`,
    );
  }

  /**
   * A batch failed for good (its call after retries, a malformed reply, a reply whose effects are
   * invalid). The endpoint's policy decides: dead-letter its messages and go on, or fail the
   * worker so the engine restores the last checkpoint and sends the batch again. `httpAttempts`:
   * the HTTP requests made for the batch, which its dead letters report as their attempts.
   */
  private failed(fn: FnRuntime, key: string, envs: Envelope[], e: unknown, httpAttempts: number): void {
    if (this.status.stopped) return;
    if (this.status.quiescing && this.abortController.signal.aborted) {
      // Stopping: the call was aborted; the batch waits at the head of its mailbox and is saved.
      this.mailboxes.requeueFront(key, envs);
      return;
    }
    this.stats.add(this.self, Stat.remoteFailures, 1);
    const endpoint = fn.remote!.endpoint;
    const info = errorInfo(e);
    const err = new StatefnError(
      isStatefnError(e) ? e.code : ErrorCode.REMOTE_FAILED,
      `remote function ${envs[0]!.targetType}/${envs[0]!.targetId} (endpoint ${fn.remote!.url.text}, ${endpoint.source}): ` +
        `batch of ${envs.length} message(s) failed: ${info.message}`,
      { cause: e },
    );
    if (endpoint.onFailure === 'restore') {
      this.status.fatal(err);
      return;
    }
    // Deliveries before this one (none unless a handler-level retry applied) plus this batch's requests.
    for (const env of envs) this.router.deadLetter(env, err, env.attempt - 1 + httpAttempts);
    this.next(fn, key);
  }
}
