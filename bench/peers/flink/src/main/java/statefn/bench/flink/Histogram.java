package statefn.bench.flink;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A concurrent log-linear histogram of non-negative values (microseconds): exact below 512, then
 * 256 sub-buckets per power of two (under 0.4% relative error), up to 2^40.
 */
final class Histogram {
  private static final int SUB_BITS = 8;
  private static final int SUB = 1 << SUB_BITS; // 256
  private static final int EXACT = 2 * SUB; // 512
  private static final int MAX_SHIFT = 40 - SUB_BITS;
  private final AtomicLongArray counts = new AtomicLongArray(EXACT + MAX_SHIFT * SUB);

  void record(long v) {
    counts.incrementAndGet(index(Math.max(0, v)));
  }

  static int index(long v) {
    if (v < EXACT) return (int) v;
    int e = 63 - Long.numberOfLeadingZeros(v); // >= 9
    int shift = e - SUB_BITS; // >= 1
    if (shift > MAX_SHIFT) return EXACT + MAX_SHIFT * SUB - 1;
    int sub = (int) (v >>> shift); // SUB .. 2*SUB-1
    return EXACT + (shift - 1) * SUB + (sub - SUB);
  }

  /** The middle of bucket `i`. */
  static double valueOf(int i) {
    if (i < EXACT) return i;
    int shift = (i - EXACT) / SUB + 1;
    long sub = (i - EXACT) % SUB + SUB;
    return (double) (sub << shift) + ((1L << shift) - 1) / 2.0;
  }

  long count() {
    long n = 0;
    for (int i = 0; i < counts.length(); i++) n += counts.get(i);
    return n;
  }

  /** The p-th percentile (0 < p <= 100): the smallest value with at least p% of values at or below. */
  double percentile(double p) {
    long n = count();
    if (n == 0) return Double.NaN;
    long rank = Math.max(1, (long) Math.ceil(p / 100.0 * n));
    long seen = 0;
    for (int i = 0; i < counts.length(); i++) {
      seen += counts.get(i);
      if (seen >= rank) return valueOf(i);
    }
    return valueOf(counts.length() - 1);
  }

  double max() {
    for (int i = counts.length() - 1; i >= 0; i--) if (counts.get(i) > 0) return valueOf(i);
    return Double.NaN;
  }

  double mean() {
    long n = 0;
    double sum = 0;
    for (int i = 0; i < counts.length(); i++) {
      long c = counts.get(i);
      n += c;
      sum += c * valueOf(i);
    }
    return n == 0 ? Double.NaN : sum / n;
  }
}
