/**
 * Where a worker's output goes: its links to the other threads, local delivery into its own
 * pending queue for key groups it owns, and dead letters (records of messages that failed for
 * good, sent to the main thread).
 */
import type { Packr } from 'msgpackr';
import type { Payload } from '../api/types.js';
import type { Clock } from '../shared/clock.js';
import type { Doorbells } from '../shared/doorbell.js';
import { ErrorCode, StatefnError, assert, errorInfo } from '../shared/errors.js';
import { ControlOp, FrameKind, MESSAGE_FIELDS } from '../shared/frames.js';
import { keyGroupOf } from '../shared/key_group.js';
import { OutLink } from '../shared/link.js';
import { Stat, type StatsBlock } from '../shared/stats_block.js';
import type { WorkerInit } from '../config/worker_init.js';
import type { Envelope } from './mailboxes.js';
import type { PendingQueue } from './pending_queue.js';

export class Router {
  private readonly self: number;
  private readonly main: number;
  /** Out links by destination thread (null for this worker itself). */
  private readonly outs: (OutLink | null)[] = [];
  private readonly frameBytesMax: number;
  private readonly keyGroups: number;

  constructor(
    init: WorkerInit,
    private readonly codec: Packr,
    doorbells: Doorbells,
    private readonly stats: StatsBlock,
    private readonly owner: Uint16Array,
    private readonly pending: PendingQueue,
    private readonly clock: Clock,
  ) {
    this.self = init.index;
    this.main = init.workers;
    this.frameBytesMax = init.limits.frameBytesMax;
    this.keyGroups = init.keyGroups;
    for (let t = 0; t <= init.workers; t++) {
      if (t === this.self) {
        this.outs.push(null);
        continue;
      }
      const outBuf = init.rings[this.self]![t]!;
      this.outs.push(
        new OutLink(outBuf, codec, doorbells, t, init.limits.frameBytesMax, init.limits.batchMessagesMax, (f, n) => this.oversize(f, n)),
      );
    }
  }

  /** The link to the main thread (egress, dead letters, control replies). */
  get toMain(): OutLink {
    return this.outs[this.main]!;
  }

  /** Send a message to its owner: locally into the pending queue, or into the owner's ring. */
  route(
    targetType: string,
    targetId: string,
    callerType: string | null,
    callerId: string | null,
    typename: string,
    payload: Payload,
  ): void {
    const kg = keyGroupOf(targetId, this.keyGroups);
    const w = this.owner[kg]!;
    this.stats.add(this.self, Stat.sent, 1);
    if (w === this.self) {
      // The frame limit applies to local messages too, so whether a message is accepted never
      // depends on where its target's key group lives (which changes with rescaling). Only big
      // payloads pay for measuring (a string's UTF-8 may take up to 3 bytes per unit).
      if (typeof payload !== 'number' && typeof payload !== 'boolean' && payload.length > this.frameBytesMax >> 2) {
        const bytes = this.codec.pack([FrameKind.MESSAGES, targetType, targetId, callerType, callerId, typename, payload]).length;
        if (bytes > this.frameBytesMax) {
          this.oversize([targetType, targetId, callerType, callerId, typename, payload], bytes);
          return;
        }
      }
      this.pending.push(targetType, targetId, callerType, callerId, typename, payload);
      return;
    }
    this.outs[w]!.message(targetType, targetId, callerType, callerId, typename, payload);
  }

  /**
   * Push what is queued for other workers now, mid-batch, so they start on it while this worker
   * goes on (pipelining): otherwise a batch of chained messages moves between two workers as one
   * frame and each waits while the other works.
   */
  pushToPeers(): void {
    for (const o of this.outs) {
      if (o !== null && o.dest !== this.main && o.queuedMessages() > 0) o.flush();
    }
  }

  /** Push everything queued on every link into the rings; returns the bytes parked for full rings. */
  pushAll(): number {
    let parked = 0;
    for (const o of this.outs) {
      if (o === null) continue;
      o.flush();
      parked += o.parkedBytes;
    }
    return parked;
  }

  /**
   * Checkpoint `epoch` starts here: a barrier to every other worker behind everything sent to it,
   * and an epoch mark to the main thread (where this epoch's egress ends).
   */
  forwardBarrier(epoch: number): void {
    assert(Number.isInteger(epoch) && epoch > 0, () => `worker ${this.self}: barrier for epoch ${epoch}`);
    for (const o of this.outs) {
      if (o === null) continue;
      o.control(o.dest === this.main ? ControlOp.EPOCH_MARK : ControlOp.BARRIER, epoch);
      o.flush();
    }
  }

  /** Stopping: a quiesce mark to every other worker, behind everything sent to it. */
  sendQuiesceMarks(): void {
    for (const o of this.outs) {
      if (o !== null && o.dest !== this.main) {
        o.control(ControlOp.QUIESCE_MARK);
        o.flush();
      }
    }
  }

  /** Send a control frame to the main thread now. */
  controlToMain(op: number, ...args: unknown[]): void {
    const out = this.toMain;
    out.control(op, ...args);
    out.flush();
  }

  /**
   * Send a record of `env`, which failed for good with `e`, to the dead-letter egress. `attempts`:
   * how many times delivery was tried (a remote call gives its HTTP attempts); default the
   * envelope's handler attempts.
   */
  deadLetter(env: Envelope, e: unknown, attempts: number = env.attempt): void {
    const info = errorInfo(e);
    this.stats.add(this.self, Stat.dead, 1);
    const p = env.payload;
    const rec: Record<string, unknown> = {
      code: info.code,
      error: info.message,
      target: { typename: env.targetType, id: env.targetId },
      caller: env.callerType === null ? null : { typename: env.callerType, id: env.callerId },
      typename: env.typename,
      value: p instanceof Uint8Array ? { base64: Buffer.from(p).toString('base64') } : p,
      attempts,
      worker: this.self,
      at: new Date(this.clock.now()).toISOString(),
    };
    // The record travels to the main thread in one frame, so it must fit in frameBytesMax (the
    // message may be the oversized one, or just big once in base64, or the error text huge):
    // drop the value (keeping its size), then shorten the error, rather than fail the worker.
    const fits = (): boolean => this.codec.pack([FrameKind.DEAD, rec]).length <= this.frameBytesMax;
    if (!fits()) {
      rec.value = { omitted: true, bytes: p instanceof Uint8Array ? p.length : Buffer.byteLength(String(p)) };
      if (!fits()) rec.error = `${info.message.slice(0, this.frameBytesMax >> 3)}... (truncated)`;
    }
    this.toMain.dead([rec]);
  }

  /** A message (or egress record) that alone exceeds the frame limit: dead-letter it. */
  private oversize(fields: unknown[], bytes: number): void {
    const [targetType, targetId, callerType, callerId, typename, payload] = fields as [
      string,
      string,
      string | null,
      string | null,
      string,
      Payload,
    ];
    if (typeof targetType === 'string' && typeof targetId === 'string' && fields.length === MESSAGE_FIELDS) {
      this.deadLetter(
        { targetType, targetId, callerType, callerId, typename, payload, attempt: 1 },
        new StatefnError(ErrorCode.PAYLOAD_TOO_LARGE, `message of ${bytes} bytes exceeds frameBytesMax ${this.frameBytesMax}`),
      );
    } else {
      // An egress record too large for a frame.
      this.deadLetter(
        {
          targetType: String(fields[0]),
          targetId: '(egress)',
          callerType: null,
          callerId: null,
          typename: String(fields[1]),
          payload: new Uint8Array(0),
          attempt: 1,
        },
        new StatefnError(ErrorCode.PAYLOAD_TOO_LARGE, `egress record of ${bytes} bytes exceeds frameBytesMax ${this.frameBytesMax}`),
      );
    }
  }
}
