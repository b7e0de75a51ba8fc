/**
 * The main thread's loop: reads the frames workers send (egress, dead letters, control), then
 * does the main thread's periodic work, and sleeps on its doorbell when idle. The main thread
 * never blocks: it waits with `Atomics.waitAsync`, and anything that queues work for it (a
 * checkpoint's barriers, commits, egress) calls `schedule()`, which rings the doorbell when the
 * loop sleeps.
 */
import type { Doorbells } from '../shared/doorbell.js';
import type { StatefnError } from '../shared/errors.js';
import type { InLink } from '../shared/link.js';
import { mainBusyPollMs, mainFramesPerReadMax, mainIdleWaitMs } from '../shared/limits.js';

/** What the loop does with what it reads, and when it stops. */
export interface MainLoopHooks {
  /** False once the run stopped or failed: the loop ends. */
  active(): boolean;
  onFrame(frame: unknown[], source: number): void;
  /** A malformed frame or a broken ring. */
  onBadFrame(e: StatefnError): void;
  /** The work of each turn after the frames are read; true when something waits to be polled soon. */
  afterRead(): boolean;
}

export class MainLoop {
  private scheduled = false;
  /** The loop waits on the main thread's doorbell (schedule() rings it). */
  private sleeping = false;

  constructor(
    private readonly doorbells: Doorbells,
    private readonly mainIdx: number,
    private readonly inputs: readonly InLink[],
    private readonly hooks: MainLoopHooks,
  ) {}

  /** Run a turn soon. */
  schedule(): void {
    // Asleep on the doorbell: ring it, or work queued now (a checkpoint's barriers, commits,
    // egress) would wait for a frame from a worker or the wait's timeout.
    if (this.sleeping) {
      this.sleeping = false;
      this.doorbells.ringAlways(this.mainIdx);
      return;
    }
    if (this.scheduled || !this.hooks.active()) return;
    this.scheduled = true;
    setImmediate(() => this.turn());
  }

  /** One turn: read, work, then go on at once or sleep. */
  turn(): void {
    this.scheduled = false;
    if (!this.hooks.active()) return;
    this.doorbells.awake(this.mainIdx);
    let frames = 0;
    for (const link of this.inputs) {
      const fs = link.read(mainFramesPerReadMax, (e) => this.hooks.onBadFrame(e));
      frames += fs.length;
      for (const f of fs) this.hooks.onFrame(f, link.source);
    }
    const pollSoon = this.hooks.afterRead();
    if (frames > 0 || this.inputs.some((l) => !l.isEmpty())) {
      this.schedule();
      return;
    }
    // Idle: sleep on the doorbell, but poll soon while anyone waits on back-pressure or parked frames.
    const seq = this.doorbells.prepareWait(this.mainIdx);
    if (this.inputs.some((l) => !l.isEmpty())) {
      this.schedule();
      return;
    }
    const timeout = pollSoon ? mainBusyPollMs : mainIdleWaitMs;
    this.scheduled = true;
    const r = this.doorbells.waitAsync(this.mainIdx, seq, timeout);
    if (r === undefined) {
      setImmediate(() => this.turn());
    } else {
      this.sleeping = true;
      void r.then(() => {
        this.sleeping = false;
        this.turn();
      });
    }
  }
}
