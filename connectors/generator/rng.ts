/**
 * A small seeded pseudo-random number generator for load generators and tests: xoshiro128**
 * (Blackman & Vigna), 32-bit state words, fast in JavaScript because every step is a 32-bit
 * integer operation (`Math.imul`, shifts). The same seed gives the same stream on every run and
 * every platform.
 *
 * Seeding goes through a 32-bit integer hash (Wellons' "lowbias32" finalizer) so that nearby
 * seeds, or one seed with nearby stream numbers (`createRng(seed, index)`), give unrelated
 * streams. The generator ingress relies on that: it reseeds from (seed, record index) so that any
 * record can be regenerated on its own.
 *
 * Zipf sampling uses rejection-inversion (Hörmann & Derflinger 1996, as in Apache Commons RNG's
 * `RejectionInversionZipfSampler`): O(1) memory and O(1) expected time for any number of ranks,
 * so `zipf(10_000_000, 1.1)` costs the same as `zipf(10, 1.1)`.
 */
import { ErrorCode, StatefnError } from '../../shared/errors.js';

/** A deterministic random stream. */
export interface Rng {
  /** A uniform number in [0, 1) with 32 bits of resolution. */
  next(): number;
  /** A uniform integer in [0, n), without modulo bias; n is an integer in [1, 2^32]. */
  int(n: number): number;
  /**
   * A Zipf-distributed rank in [0, n): rank k is drawn with probability proportional to
   * 1 / (k + 1)^s. `s` = 0 is uniform; larger `s` is more skewed (1.0 is the classic Zipf law).
   * `n` is an integer in [1, 2^53); memory use does not depend on `n`.
   */
  zipf(n: number, s: number): number;
}

const TWO_POW_32 = 4294967296;
const INV_TWO_POW_32 = 1 / TWO_POW_32;

/** Wellons' lowbias32: a 32-bit integer hash with good avalanche. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x21f0aaad);
  x ^= x >>> 15;
  x = Math.imul(x, 0x735a2d97);
  x ^= x >>> 15;
  return x >>> 0;
}

/** Low and high 32-bit halves of a non-negative safe integer (or of a negative one's magnitude). */
function halves(v: number): [number, number] {
  const m = Math.abs(v);
  const lo = m >>> 0;
  const hi = Math.floor(m / TWO_POW_32) >>> 0;
  return [lo, v < 0 ? hi ^ 0x80000000 : hi];
}

function checkSeed(v: number, where: string): void {
  if (!Number.isSafeInteger(v)) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}: expected a safe integer, got ${String(v)}; pass an integer such as 42`);
  }
}

/** Constants of a rejection-inversion Zipf sampler for one (n, s). */
interface ZipfTable {
  n: number;
  s: number;
  hIntegralX1: number;
  hIntegralN: number;
  threshold: number;
}

/**
 * xoshiro128**. Exported as a class so hot loops (the generator ingress) can `reseed` one
 * instance per record instead of allocating one.
 */
export class Xoshiro128 implements Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  // One cached sampler: callers normally draw from one distribution over and over, and the
  // constants cost a few logarithms to compute.
  private zipfTable: ZipfTable | undefined;

  constructor(seed: number, stream = 0) {
    this.reseed(seed, stream);
  }

  /** Restart the stream from (seed, stream); equivalent to `createRng(seed, stream)`. */
  reseed(seed: number, stream = 0): void {
    const [seedLo, seedHi] = halves(seed);
    const [streamLo, streamHi] = halves(stream);
    // Hash every input word into one 32-bit key, then expand it with a splitmix-style counter
    // (golden-ratio increments through the hash) into the four state words.
    let h = mix32(seedLo ^ 0x9e3779b9);
    h = mix32(h ^ seedHi ^ 0x85ebca6b);
    h = mix32(h ^ streamLo ^ 0xc2b2ae35);
    h = mix32(h ^ streamHi ^ 0x27d4eb2f);
    // A second independent key so the state has more than 32 bits of entropy across streams.
    let g = mix32(streamLo ^ mix32(seedLo ^ 0x165667b1));
    g = mix32(g ^ mix32(streamHi ^ seedHi ^ 0x7f4a7c15));
    this.s0 = mix32(h + 0x9e3779b9);
    this.s1 = mix32(g + 0x3c6ef372);
    this.s2 = mix32((h ^ g) + 0xdaa66d2b);
    this.s3 = mix32(h + g + 0x78dde6e4);
    // xoshiro's only forbidden state is all zeros.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next 32-bit output as an unsigned integer. */
  nextUint32(): number {
    const s1 = this.s1;
    let r = Math.imul(s1, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return r >>> 0;
  }

  next(): number {
    return this.nextUint32() * INV_TWO_POW_32;
  }

  int(n: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n <= TWO_POW_32)) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `rng.int(n): expected an integer n in [1, 2^32], got ${String(n)}`);
    }
    // Rejection sampling: drop the top partial block of 2^32 so every residue is equally likely.
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  zipf(n: number, s: number): number {
    let t = this.zipfTable;
    if (t === undefined || t.n !== n || t.s !== s) t = this.zipfTable = zipfTable(n, s);
    if (s === 0) return this.uniformBelow(n);
    // Rejection-inversion: draw u uniformly in (H(x1), H(n + 1/2)], invert the integral of the
    // hat function, round to the nearest rank, and accept unless the rounding landed in the
    // small region where the hat exceeds the true probability mass.
    for (;;) {
      const u = t.hIntegralN + this.next() * (t.hIntegralX1 - t.hIntegralN);
      const x = hIntegralInverse(u, s);
      let k = Math.floor(x + 0.5);
      if (k < 1) k = 1;
      else if (k > n) k = n;
      if (k - x <= t.threshold || u >= hIntegral(k + 0.5, s) - h(k, s)) return k - 1;
    }
  }

  /** Uniform integer in [0, n) for n up to 2^53 (53-bit draw when n exceeds 32 bits). */
  private uniformBelow(n: number): number {
    if (n <= TWO_POW_32) return this.int(n);
    const x = (this.nextUint32() >>> 5) * 67108864 + (this.nextUint32() >>> 6); // 53 bits
    return Math.floor((x / 9007199254740992) * n);
  }
}

function zipfTable(n: number, s: number): ZipfTable {
  if (!(Number.isSafeInteger(n) && n >= 1)) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `rng.zipf(n, s): expected an integer n >= 1, got ${String(n)}`);
  }
  if (!(Number.isFinite(s) && s >= 0)) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `rng.zipf(n, s): expected an exponent s >= 0, got ${String(s)}; use 1 for the classic Zipf law`,
    );
  }
  const hIntegralX1 = hIntegral(1.5, s) - 1;
  return {
    n,
    s,
    hIntegralX1,
    hIntegralN: hIntegral(n + 0.5, s),
    threshold: 2 - hIntegralInverse(hIntegral(2.5, s) - h(2, s), s),
  };
}

/** h(x) = x^-s, the (unnormalised) hat density. */
function h(x: number, s: number): number {
  return Math.exp(-s * Math.log(x));
}

/** H(x) = integral of h, shifted so it is well defined at s = 1: (x^(1-s) - 1) / (1 - s). */
function hIntegral(x: number, s: number): number {
  const logX = Math.log(x);
  return helper2((1 - s) * logX) * logX;
}

function hIntegralInverse(x: number, s: number): number {
  let t = x * (1 - s);
  if (t < -1) t = -1; // numerical guard: the exact value is never below -1
  return Math.exp(helper1(t) * x);
}

/** log1p(x) / x, accurate near 0. */
function helper1(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - 0.25 * x));
}

/** expm1(x) / x, accurate near 0. */
function helper2(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + (x / 3) * (1 + 0.25 * x));
}

/**
 * A deterministic random stream from `seed` (a safe integer). `stream` selects an independent
 * sub-stream of the same seed, e.g. one per record index.
 */
export function createRng(seed: number, stream = 0): Xoshiro128 {
  checkSeed(seed, 'createRng(seed)');
  checkSeed(stream, 'createRng(seed, stream)');
  return new Xoshiro128(seed, stream);
}
