package statefn.bench.flink;

import java.io.Serializable;

/** One run's settings, from `--name value` arguments. */
final class BenchConfig implements Serializable {
  private static final long serialVersionUID = 1;

  String workload = "counter-uniform"; // counter-uniform | counter-zipf | chain | fraud
  /** Messages/s offered (open loop); 0 = closed loop. */
  double rate = 0;
  int keys = 100_000;
  double zipfExponent = 1.0;
  long seed = 42;
  int chainLength = 10;
  long warmupMs = 5_000;
  long measureMs = 20_000;
  /** Open loop: how long past the window a source that fell behind keeps sending. */
  long graceMs = 5_000;
  /** The JVM gives up (and reports what it has) this long after the job started running. */
  long timeLimitMs = 120_000;
  /** Messages between the source and the egress, at most (both loops). */
  long maxInflight = 100_000;
  int parallelism = 2;
  long checkpointIntervalMs = 1_000;
  /** Where checkpoints are written (file system checkpoint storage); empty = JobManager heap. */
  String checkpointDir = "";
  /** Flink's execution.buffer-timeout in ms; negative = Flink's default (100 ms). */
  long bufferTimeoutMs = -1;
  /** Extra Flink configuration, `key=value` each (--flink-conf, repeatable); applied last. */
  java.util.List<String> flinkConf = new java.util.ArrayList<>();

  static BenchConfig parse(String[] args) {
    BenchConfig c = new BenchConfig();
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (!a.startsWith("--") || i + 1 >= args.length) throw new IllegalArgumentException("bad argument " + a);
      String v = args[++i];
      switch (a.substring(2)) {
        case "workload": c.workload = v; break;
        case "rate": c.rate = Double.parseDouble(v); break;
        case "keys": c.keys = Integer.parseInt(v); break;
        case "zipf-exponent": c.zipfExponent = Double.parseDouble(v); break;
        case "seed": c.seed = Long.parseLong(v); break;
        case "chain-length": c.chainLength = Integer.parseInt(v); break;
        case "warmup-ms": c.warmupMs = Long.parseLong(v); break;
        case "measure-ms": c.measureMs = Long.parseLong(v); break;
        case "grace-ms": c.graceMs = Long.parseLong(v); break;
        case "time-limit-ms": c.timeLimitMs = Long.parseLong(v); break;
        case "max-inflight": c.maxInflight = Long.parseLong(v); break;
        case "parallelism": c.parallelism = Integer.parseInt(v); break;
        case "checkpoint-interval-ms": c.checkpointIntervalMs = Long.parseLong(v); break;
        case "checkpoint-dir": c.checkpointDir = v; break;
        case "buffer-timeout-ms": c.bufferTimeoutMs = Long.parseLong(v); break;
        case "flink-conf":
          if (v.indexOf('=') <= 0) throw new IllegalArgumentException("--flink-conf expects key=value, got " + v);
          c.flinkConf.add(v);
          break;
        default: throw new IllegalArgumentException("unknown argument " + a);
      }
    }
    if (!c.workload.equals("counter-uniform")
        && !c.workload.equals("counter-zipf")
        && !c.workload.equals("chain")
        && !c.workload.equals("fraud")) {
      throw new IllegalArgumentException("unsupported workload " + c.workload);
    }
    if (c.keys < 1 || Keys.bitsFor(c.keys) > 22) throw new IllegalArgumentException("keys must be in 1 .. 2^22");
    if (c.chainLength < 1 || c.chainLength > Ids.MAX_CHAIN) throw new IllegalArgumentException("chain-length out of range");
    if (c.parallelism < 1) throw new IllegalArgumentException("parallelism must be >= 1");
    return c;
  }
}
