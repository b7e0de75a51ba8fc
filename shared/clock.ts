/**
 * Clocks. The engine reads time only through a `Clock`, so tests can inject a manual clock that
 * every thread sees: its time lives in a SharedArrayBuffer the test advances.
 */

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * A clock shared by all threads. Layout of its SharedArrayBuffer (16 bytes):
 *
 *   [0..8)  Float64  current time, ms since the epoch
 *   [8..12) Int32    generation, bumped on every advance (so waiters can tell it moved)
 */
export class ManualClock implements Clock {
  readonly buffer: SharedArrayBuffer;
  private readonly time: Float64Array;
  private readonly gen: Int32Array;

  constructor(startMsOrBuffer: number | SharedArrayBuffer = 0) {
    this.buffer = typeof startMsOrBuffer === 'number' ? new SharedArrayBuffer(16) : startMsOrBuffer;
    this.time = new Float64Array(this.buffer, 0, 1);
    this.gen = new Int32Array(this.buffer, 8, 1);
    if (typeof startMsOrBuffer === 'number') this.time[0] = startMsOrBuffer;
  }

  now(): number {
    return this.time[0]!;
  }

  /** Move time forward (only the owner of the clock, normally a test, calls this). */
  advance(ms: number): void {
    this.time[0] = this.time[0]! + ms;
    Atomics.add(this.gen, 0, 1);
  }

  set(ms: number): void {
    this.time[0] = ms;
    Atomics.add(this.gen, 0, 1);
  }

  generation(): number {
    return Atomics.load(this.gen, 0);
  }
}
