/**
 * A worker's back-pressure: decides, with hysteresis, whether the worker is pressured (the main
 * thread stops submitting ingress while any worker is) and whether it stops reading ingress from
 * the main thread's ring, and publishes the worker's load figures in the stats block.
 */
import type { EngineLimits } from '../shared/limits.js';
import { Stat, type StatsBlock } from '../shared/stats_block.js';

/** The figures pressure is decided on, sampled once per loop step. */
export interface LoadSample {
  /** Bytes parked in out links for full rings. */
  readonly parkedBytes: number;
  readonly pendingMessages: number;
  readonly mailboxedMessages: number;
  readonly asyncInvocations: number;
  /** Remote addresses whose mailbox holds a full batch already. */
  readonly remoteFullAddresses: number;
  readonly cacheEntries: number;
  readonly dirtyEntries: number;
}

export class BackPressure {
  private pressured = false;
  /** Back-pressured for a reason that reading the main ring would worsen (everything but the dirty set). */
  private gateMainRing = false;

  constructor(
    private readonly self: number,
    private readonly limits: EngineLimits,
    private readonly stats: StatsBlock,
  ) {}

  /** True while ingress from the main thread's ring is not read. */
  get gatesMainRing(): boolean {
    return this.gateMainRing;
  }

  update(s: LoadSample): void {
    const L = this.limits;
    // The dirty set (state changed since the last checkpoint) waits in memory for the next
    // barrier: bound it too, so a slow or stuck checkpoint pauses ingress instead of growing it.
    const dirty = s.dirtyEntries;
    const gateOn =
      s.parkedBytes > L.outboxBytesHighWater ||
      s.pendingMessages > L.pendingMessagesMax ||
      s.mailboxedMessages > L.mailboxMessagesMax ||
      s.asyncInvocations >= L.asyncInvocationsMax ||
      s.remoteFullAddresses > 0;
    const gateOff =
      s.parkedBytes <= L.outboxBytesLowWater &&
      s.pendingMessages <= L.pendingMessagesMax / 2 &&
      s.mailboxedMessages <= L.mailboxMessagesMax / 2 &&
      s.asyncInvocations < L.asyncInvocationsMax &&
      s.remoteFullAddresses === 0;
    const on = gateOn || dirty > L.dirtyEntriesMax;
    const off = gateOff && dirty <= L.dirtyEntriesMax / 2;
    // A dirty set over its bound clears only by a checkpoint, whose barrier arrives on the main
    // ring behind the ingress already in it: keep reading that ring (the main thread stops
    // submitting while any worker is pressured, so the overshoot is at most one ring's worth).
    // Gating it deadlocked large key spaces: every worker waited for a barrier it never read.
    if (!this.gateMainRing && gateOn) this.gateMainRing = true;
    else if (this.gateMainRing && gateOff) this.gateMainRing = false;
    if (!this.pressured && on) {
      this.pressured = true;
      this.stats.setPressure(this.self, true);
    } else if (this.pressured && off) {
      this.pressured = false;
      this.stats.setPressure(this.self, false);
    }
    const st = this.stats;
    st.set(this.self, Stat.parkedBytes, s.parkedBytes);
    st.set(this.self, Stat.mailboxed, s.mailboxedMessages);
    st.set(this.self, Stat.asyncInFlight, s.asyncInvocations);
    st.set(this.self, Stat.cacheEntries, s.cacheEntries);
    st.set(this.self, Stat.dirty, s.dirtyEntries);
  }
}
