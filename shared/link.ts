/**
 * Links: one thread's end of the rings it writes to and reads from.
 *
 * An `OutLink` batches messages for one destination thread into MESSAGES frames, pushes frames
 * into the ring, and parks the frames a full ring could not take in a FIFO outbox (bounded in
 * bytes by back-pressure, see `parkedBytes`). It never blocks: messaging is cyclic, and a thread
 * blocking on a full ring while the other end blocks on its own full ring would deadlock. Frames
 * keep their order: once anything is parked, later frames are parked behind it.
 */
import type { Packr } from 'msgpackr';
import type { Doorbells } from './doorbell.js';
import { ErrorCode, StatefnError, assert } from './errors.js';
import { ControlOp, FrameKind, MESSAGE_FIELDS, EGRESS_FIELDS, compressMessages, decodeFrame, expandMessages } from './frames.js';
import { RingConsumer, RingProducer } from './ring_buffer.js';
import type { Payload } from './payload.js';

/** Called with a message that alone exceeds the frame limit (it cannot be sent). */
export type OversizeHandler = (fields: unknown[], bytes: number) => void;

export class OutLink {
  private readonly ring: RingProducer;
  private msgs: unknown[] = [FrameKind.MESSAGES];
  private egress: unknown[] = [FrameKind.EGRESS];
  private readonly parked: Uint8Array[] = [];
  private parkedHead = 0;
  /** Bytes in frames waiting for room in the ring. */
  parkedBytes = 0;
  /** Frames pushed into the ring since the last `flush` (to decide whether to ring the bell). */
  private pushedSinceBell = 0;
  messagesSent = 0;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly codec: Packr,
    private readonly doorbells: Doorbells,
    /** Thread index of the consumer (its doorbell). */
    readonly dest: number,
    private readonly frameBytesMax: number,
    private readonly batchMessagesMax: number,
    private readonly onOversize: OversizeHandler,
  ) {
    this.ring = new RingProducer(buffer);
    assert(frameBytesMax <= this.ring.maxPayload, 'frameBytesMax must fit in half a ring');
  }

  /** Queue one message. It goes out at the next `flush` (or sooner when a batch fills). */
  message(
    targetType: string,
    targetId: string,
    callerType: string | null,
    callerId: string | null,
    typename: string,
    payload: Payload,
  ): void {
    const m = this.msgs;
    m.push(targetType, targetId, callerType, callerId, typename, payload);
    this.messagesSent++;
    if (m.length >= 1 + this.batchMessagesMax * MESSAGE_FIELDS) this.sealMessages();
  }

  /** Queue one egress record (worker -> main only). */
  egressRecord(egressId: string, typename: string, payload: Payload): void {
    const e = this.egress;
    e.push(egressId, typename, payload);
    if (e.length >= 1 + this.batchMessagesMax * EGRESS_FIELDS) this.sealEgress();
  }

  /** Send a frame that must stay ordered after everything queued before it. */
  control(op: number, ...args: unknown[]): void {
    this.sealMessages();
    this.sealEgress();
    this.pushFrame([FrameKind.CONTROL, op, ...args], 0);
  }

  /** Send dead letters (JSON-able objects), ordered after everything queued before. */
  dead(records: unknown[]): void {
    this.sealMessages();
    this.sealEgress();
    this.pushFrame([FrameKind.DEAD, ...records], 0);
  }

  /** Seal pending batches, move parked frames into the ring, and wake the consumer if needed. */
  flush(): void {
    this.sealMessages();
    this.sealEgress();
    this.unpark();
    if (this.pushedSinceBell > 0) {
      this.pushedSinceBell = 0;
      this.doorbells.ring(this.dest);
    }
  }

  /** Messages queued for the next MESSAGES frame. */
  queuedMessages(): number {
    return (this.msgs.length - 1) / MESSAGE_FIELDS;
  }

  /** True when nothing is queued, parked, or unread in the ring. */
  isIdle(): boolean {
    return this.msgs.length === 1 && this.egress.length === 1 && this.parkedBytes === 0 && this.ring.isEmpty();
  }

  hasParked(): boolean {
    return this.parkedBytes > 0;
  }

  private sealMessages(): void {
    if (this.msgs.length === 1) return;
    const frame = this.msgs;
    this.msgs = [FrameKind.MESSAGES];
    this.pushFrame(compressMessages(frame), MESSAGE_FIELDS);
  }

  private sealEgress(): void {
    if (this.egress.length === 1) return;
    const frame = this.egress;
    this.egress = [FrameKind.EGRESS];
    this.pushFrame(frame, EGRESS_FIELDS);
  }

  /**
   * Encode and push a frame; park a copy when the ring is full. A batch over the frame limit is
   * split in halves; a single record over it goes to `onOversize`.
   */
  private pushFrame(frame: unknown[], fields: number): void {
    const bytes = this.codec.pack(frame);
    if (bytes.length > this.frameBytesMax) {
      const records = fields === 0 ? 0 : (frame.length - 1) / fields;
      if (records > 1) {
        // The second half must not refer back to messages of the first: expand, split, compress.
        if (frame[0] === FrameKind.MESSAGES) expandMessages(frame, 'self');
        const half = Math.ceil(records / 2) * fields + 1;
        const first = frame.slice(0, half);
        const second = [frame[0], ...frame.slice(half)];
        this.pushFrame(frame[0] === FrameKind.MESSAGES ? compressMessages(first) : first, fields);
        this.pushFrame(frame[0] === FrameKind.MESSAGES ? compressMessages(second) : second, fields);
        return;
      }
      if (records === 1) {
        this.onOversize(frame.slice(1), bytes.length);
        return;
      }
      throw new StatefnError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        `control frame of ${bytes.length} bytes exceeds frameBytesMax ${this.frameBytesMax}`,
      );
    }
    if (this.parkedBytes === 0 && this.ring.tryPush(bytes)) {
      this.pushedSinceBell++;
      return;
    }
    // Packr reuses its buffer: keep a copy.
    this.parked.push(Uint8Array.prototype.slice.call(bytes));
    this.parkedBytes += bytes.length;
  }

  private unpark(): void {
    while (this.parkedHead < this.parked.length) {
      const f = this.parked[this.parkedHead]!;
      if (!this.ring.tryPush(f)) break;
      this.pushedSinceBell++;
      this.parkedBytes -= f.length;
      this.parked[this.parkedHead++] = EMPTY;
    }
    if (this.parkedHead > 1024 && this.parkedHead * 2 > this.parked.length) {
      this.parked.splice(0, this.parkedHead);
      this.parkedHead = 0;
    }
    if (this.parkedHead === this.parked.length) {
      this.parked.length = 0;
      this.parkedHead = 0;
    }
  }
}

const EMPTY = new Uint8Array(0);

/** Reads and decodes frames from one ring. */
export class InLink {
  private readonly ring: RingConsumer;
  private frames: unknown[][] = [];

  constructor(
    buffer: SharedArrayBuffer,
    private readonly codec: Packr,
    /** Thread index of the producer. */
    readonly source: number,
    private readonly sourceName: string,
  ) {
    this.ring = new RingConsumer(buffer);
  }

  /**
   * Decode up to `maxFrames` frames. A frame that fails to decode is reported to `onBad` and
   * skipped (the ring releases it), so one corrupt frame cannot wedge the link.
   */
  read(maxFrames: number, onBad: (err: StatefnError) => void): unknown[][] {
    const out = this.frames;
    out.length = 0;
    const codec = this.codec;
    const name = this.sourceName;
    this.ring.drain((bytes) => {
      try {
        const f = decodeFrame(codec, bytes, name);
        out.push(f[0] === FrameKind.MESSAGES ? expandMessages(f, name) : f);
      } catch (e) {
        onBad(e as StatefnError);
      }
    }, maxFrames);
    return out;
  }

  isEmpty(): boolean {
    return this.ring.isEmpty();
  }
}

export { ControlOp, FrameKind };
