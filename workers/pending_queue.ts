/**
 * The worker's queue of decoded messages waiting to be handled: flat, MESSAGE_FIELDS values per
 * message, consumed from a head index so that taking a batch does not shift the array.
 */
import { assert } from '../shared/errors.js';
import { MESSAGE_FIELDS } from '../shared/frames.js';
import type { Payload } from '../api/types.js';
import { pendingCompactAfterFields } from '../shared/limits.js';

export class PendingQueue {
  private items: unknown[] = [];
  private head = 0;

  /** Messages waiting. */
  count(): number {
    return (this.items.length - this.head) / MESSAGE_FIELDS;
  }

  /** Append one message. */
  push(targetType: string, targetId: string, callerType: string | null, callerId: string | null, typename: string, payload: Payload): void {
    this.items.push(targetType, targetId, callerType, callerId, typename, payload);
  }

  /** Append the messages of a MESSAGES frame (its fields after the frame kind, at index 1). */
  pushFrame(frame: readonly unknown[]): void {
    assert((frame.length - 1) % MESSAGE_FIELDS === 0, () => `MESSAGES frame of ${frame.length - 1} fields is not whole messages`);
    const p = this.items;
    for (let i = 1; i < frame.length; i++) p.push(frame[i]);
  }

  /** Append messages given flat (MESSAGE_FIELDS each), e.g. the ones a checkpoint recorded. */
  pushFields(fields: readonly unknown[]): void {
    const p = this.items;
    for (const f of fields) p.push(f);
  }

  /**
   * Hand up to `max` messages to `handle`, oldest first, calling `every` after each message (it
   * may push more messages, which are handled in a later step). Returns how many were handled.
   */
  take(
    max: number,
    handle: (
      targetType: string,
      targetId: string,
      callerType: string | null,
      callerId: string | null,
      typename: string,
      payload: Payload,
    ) => void,
    every: (n: number) => void,
  ): number {
    const p = this.items;
    let h = this.head;
    let n = 0;
    while (h < p.length && n < max) {
      const targetType = p[h] as string;
      const targetId = p[h + 1] as string;
      const callerType = p[h + 2] as string | null;
      const callerId = p[h + 3] as string | null;
      const typename = p[h + 4] as string;
      const payload = p[h + 5] as Payload;
      h += MESSAGE_FIELDS;
      n++;
      handle(targetType, targetId, callerType, callerId, typename, payload);
      every(n);
    }
    // `handle` may have appended to `p` (local sends), so compare with its current length.
    if (h >= p.length) {
      this.items = [];
      this.head = 0;
    } else if (h > pendingCompactAfterFields && h * 2 > p.length) {
      // Most of the array is consumed: copy the rest so the consumed part can be collected.
      this.items = p.slice(h);
      this.head = 0;
    } else {
      this.head = h;
    }
    return n;
  }

  /** Append every waiting message to `out` (flat), oldest first. */
  appendTo(out: unknown[]): void {
    const p = this.items;
    for (let h = this.head; h < p.length; h++) out.push(p[h]);
  }
}
