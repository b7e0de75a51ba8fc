package statefn.bench.flink;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * What the source, the sink and main share. The Flink mini cluster runs every task in this JVM and
 * (with no user jars) loads this class through the application class loader, so the statics are one.
 * Times are microseconds since BASE_NANOS (System.nanoTime: one clock for the whole JVM).
 */
final class Stats {
  private Stats() {}

  static final long BASE_NANOS = System.nanoTime();

  static long nowMicros() {
    return (System.nanoTime() - BASE_NANOS) / 1000;
  }

  /** When the first source subtask started; -1 before. */
  static volatile long startMicros = -1;
  /** Messages created at or after this time are measured; the ones before are warm-up. */
  static volatile long measureStartMicros = Long.MAX_VALUE;
  static volatile long measureEndMicros = Long.MAX_VALUE;

  static final AtomicLong emittedTotal = new AtomicLong();
  static final AtomicLong emittedMeasured = new AtomicLong();
  /** Open loop: messages whose intended time fell in the measured window but were never sent. */
  static final AtomicLong unsentMeasured = new AtomicLong();
  static final LongAdder completedTotal = new LongAdder();
  /** Function invocations (all types), to check the work done per message. */
  static final LongAdder invocations = new LongAdder();
  /** Fraud: transactions scored above the threshold. */
  static final LongAdder alerts = new LongAdder();
  static final LongAdder completedMeasured = new LongAdder();
  /** Completions (of any message) whose completion time falls in the measured window. */
  static final LongAdder completedInWindow = new LongAdder();
  static final AtomicLong firstMeasuredCompletion = new AtomicLong(-1);
  static volatile long lastMeasuredCompletion = -1;
  static final Histogram latency = new Histogram();

  static final AtomicInteger sourcesStarted = new AtomicInteger();
  static final AtomicInteger sourcesDone = new AtomicInteger();
  static final AtomicInteger checkpointsCompleted = new AtomicInteger();
  static final AtomicInteger checkpointsCompletedInWindow = new AtomicInteger();

  /** Called by every source subtask; the first one fixes the phases for all. */
  static synchronized void start(long warmupMicros, long measureMicros) {
    if (startMicros >= 0) return;
    long now = nowMicros();
    measureStartMicros = now + warmupMicros;
    measureEndMicros = measureStartMicros + measureMicros;
    startMicros = now;
  }

  /** A message left the egress; `createdMicros` is its creation (closed) or intended (open) time. */
  static void complete(long createdMicros) {
    completedTotal.increment();
    long now = nowMicros();
    if (now >= measureStartMicros && now < measureEndMicros) completedInWindow.increment();
    if (createdMicros >= measureStartMicros) {
      latency.record(now - createdMicros);
      completedMeasured.increment();
      if (firstMeasuredCompletion.get() < 0) firstMeasuredCompletion.compareAndSet(-1, now);
      if (now > lastMeasuredCompletion) lastMeasuredCompletion = now;
    }
  }
}
