/**
 * A doorbell: how producers wake a consumer thread that waits on several rings at once.
 *
 * Layout: two Int32 slots per thread in one SharedArrayBuffer, on separate cache lines per thread:
 *
 *   [t*16 + 0]  seq       bumped by a producer after it published to a ring of thread t
 *   [t*16 + 1]  sleeping  1 while thread t is (about to be) waiting
 *
 * Protocol (lost wake-ups are impossible because all steps are sequentially consistent):
 *   consumer: store sleeping=1; s = load seq; if all input rings are empty: wait(seq, s); store sleeping=0
 *   producer: publish to the ring (Atomics.store head); if load(sleeping) == 1: add seq 1; notify seq
 * Either the consumer's emptiness check sees the producer's head, or the producer's load of
 * `sleeping` comes after the consumer set it and the producer bumps `seq`, which makes the wait
 * return at once (value changed) or wakes it (notify).
 */
const STRIDE = 16; // 64 bytes per thread

export function allocateDoorbells(threads: number): SharedArrayBuffer {
  return new SharedArrayBuffer(threads * STRIDE * 4);
}

export class Doorbells {
  private readonly cells: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.cells = new Int32Array(buffer);
  }

  /** Wake thread `t` if it is waiting (cheap when it is not: one atomic load). */
  ring(t: number): void {
    const base = t * STRIDE;
    if (Atomics.load(this.cells, base + 1) === 1) {
      Atomics.add(this.cells, base, 1);
      Atomics.notify(this.cells, base);
    }
  }

  /** Wake thread `t` unconditionally (control events, shutdown). */
  ringAlways(t: number): void {
    const base = t * STRIDE;
    Atomics.add(this.cells, base, 1);
    Atomics.notify(this.cells, base);
  }

  /** Step 1 of waiting: announce it and return the sequence to wait on. */
  prepareWait(t: number): number {
    const base = t * STRIDE;
    Atomics.store(this.cells, base + 1, 1);
    return Atomics.load(this.cells, base);
  }

  /** Step 2 (after re-checking the rings): wait asynchronously until rung or `timeoutMs`. */
  waitAsync(t: number, seq: number, timeoutMs: number): Promise<unknown> | undefined {
    const r = Atomics.waitAsync(this.cells, t * STRIDE, seq, timeoutMs);
    return r.async ? r.value : undefined;
  }

  /** Step 2, blocking variant (worker threads only; never the main thread). */
  waitSync(t: number, seq: number, timeoutMs: number): void {
    Atomics.wait(this.cells, t * STRIDE, seq, timeoutMs);
  }

  /** Step 3: no longer waiting. */
  awake(t: number): void {
    Atomics.store(this.cells, t * STRIDE + 1, 0);
  }
}
