package statefn.bench.flink;

import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.streaming.api.functions.source.RichParallelSourceFunction;

/**
 * The ingress: each of the p subtasks generates its share of the load (keys uniform or Zipf, seeded
 * per subtask; or fraud transactions), as a Maker makes it: packed longs (see Ids) in an Int64Value,
 * or FraudTypes. Warm-up first (not measured), then the measured window; then the source idles
 * until the job is cancelled (main halts the JVM).
 *
 * <ul>
 *   <li>closed: as fast as the job takes them, with at most maxInflight messages (global) between
 *       the source and the egress; created = the time of emission.
 *   <li>open: a fixed rate (ramping up linearly from 0 during the warm-up); created = the intended
 *       time of the message, so the latency includes any time the source was held back (no
 *       coordinated omission). The source stops at the end of the window, or a grace period after
 *       it if it fell behind.
 * </ul>
 *
 * <p>It does not snapshot its position: a real deployment would use a replayable source (Kafka).
 */
final class GeneratorSource extends RichParallelSourceFunction<Object> implements CheckpointListener {
  private static final long serialVersionUID = 1;
  private static final int BATCH = 64;

  private final BenchConfig cfg;
  private transient volatile boolean running;

  GeneratorSource(BenchConfig cfg) {
    this.cfg = cfg;
  }

  @Override
  public void run(SourceContext<Object> ctx) throws Exception {
    running = true;
    final int sub = getRuntimeContext().getIndexOfThisSubtask();
    final int p = getRuntimeContext().getNumberOfParallelSubtasks();
    Stats.start(cfg.warmupMs * 1000L, cfg.measureMs * 1000L);
    Stats.sourcesStarted.incrementAndGet();
    final long seed = cfg.seed * 1_000_003L + sub;
    final Maker maker;
    if (cfg.workload.equals("fraud")) {
      maker = new FraudModule.Maker(seed, sub, p);
    } else {
      Keys.Sampler keys =
          cfg.workload.equals("counter-zipf")
              ? Keys.zipf(cfg.keys, cfg.zipfExponent, seed)
              : Keys.uniform(cfg.keys, seed);
      int keyBits = Keys.bitsFor(cfg.keys);
      maker = created -> BenchModule.payload((created << keyBits) | keys.next());
    }
    try {
      if (cfg.rate > 0) openLoop(ctx, maker, sub, p);
      else closedLoop(ctx, maker);
    } finally {
      Stats.sourcesDone.incrementAndGet();
    }
    while (running) Thread.sleep(50);
  }

  /** Makes the records of one subtask. */
  interface Maker {
    /** The measured record created (or due) at `createdMicros`. */
    Object next(long createdMicros);

    /** An extra, unmeasured record to send after the last `next` (fraud's confirmations), or null. */
    default Object extra(long createdMicros) {
      return null;
    }
  }

  private static void emit(SourceContext<Object> ctx, Maker maker, long created) {
    ctx.collect(maker.next(created));
    Object extra = maker.extra(created);
    if (extra != null) ctx.collect(extra);
  }

  private void closedLoop(SourceContext<Object> ctx, Maker maker) {
    final long measureStart = Stats.measureStartMicros;
    final long measureEnd = Stats.measureEndMicros;
    final Object lock = ctx.getCheckpointLock();
    while (running) {
      if (Stats.nowMicros() >= measureEnd) return;
      long inflight = Stats.emittedTotal.get() - Stats.completedTotal.sum();
      if (inflight >= cfg.maxInflight) {
        LockSupport.parkNanos(20_000);
        continue;
      }
      int batch = (int) Math.min(BATCH, cfg.maxInflight - inflight);
      int measured = 0;
      synchronized (lock) {
        for (int i = 0; i < batch; i++) {
          long created = Stats.nowMicros();
          emit(ctx, maker, created);
          if (created >= measureStart) measured++;
        }
      }
      Stats.emittedTotal.addAndGet(batch);
      if (measured > 0) Stats.emittedMeasured.addAndGet(measured);
    }
  }

  private void openLoop(SourceContext<Object> ctx, Maker maker, int sub, int p) {
    final long start = Stats.startMicros;
    final long measureStart = Stats.measureStartMicros;
    final long measureEnd = Stats.measureEndMicros;
    final long hardStop = measureEnd + cfg.graceMs * 1000L;
    final double interval = 1e6 * p / cfg.rate; // micros between this subtask's messages
    final double phase = (double) sub / p; // interleave the subtasks
    final Schedule schedule = new Schedule(start, measureStart - start, interval);
    final Object lock = ctx.getCheckpointLock();
    long j = 0;
    while (running) {
      long intended = schedule.at(j + phase);
      if (intended >= measureEnd) return;
      long now = Stats.nowMicros();
      if (now >= hardStop) {
        // Fell behind: count what the window still owed, and stop.
        long owed = 0;
        for (long k = j; ; k++) {
          long t = schedule.at(k + phase);
          if (t >= measureEnd) break;
          if (t >= measureStart) owed++;
        }
        Stats.unsentMeasured.addAndGet(owed);
        return;
      }
      if (intended > now) {
        long wait = intended - now;
        if (wait > 100) LockSupport.parkNanos((wait - 50) * 1000);
        else Thread.onSpinWait();
        continue;
      }
      if (Stats.emittedTotal.get() - Stats.completedTotal.sum() >= cfg.maxInflight) {
        LockSupport.parkNanos(20_000);
        continue;
      }
      int n = 0;
      int measured = 0;
      synchronized (lock) {
        while (n < BATCH && intended <= now && intended < measureEnd) {
          emit(ctx, maker, intended);
          if (intended >= measureStart) measured++;
          n++;
          j++;
          intended = schedule.at(j + phase);
        }
      }
      Stats.emittedTotal.addAndGet(n);
      if (measured > 0) Stats.emittedMeasured.addAndGet(measured);
    }
  }

  /**
   * The open loop's intended times: the rate ramps up linearly from 0 over the warm-up (so a cold
   * JIT does not start the measured window with a backlog), then stays at the target.
   */
  static final class Schedule {
    private final long start;
    private final double warmup;
    private final double interval;
    private final double rampMessages;

    Schedule(long start, long warmupMicros, double interval) {
      this.start = start;
      this.warmup = Math.max(0, warmupMicros);
      this.interval = interval;
      this.rampMessages = this.warmup / interval / 2; // the area under the ramp
    }

    /** The intended time of message n (fractional: the subtask's phase). */
    long at(double n) {
      if (n < rampMessages) return start + (long) Math.sqrt(2 * warmup * n * interval);
      return start + (long) (warmup + (n - rampMessages) * interval);
    }
  }

  @Override
  public void cancel() {
    running = false;
  }

  @Override
  public void notifyCheckpointComplete(long checkpointId) {
    if (getRuntimeContext().getIndexOfThisSubtask() != 0) return;
    Stats.checkpointsCompleted.incrementAndGet();
    long now = Stats.nowMicros();
    if (now >= Stats.measureStartMicros && now <= Stats.measureEndMicros) {
      Stats.checkpointsCompletedInWindow.incrementAndGet();
    }
  }
}
