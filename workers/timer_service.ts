/**
 * Durable timers for delayed messages. A timer lives with its sender (in the sender's key group)
 * until it fires; it is state like any other: written to LMDB at the next checkpoint, restored on
 * start, migrated on rescale.
 *
 * Memory is bounded by a horizon: only timers due within `timerHorizonMs` are held in a
 * min-heap; later ones stay in LMDB and are loaded by a scan after each checkpoint as the horizon
 * moves forward. (A timer created beyond the horizon is written at the next checkpoint, which
 * happens before the scan that could need it.)
 */
import type { Packr } from 'msgpackr';
import { randomBytes } from 'node:crypto';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { Payload } from '../api/types.js';
import { timerKey, timerKeyFireAt, tokenKey } from '../state/state_keys.js';
import type { StateStore, WriteOp } from '../state/state_store.js';

export interface Timer {
  key: Buffer;
  /** key as a latin1 string, for maps */
  ks: string;
  fireAt: number;
  targetType: string;
  targetId: string;
  senderType: string;
  senderId: string;
  typename: string;
  payload: Payload;
  token: string | null;
  senderKg: number;
}

export class TimerService {
  private heap: Timer[] = [];
  /** Timers in the heap by key (cancelled ones are removed lazily from the heap). */
  private readonly live = new Map<string, Timer>();
  /** Token index changes not written yet: token key (latin1) -> timer key, or null when removed. */
  private tokenOverlay = new Map<string, Buffer | null>();
  /** Token changes in the checkpoint under way. */
  private checkpointTokens = new Map<string, Buffer | null>();
  private ops: WriteOp[] = [];
  /**
   * Timers due beyond the scanned horizon whose write is not committed yet (so a scan of LMDB
   * cannot find them): created since the last checkpoint, and in the checkpoint under way.
   */
  private beyond = new Map<string, Timer>();
  private checkpointBeyond = new Map<string, Timer>();
  /**
   * Keys of timers removed (cancelled or fired) whose deletion is not committed yet, since the
   * last checkpoint and in the checkpoint under way: a scan of LMDB must not load them again.
   */
  private removed = new Set<string>();
  private checkpointRemoved = new Set<string>();
  private scannedUntil: number;
  private uniqPrefix = randomBytes(6);
  private uniqCounter = 0;

  constructor(
    private readonly store: StateStore,
    private readonly codec: Packr,
    private readonly kgStart: number,
    private readonly kgEnd: number,
    private readonly horizonMs: number,
    now: number,
  ) {
    // Scan from the beginning of time: timers that became due while the engine was stopped
    // must fire now, not be skipped.
    this.scannedUntil = -1;
    this.scan(now);
  }

  get inMemory(): number {
    return this.live.size;
  }

  /** The fire time of the earliest timer in memory, or Infinity. */
  nextDue(): number {
    this.prune();
    return this.heap.length > 0 ? this.heap[0]!.fireAt : Infinity;
  }

  /** True when `token` of this sender names a pending delayed message. */
  tokenInUse(senderKg: number, senderType: string, senderId: string, token: string): boolean {
    return this.tokenTimer(tokenKey(senderKg, senderType, senderId, token)) !== undefined;
  }

  add(t: Omit<Timer, 'key' | 'ks'>): void {
    if (t.token !== null && this.tokenInUse(t.senderKg, t.senderType, t.senderId, t.token)) {
      throw tokenInUseError(t.token, t.senderType, t.senderId);
    }
    const uniq = Buffer.allocUnsafe(12);
    this.uniqPrefix.copy(uniq, 0);
    uniq.writeUIntBE(this.uniqCounter++, 6, 6);
    const key = timerKey(t.senderKg, t.fireAt, uniq);
    const timer: Timer = { ...t, key, ks: key.toString('latin1') };
    this.ops.push({ db: 'timers', key, value: this.encode(timer) });
    if (t.token !== null) {
      const tk = tokenKey(t.senderKg, t.senderType, t.senderId, t.token);
      this.tokenOverlay.set(tk.toString('latin1'), key);
      this.ops.push({ db: 'tokens', key: tk, value: key });
    }
    if (t.fireAt <= this.scannedUntil) this.push(timer);
    else this.beyond.set(timer.ks, timer);
  }

  /** Cancel by token; unknown or already delivered tokens are a no-op (StateFun semantics). */
  cancel(senderKg: number, senderType: string, senderId: string, token: string): void {
    const tk = tokenKey(senderKg, senderType, senderId, token);
    const key = this.tokenTimer(tk);
    if (key === undefined) return;
    this.remove(key, tk);
  }

  /** Pop the timers due at `now` (each removed durably at the next checkpoint). */
  due(now: number, max: number, out: Timer[]): void {
    while (out.length < max && this.heap.length > 0 && this.heap[0]!.fireAt <= now) {
      const t = this.pop()!;
      if (this.live.get(t.ks) !== t) continue; // cancelled
      this.remove(t.key, t.token !== null ? tokenKey(t.senderKg, t.senderType, t.senderId, t.token) : undefined);
      out.push(t);
    }
  }

  /** Writes to apply at the next checkpoint (and forget them here). */
  takeOps(): WriteOp[] {
    const ops = this.ops;
    this.ops = [];
    for (const [ks, t] of this.beyond) this.checkpointBeyond.set(ks, t);
    this.beyond.clear();
    for (const [k, v] of this.tokenOverlay) this.checkpointTokens.set(k, v);
    this.tokenOverlay = new Map();
    for (const ks of this.removed) this.checkpointRemoved.add(ks);
    this.removed.clear();
    return ops;
  }

  /** After a checkpoint committed: what it wrote is in LMDB now; extend the horizon. */
  afterCheckpoint(now: number): void {
    this.checkpointTokens.clear();
    this.checkpointBeyond.clear();
    this.checkpointRemoved.clear();
    this.scan(now);
  }

  /** Load timers due up to now + horizon that are not in memory yet. */
  scan(now: number): void {
    const until = now + this.horizonMs;
    if (until <= this.scannedUntil) return;
    const from = this.scannedUntil + 1;
    for (const m of [this.beyond, this.checkpointBeyond]) {
      for (const [ks, t] of m) {
        if (t.fireAt <= until) {
          m.delete(ks);
          if (!this.live.has(ks)) this.push(t);
        }
      }
    }
    for (let kg = this.kgStart; kg < this.kgEnd; kg++) {
      const start = timerKey(kg, from, Buffer.alloc(0));
      const end = timerKey(kg, until + 1, Buffer.alloc(0));
      for (const { key, value } of this.store.range('timers', start, end)) {
        const ks = key.toString('latin1');
        if (this.live.has(ks) || this.removed.has(ks) || this.checkpointRemoved.has(ks)) continue;
        this.push(this.decode(Buffer.from(key), value));
      }
    }
    this.scannedUntil = until;
  }

  private remove(key: Buffer, tk: Buffer | undefined): void {
    const ks = key.toString('latin1');
    this.live.delete(ks);
    this.beyond.delete(ks);
    this.checkpointBeyond.delete(ks);
    this.removed.add(ks);
    this.ops.push({ db: 'timers', key, value: undefined });
    if (tk !== undefined) {
      this.tokenOverlay.set(tk.toString('latin1'), null);
      this.ops.push({ db: 'tokens', key: tk, value: undefined });
    }
  }

  private tokenTimer(tk: Buffer): Buffer | undefined {
    const ks = tk.toString('latin1');
    if (this.tokenOverlay.has(ks)) return this.tokenOverlay.get(ks) ?? undefined;
    if (this.checkpointTokens.has(ks)) return this.checkpointTokens.get(ks) ?? undefined;
    return this.store.get('tokens', tk);
  }

  private encode(t: Timer): Buffer {
    return Buffer.from(this.codec.pack([t.targetType, t.targetId, t.senderType, t.senderId, t.typename, t.payload, t.token, t.senderKg]));
  }

  private decode(key: Buffer, value: Buffer): Timer {
    const a = this.codec.unpack(value) as [string, string, string, string, string, Payload, string | null, number];
    return {
      key,
      ks: key.toString('latin1'),
      fireAt: timerKeyFireAt(key),
      targetType: a[0],
      targetId: a[1],
      senderType: a[2],
      senderId: a[3],
      typename: a[4],
      payload: a[5],
      token: a[6],
      senderKg: a[7],
    };
  }

  // ---- binary min-heap on (fireAt, key) ----

  private push(t: Timer): void {
    this.live.set(t.ks, t);
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, t)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = t;
  }

  private pop(): Timer | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && less(h[r]!, h[l]!) ? r : l;
        if (less(last, h[c]!)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  /** Drop cancelled timers from the top of the heap. */
  private prune(): void {
    while (this.heap.length > 0 && this.live.get(this.heap[0]!.ks) !== this.heap[0]) this.pop();
  }
}

export function tokenInUseError(token: string, senderType: string, senderId: string): StatefnError {
  return new StatefnError(
    ErrorCode.TOKEN_IN_USE,
    `cancellation token '${token}' of ${senderType}/${senderId} is already used by a pending delayed message`,
  );
}

function less(a: Timer, b: Timer): boolean {
  return a.fireAt < b.fireAt || (a.fireAt === b.fireAt && a.ks < b.ks);
}
