/**
 * Applying a finished invocation's effects: state writes (and call-based expiry), sends, delayed
 * sends, cancellations of delayed sends, and egress records. Everything is validated before
 * anything is applied, so a bad effect fails the whole invocation and nothing is half-applied.
 * Written objects are serialized here, when the handler has returned: the state caches their
 * bytes, so what the handler does with them afterwards changes nothing (address_state.ts).
 */
import type { Address } from '../api/address.js';
import type { Message } from '../api/message.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { Stat, type StatsBlock } from '../shared/stats_block.js';
import { isImmutable, serializeValue, snapshotCaptured } from './address_state.js';
import type { FnRuntime } from './function_table.js';
import type { Invocation } from './invocation.js';
import type { Router } from './router.js';
import type { StateCache } from './state_cache.js';
import { tokenInUseError, type TimerService } from './timer_service.js';

export class Effects {
  constructor(
    private readonly self: number,
    private readonly egressIds: ReadonlySet<string>,
    private readonly timers: TimerService,
    private readonly cache: StateCache,
    private readonly router: Router,
    private readonly stats: StatsBlock,
  ) {}

  /** Validate, then apply, the effects of `inv` (an invocation of `fn` that ran at `now`). */
  apply(fn: FnRuntime, inv: Invocation, now: number): void {
    this.validate(inv);
    const bytes = inv.serializes ? this.serializeWrites(fn, inv) : null;
    this.applyValid(fn, inv, bytes, now);
  }

  /**
   * The bytes of each value `inv` wrote, by spec index (undefined for a cleared value, and for a
   * built-in type's value: cached as it is, serialized by the checkpoint). Throws when a value
   * does not serialize, before anything is applied. Not called when every value written is a
   * built-in one (`Invocation.serializes`): the counter path serializes nothing per message.
   */
  private serializeWrites(fn: FnRuntime, inv: Invocation): (Uint8Array | undefined)[] {
    const w = inv.written!;
    const staged = inv.staged!;
    const out = new Array<Uint8Array | undefined>(fn.specs.length);
    for (let i = 0; i < fn.specs.length; i++) {
      if (!w[i]) continue;
      const v = staged[i];
      if (v === undefined) continue;
      const spec = fn.specs[i]!;
      if (spec.type.native === true && isImmutable(v)) continue;
      out[i] = serializeValue(`${inv.self.typename}/${inv.self.id}`, spec, v);
    }
    return out;
  }

  /**
   * Throw when an effect cannot be applied: an unknown egress, or a delayed-message token in use
   * by a pending delayed message (or used twice by this invocation). Tokens this invocation
   * cancels are free again.
   */
  validate(inv: Invocation): void {
    const self = inv.self;
    if (inv.egresses !== null) {
      for (let i = 0; i < inv.egresses.length; i += 2) {
        const id = inv.egresses[i] as string;
        if (!this.egressIds.has(id)) {
          throw new StatefnError(
            ErrorCode.UNKNOWN_EGRESS,
            `${self.typename}/${self.id}: no egress '${id}' is registered (known: ${[...this.egressIds].join(', ')})`,
          );
        }
      }
    }
    if (inv.delayed !== null) {
      const st = inv.state;
      let used: Set<string> | undefined;
      for (const d of inv.delayed) {
        if (d.token === null) continue;
        used ??= new Set();
        const freed = inv.cancels !== null && inv.cancels.includes(d.token);
        if (used.has(d.token) || (!freed && this.timers.tokenInUse(st.kg, self.typename, self.id, d.token))) {
          throw tokenInUseError(d.token, self.typename, self.id);
        }
        used.add(d.token);
      }
    }
  }

  private applyValid(fn: FnRuntime, inv: Invocation, bytes: (Uint8Array | undefined)[] | null, now: number): void {
    const self = inv.self;
    const st = inv.state;
    if (st.capture && (inv.staged !== null || fn.hasCallTtl)) snapshotCaptured(st);
    if (inv.staged !== null) {
      const w = inv.written!;
      for (let i = 0; i < fn.specs.length; i++) {
        if (!w[i]) continue;
        const v = inv.staged[i];
        st.bytes[i] = bytes === null ? undefined : bytes[i];
        st.values[i] = isImmutable(v) ? v : undefined;
        const spec = fn.specs[i]!;
        st.expires[i] =
          v === undefined
            ? 0
            : spec.expireAfterWrite !== undefined
              ? now + spec.expireAfterWrite
              : spec.expireAfterCall !== undefined
                ? now + spec.expireAfterCall
                : 0;
      }
      this.cache.markDirty(st);
    }
    if (fn.hasCallTtl) {
      for (let i = 0; i < fn.specs.length; i++) {
        const spec = fn.specs[i]!;
        if (spec.expireAfterCall === undefined || (st.values[i] === undefined && st.bytes[i] === undefined)) continue;
        if (st.expires[i] !== 0 && st.expires[i]! <= now && !inv.written?.[i]) {
          st.values[i] = undefined; // expired before this call
          st.bytes[i] = undefined;
          st.expires[i] = 0;
        } else {
          st.expires[i] = now + spec.expireAfterCall;
        }
      }
      this.cache.markDirty(st);
    }
    if (inv.cancels !== null) {
      for (const token of inv.cancels) this.timers.cancel(st.kg, self.typename, self.id, token);
    }
    if (inv.delayed !== null) {
      for (const d of inv.delayed) {
        this.timers.add({
          fireAt: now + d.delayMs,
          targetType: d.to.typename,
          targetId: d.to.id,
          senderType: self.typename,
          senderId: self.id,
          typename: d.message.typename,
          payload: d.message.payload,
          token: d.token,
          senderKg: st.kg,
        });
      }
    }
    if (inv.sends !== null) {
      const s = inv.sends;
      for (let i = 0; i < s.length; i += 2) {
        const to = s[i] as Address;
        const m = s[i + 1] as Message;
        this.router.route(to.typename, to.id, self.typename, self.id, m.typename, m.payload);
      }
    }
    if (inv.egresses !== null) {
      const out = this.router.toMain;
      const e = inv.egresses;
      for (let i = 0; i < e.length; i += 2) {
        const m = e[i + 1] as Message;
        out.egressRecord(e[i] as string, m.typename, m.payload);
      }
      this.stats.add(this.self, Stat.egressed, e.length / 2);
    }
  }
}
