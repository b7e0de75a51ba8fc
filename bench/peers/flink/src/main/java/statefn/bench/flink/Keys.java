package statefn.bench.flink;

import java.util.SplittableRandom;

/** Key names, key samplers (uniform or Zipf, seeded) and the chain's per-hop key hash. */
final class Keys {
  private Keys() {}

  private static volatile String[] cachedNames = new String[0];
  private static volatile double[] cachedCdf;
  private static volatile String cachedCdfFor = "";

  /** The ids of keys 0 .. keys-1 ("0", "1", ...), built once per JVM. */
  static String[] names(int keys) {
    String[] n = cachedNames;
    if (n.length == keys) return n;
    synchronized (Keys.class) {
      if (cachedNames.length != keys) {
        String[] fresh = new String[keys];
        for (int i = 0; i < keys; i++) fresh[i] = Integer.toString(i);
        cachedNames = fresh;
      }
      return cachedNames;
    }
  }

  /** Bits needed for a key index below `keys`: the low bits of every packed message. */
  static int bitsFor(int keys) {
    return Math.max(1, 32 - Integer.numberOfLeadingZeros(Math.max(1, keys - 1)));
  }

  /** hash(key, hop): the key that hop `hop` of the chain visits for the message of key `key`. */
  static int hop(int key, int hop, int keys) {
    long h = mix64(((long) key << 8) ^ ((hop + 1) * 0x9E3779B97F4A7C15L));
    return (int) Long.remainderUnsigned(h, keys);
  }

  /** SplitMix64's finaliser. */
  static long mix64(long z) {
    z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
    z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
    return z ^ (z >>> 31);
  }

  interface Sampler {
    int next();
  }

  static Sampler uniform(int keys, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    return () -> r.nextInt(keys);
  }

  /** Zipf over ranks 0..keys-1 with P(rank r) proportional to 1 / (r + 1)^exponent; key = rank. */
  static Sampler zipf(int keys, double exponent, long seed) {
    double[] cdf = zipfCdf(keys, exponent);
    SplittableRandom r = new SplittableRandom(seed);
    return () -> {
      double u = r.nextDouble();
      int lo = 0;
      int hi = keys - 1;
      while (lo < hi) {
        int mid = (lo + hi) >>> 1;
        if (cdf[mid] < u) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
  }

  private static double[] zipfCdf(int keys, double exponent) {
    String id = keys + "/" + exponent;
    synchronized (Keys.class) {
      if (cachedCdf != null && cachedCdfFor.equals(id)) return cachedCdf;
      double[] cdf = new double[keys];
      double sum = 0;
      for (int i = 0; i < keys; i++) {
        sum += 1.0 / Math.pow(i + 1, exponent);
        cdf[i] = sum;
      }
      for (int i = 0; i < keys; i++) cdf[i] /= sum;
      cdf[keys - 1] = 1.0;
      cachedCdf = cdf;
      cachedCdfFor = id;
      return cdf;
    }
  }
}
