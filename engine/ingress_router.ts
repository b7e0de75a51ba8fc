/**
 * Ingress on the main thread: the IngressContext each ingress connector gets, routing of what it
 * submits (through the ingress's router, if any) to the worker that owns the target's key group,
 * and back-pressure: `writable()` says whether the engine takes more now, and `whenWritable()`
 * waiters are released by the main loop once it does.
 */
import type { App } from '../api/app.js';
import { checkAddress } from '../api/address.js';
import type { IngressContext, Logger, RoutedMessage } from '../api/connector_api.js';
import type { Message } from '../api/message.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { keyGroupOf, ownerTable } from '../shared/key_group.js';
import { type EngineLimits, checkpointLagIntervalsMax, egressHeldPerPendingMessage } from '../shared/limits.js';
import { Stat } from '../shared/stats_block.js';
import type { DeadLetters } from './dead_letters.js';
import type { WorkerPool } from './worker_pool.js';
import { checkpointIntervalMs } from './checkpoint_coordinator.js';

type Router = ((r: unknown) => RoutedMessage | readonly RoutedMessage[] | undefined) | undefined;

/** What back-pressure looks at besides the rings. */
export interface PressureSources {
  /** The run is running (ingress is never writable otherwise). */
  running(): boolean;
  /** How long the checkpoint under way has taken so far (0 when none). */
  checkpointPendingMs(): number;
  /** Egress records queued for delivery. */
  egressQueued(): number;
  /** Egress records held for their checkpoint. */
  egressHeld(): number;
}

export class IngressRouter {
  /** Records routed to workers so far. */
  ingested = 0;
  /** Ingresses may submit: from start until their stop() resolved (or the run failed). */
  private open = true;
  private writableWaiters: (() => void)[] = [];
  private readonly owner: Uint16Array;

  constructor(
    private readonly app: App,
    private readonly keyGroups: number,
    private readonly limits: EngineLimits,
    private readonly pool: WorkerPool,
    private readonly deadLetters: DeadLetters,
    private readonly pressure: PressureSources,
    private readonly logger: Logger,
    private readonly signal: AbortSignal,
    /** The run's state, named in the error of a submit after stop. */
    private readonly stateName: () => string,
    private readonly whenDurable: (opts?: { soon?: boolean }) => Promise<void>,
    private readonly schedulePump: () => void,
  ) {
    this.owner = ownerTable(pool.workers, keyGroups);
  }

  /** No more submits (the ingresses stopped, or the run failed). */
  close(): void {
    this.open = false;
  }

  /** The context ingress `id` starts with. */
  context(id: string, router: Router): IngressContext<unknown> {
    return {
      submit: (records) => {
        if (!this.open) {
          throw new StatefnError(
            ErrorCode.ENGINE_STOPPED,
            `ingress ${id}: submit after the ingress was stopped (engine ${this.stateName()}); stop producing when stop() ` +
              `is called or ctx.signal is aborted`,
          );
        }
        for (const r of records) {
          if (router === undefined) {
            this.route(id, r as RoutedMessage, r);
            continue;
          }
          let routed: RoutedMessage | readonly RoutedMessage[] | undefined;
          try {
            routed = router(r);
          } catch (e) {
            this.deadLetters.rejectRecord(id, r, e);
            continue;
          }
          if (routed === undefined) continue;
          if (Array.isArray(routed)) for (const m of routed as RoutedMessage[]) this.route(id, m, r);
          else this.route(id, routed as RoutedMessage, r);
        }
        this.pool.flushOutboxes();
        this.pool.stats.set(this.pool.mainIdx, Stat.ingested, this.ingested);
        return this.writable();
      },
      whenWritable: () => this.whenWritable(),
      signal: this.signal,
      logger: this.logger,
      reject: (record, reason) => this.deadLetters.rejectRecord(id, record, reason),
      hasFunction: (typename) => this.app.hasFunction(typename),
      whenDurable: (opts) => this.whenDurable(opts),
      limits: this.limits,
    };
  }

  private route(ingressId: string, m: RoutedMessage, record: unknown): void {
    const to = m?.to;
    // Duck-typed, not instanceof: an app may import statefn's classes from another copy of the
    // package (e.g. its TypeScript sources while the engine runs compiled).
    const msg = m?.message as Message | undefined;
    if (typeof to?.typename !== 'string' || typeof to.id !== 'string' || typeof msg?.typename !== 'string' || msg.payload === undefined) {
      try {
        checkAddress(to, `ingress ${ingressId}: routed message .to`);
        throw new StatefnError(
          ErrorCode.INGRESS_RECORD_INVALID,
          `ingress ${ingressId}: routed message must carry a Message (Message.of(type, value))`,
        );
      } catch (e) {
        this.deadLetters.rejectRecord(ingressId, record, e);
        return;
      }
    }
    if (!this.app.hasFunction(to.typename)) {
      this.deadLetters.rejectRecord(
        ingressId,
        record,
        new StatefnError(ErrorCode.UNKNOWN_FUNCTION_TYPE, `ingress ${ingressId}: no function type '${to.typename}' is registered`),
      );
      return;
    }
    const w = this.owner[keyGroupOf(to.id, this.keyGroups)]!;
    this.pool.outs[w]!.message(to.typename, to.id, null, null, m.message.typename, m.message.payload);
    this.ingested++;
  }

  /** Ingress positions now, by ingress id (what a checkpoint started now covers). */
  positions(): Record<string, unknown> {
    const positions: Record<string, unknown> = {};
    for (const r of this.app.ingresses) if (r.connector.position !== undefined) positions[r.connector.id] = r.connector.position();
    return positions;
  }

  /** True when the engine can take more ingress now. */
  writable(): boolean {
    if (!this.pressure.running()) return false;
    // Bound the work not covered by a checkpoint: when one has been under way for too long (the
    // snapshot store is down or slow), pause ingress until it completes.
    if (this.pressure.checkpointPendingMs() > checkpointLagIntervalsMax * checkpointIntervalMs(this.limits)) return false;
    if (this.pool.stats.anyPressure()) return false;
    // Ingress parked behind a full ring only adds queueing delay (the ring already holds tens of
    // thousands of messages of work per worker): bound it by one ring's worth.
    const L = this.limits;
    if (this.pool.parkedBytes() > Math.min(L.outboxBytesHighWater, L.ringBytes)) return false;
    return (
      this.pressure.egressQueued() <= L.pendingMessagesMax &&
      this.pressure.egressHeld() <= egressHeldPerPendingMessage * L.pendingMessagesMax
    );
  }

  whenWritable(): Promise<void> {
    if (this.writable()) return Promise.resolve();
    return new Promise((resolve) => {
      this.writableWaiters.push(resolve);
      this.schedulePump();
    });
  }

  /** True while an ingress waits for the engine to become writable (the main loop then polls soon). */
  waiting(): boolean {
    return this.writableWaiters.length > 0;
  }

  /** Release the waiters once writable (or `all`: on stop, whatever the pressure). */
  releaseWaiters(all = false): void {
    if (this.writableWaiters.length === 0 || (!all && !this.writable())) return;
    const w = this.writableWaiters;
    this.writableWaiters = [];
    for (const f of w) f();
  }
}
