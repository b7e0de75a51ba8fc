package statefn.bench.flink;

import java.io.File;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import org.apache.flink.statefun.flink.harness.Harness;

/**
 * One benchmark run: builds a StateFun Harness (a local Flink mini cluster in this JVM) with the
 * generator ingress, the embedded functions of BenchModule and the completion egress; waits until
 * the measured messages have all completed (or the time limit), prints one line
 * `STATEFN_FLINK_RESULT {json}` on stdout, and halts the JVM. Progress goes to stderr.
 */
public final class Bench {
  static final String RESULT_PREFIX = "STATEFN_FLINK_RESULT ";
  private static volatile Throwable failure;

  public static void main(String[] args) throws Exception {
    final long mainStart = Stats.nowMicros();
    final PrintStream out = System.out;
    BenchConfig cfg;
    try {
      cfg = BenchConfig.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("statefn flink peer: " + e.getMessage());
      Runtime.getRuntime().halt(2);
      return;
    }

    final boolean fraud = cfg.workload.equals("fraud");
    Harness harness =
        new Harness()
            .withFlinkJobName("statefn-peer-" + cfg.workload)
            .withParallelism(cfg.parallelism)
            .withConfiguration("execution.checkpointing.interval", cfg.checkpointIntervalMs + " ms")
            .withConfiguration("execution.checkpointing.mode", "EXACTLY_ONCE")
            .withConfiguration("state.backend", "hashmap")
            // Fail fast instead of restarting forever (the default with checkpointing on).
            .withConfiguration("restart-strategy", "none")
            // The mini cluster's REST endpoint: loopback only, any free port.
            .withConfiguration("rest.bind-address", "127.0.0.1")
            .withConfiguration("rest.address", "127.0.0.1")
            .withConfiguration("rest.bind-port", "0")
            .withGlobalConfiguration(Ids.CONF_WORKLOAD, cfg.workload)
            .withGlobalConfiguration(Ids.CONF_KEYS, Integer.toString(cfg.keys))
            .withGlobalConfiguration(Ids.CONF_CHAIN_LENGTH, Integer.toString(cfg.chainLength))
            .withFlinkSourceFunction(Ids.INGRESS, new GeneratorSource(cfg))
            .withConsumingEgress(Ids.EGRESS, new CompletionSink(fraud ? 0 : Keys.bitsFor(cfg.keys)));
    // Fraud's messages are plain Java classes: StateFun's Kryo payload serializer.
    if (fraud) harness.withKryoMessageSerializer();
    if (!cfg.checkpointDir.isEmpty()) {
      harness.withConfiguration("state.checkpoints.dir", new File(cfg.checkpointDir).toURI().toString());
    }
    if (cfg.bufferTimeoutMs >= 0) {
      harness.withConfiguration("execution.buffer-timeout", cfg.bufferTimeoutMs + " ms");
    }
    for (String kv : cfg.flinkConf) {
      int eq = kv.indexOf('=');
      harness.withConfiguration(kv.substring(0, eq), kv.substring(eq + 1));
    }

    Thread runner =
        new Thread(
            () -> {
              try {
                harness.start();
                failure = new IllegalStateException("the Flink job finished by itself");
              } catch (Throwable t) {
                failure = t;
              }
            },
            "statefn-harness");
    runner.setDaemon(true);
    runner.start();

    // Wait for the job to start (the first source subtask), then for the run to end.
    boolean timedOut = false;
    long lastProgress = 0;
    long cpuAtStart = -1, wallAtStart = -1, cpuAtEnd = -1, wallAtEnd = -1;
    long startDeadline = mainStart + 120_000_000L;
    while (true) {
      Thread.sleep(20);
      Throwable f = failure;
      if (f != null) {
        System.err.println("statefn flink peer: the Flink job failed");
        f.printStackTrace();
        System.err.flush();
        Runtime.getRuntime().halt(3);
      }
      long now = Stats.nowMicros();
      long start = Stats.startMicros;
      if (start < 0) {
        if (now > startDeadline) {
          System.err.println("statefn flink peer: the job did not start within 120 s");
          Runtime.getRuntime().halt(4);
        }
        continue;
      }
      if (cpuAtStart < 0 && now >= Stats.measureStartMicros) {
        cpuAtStart = processCpuNanos();
        wallAtStart = now;
      }
      if (cpuAtEnd < 0 && now >= Stats.measureEndMicros) {
        cpuAtEnd = processCpuNanos();
        wallAtEnd = now;
      }
      if (now - lastProgress >= 1_000_000) {
        lastProgress = now;
        System.err.printf(
            Locale.ROOT,
            "[flink-peer] t=%.1fs emitted=%d completed=%d measured=%d/%d checkpoints=%d%n",
            (now - start) / 1e6,
            Stats.emittedTotal.get(),
            Stats.completedTotal.sum(),
            Stats.completedMeasured.sum(),
            Stats.emittedMeasured.get(),
            Stats.checkpointsCompleted.get());
      }
      if (Stats.sourcesDone.get() >= cfg.parallelism
          && Stats.completedMeasured.sum() >= Stats.emittedMeasured.get()) break;
      if (now - start > cfg.timeLimitMs * 1000L) {
        timedOut = true;
        break;
      }
    }

    long completed = Stats.completedMeasured.sum();
    long first = Stats.firstMeasuredCompletion.get();
    long last = Stats.lastMeasuredCompletion;
    double windowMs;
    double throughput;
    if (cfg.rate > 0) {
      // Open loop: completions per second during the measured window.
      windowMs = cfg.measureMs;
      throughput = Stats.completedInWindow.sum() / (windowMs / 1e3);
    } else {
      // Closed loop: the measured messages over the time from their first to their last completion.
      windowMs = first >= 0 && last > first ? (last - first) / 1e3 : Double.NaN;
      throughput = windowMs > 0 ? completed / (windowMs / 1e3) : 0;
    }
    Histogram h = Stats.latency;
    Map<String, Object> r = new LinkedHashMap<>();
    r.put("workload", cfg.workload);
    r.put("mode", cfg.rate > 0 ? "open" : "closed");
    r.put("offeredPerSec", cfg.rate > 0 ? cfg.rate : null);
    r.put("completed", completed);
    r.put("emittedMeasured", Stats.emittedMeasured.get());
    r.put("unsentMeasured", Stats.unsentMeasured.get());
    r.put("emittedTotal", Stats.emittedTotal.get());
    r.put("completedTotal", Stats.completedTotal.sum());
    r.put("invocations", Stats.invocations.sum());
    r.put("alerts", Stats.alerts.sum());
    r.put("payloadSerializer", fraud ? "kryo" : "protobuf");
    r.put("windowMs", windowMs);
    r.put("throughputPerSec", throughput);
    r.put("completedInWindow", Stats.completedInWindow.sum());
    r.put("p50Ms", h.percentile(50) / 1e3);
    r.put("p99Ms", h.percentile(99) / 1e3);
    r.put("p999Ms", h.percentile(99.9) / 1e3);
    r.put("maxMs", h.max() / 1e3);
    r.put("meanMs", h.mean() / 1e3);
    r.put("timedOut", timedOut);
    r.put("checkpointsCompleted", Stats.checkpointsCompleted.get());
    r.put("checkpointsCompletedInWindow", Stats.checkpointsCompletedInWindow.get());
    r.put(
        "cpuCoresInWindow",
        cpuAtStart >= 0 && cpuAtEnd > cpuAtStart && wallAtEnd > wallAtStart
            ? (cpuAtEnd - cpuAtStart) / 1e3 / (wallAtEnd - wallAtStart)
            : null);
    r.put("startupMs", (Stats.startMicros - mainStart) / 1e3);
    r.put("warmupMs", cfg.warmupMs);
    r.put("measureMs", cfg.measureMs);
    r.put("parallelism", cfg.parallelism);
    r.put("maxInflight", cfg.maxInflight);
    r.put("flinkVersion", flinkVersion());
    r.put("javaVersion", System.getProperty("java.version"));
    r.put("maxHeapBytes", Runtime.getRuntime().maxMemory());
    r.put("availableProcessors", Runtime.getRuntime().availableProcessors());
    out.println(RESULT_PREFIX + toJson(r));
    out.flush();
    System.err.flush();
    // The mini cluster's threads would keep the JVM alive; nothing of it needs a clean shutdown.
    Runtime.getRuntime().halt(0);
  }

  /** CPU time of this JVM (all threads), or -1 if the platform does not say. */
  private static long processCpuNanos() {
    java.lang.management.OperatingSystemMXBean os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    if (os instanceof com.sun.management.OperatingSystemMXBean) {
      return ((com.sun.management.OperatingSystemMXBean) os).getProcessCpuTime();
    }
    return -1;
  }

  private static String flinkVersion() {
    try {
      return org.apache.flink.runtime.util.EnvironmentInformation.getVersion();
    } catch (Throwable t) {
      return "unknown";
    }
  }

  private static String toJson(Map<String, Object> m) {
    StringBuilder b = new StringBuilder("{");
    for (Map.Entry<String, Object> e : m.entrySet()) {
      if (b.length() > 1) b.append(',');
      b.append('"').append(e.getKey()).append("\":");
      Object v = e.getValue();
      if (v == null) b.append("null");
      else if (v instanceof Number) {
        double d = ((Number) v).doubleValue();
        if (Double.isNaN(d) || Double.isInfinite(d)) b.append("null");
        else if (v instanceof Double || v instanceof Float) b.append(String.format(Locale.ROOT, "%.4f", d));
        else b.append(v);
      } else if (v instanceof Boolean) b.append(v);
      else b.append('"').append(v.toString().replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
    }
    return b.append('}').toString();
  }
}
