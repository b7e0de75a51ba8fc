// Proves the seeded RNG is deterministic (pinned outputs), stays in range, and that zipf() follows Zipf's law for small and huge n.
import { describe, expect, it } from 'vitest';
import { StatefnError } from '../../shared/errors.js';
import { Xoshiro128, createRng } from '../../connectors/generator/rng.js';

function draws(seed: number, stream: number, count: number): number[] {
  const rng = createRng(seed, stream);
  return Array.from({ length: count }, () => rng.nextUint32());
}

describe('createRng', () => {
  it('gives the same stream for the same seed, pinned across versions', () => {
    expect(draws(1, 0, 4)).toEqual([3878947913, 3960018145, 243032935, 1402262172]);
    expect(draws(12345, 7, 100)).toEqual(draws(12345, 7, 100));
  });

  it('implements xoshiro128** exactly (reference outputs for state 1,2,3,4)', () => {
    const rng = new Xoshiro128(0);
    Object.assign(rng, { s0: 1, s1: 2, s2: 3, s3: 4 });
    expect(Array.from({ length: 4 }, () => rng.nextUint32())).toEqual([11520, 0, 5927040, 70819200]);
  });

  it('gives unrelated streams for nearby seeds and nearby stream numbers', () => {
    const streams = [draws(1, 0, 8), draws(2, 0, 8), draws(1, 1, 8), draws(1, 2, 8), draws(-1, 0, 8), draws(2 ** 32 + 1, 0, 8)];
    const firsts = new Set(streams.map((s) => s.join(',')));
    expect(firsts.size).toBe(streams.length);
  });

  it('reseed(seed, stream) restarts exactly the stream createRng(seed, stream) gives', () => {
    const rng = createRng(99);
    rng.next();
    rng.reseed(5, 1_000_000_007);
    const a = Array.from({ length: 10 }, () => rng.next());
    const b = createRng(5, 1_000_000_007);
    expect(a).toEqual(Array.from({ length: 10 }, () => b.next()));
  });

  it('rejects seeds that are not safe integers, naming the argument', () => {
    expect(() => createRng(1.5)).toThrow(StatefnError);
    expect(() => createRng(1, Number.NaN)).toThrow(/createRng\(seed, stream\)/);
  });
});

describe('next and int', () => {
  it('next() is in [0, 1) and roughly uniform', () => {
    const rng = createRng(3);
    const buckets = new Array<number>(10).fill(0);
    let outOfRange = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = rng.next();
      if (!(x >= 0 && x < 1)) outOfRange++;
      else buckets[Math.floor(x * 10)]!++;
    }
    expect(outOfRange).toBe(0);
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(600);
  });

  it('int(n) is an integer in [0, n), covering every value, also for n = 1 and n = 2^32', () => {
    const rng = createRng(4);
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) seen.add(rng.int(7));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(rng.int(1)).toBe(0);
    const big = rng.int(2 ** 32);
    expect(Number.isInteger(big) && big >= 0 && big < 2 ** 32).toBe(true);
  });

  it('int(n) rejects a bad n with a message naming the call', () => {
    const rng = createRng(4);
    expect(() => rng.int(0)).toThrow(/rng\.int\(n\)/);
    expect(() => rng.int(2.5)).toThrow(StatefnError);
    expect(() => rng.int(2 ** 32 + 1)).toThrow(StatefnError);
  });
});

describe('zipf', () => {
  const harmonic = (n: number, s: number): number => {
    let h = 0;
    for (let k = 1; k <= n; k++) h += 1 / k ** s;
    return h;
  };

  it('matches the exact Zipf probabilities for n = 1000, s = 1', () => {
    const rng = createRng(11);
    const n = 1000;
    const samples = 200_000;
    const counts = new Array<number>(n).fill(0);
    let outOfRange = 0;
    for (let i = 0; i < samples; i++) {
      const k = rng.zipf(n, 1);
      if (!(Number.isInteger(k) && k >= 0 && k < n)) outOfRange++;
      else counts[k]!++;
    }
    expect(outOfRange).toBe(0);
    const h = harmonic(n, 1);
    // The ten most frequent ranks, each within 10% of its expected count (>= 2,600 samples each).
    for (let k = 0; k < 10; k++) {
      const expected = samples / (k + 1) / h;
      expect(Math.abs(counts[k]! - expected) / expected).toBeLessThan(0.1);
    }
    // The skew itself: rank 0 is twice as frequent as rank 1, and the top 1% of ranks carry
    // about half the mass (H(10)/H(1000) = 0.391).
    expect(counts[0]! / counts[1]!).toBeGreaterThan(1.8);
    expect(counts[0]! / counts[1]!).toBeLessThan(2.2);
    const top10 = counts.slice(0, 10).reduce((a, b) => a + b, 0) / samples;
    expect(Math.abs(top10 - harmonic(10, 1) / h)).toBeLessThan(0.01);
  });

  it('matches the exact probabilities for a small n and steep s (n = 5, s = 2)', () => {
    const rng = createRng(12);
    const counts = new Array<number>(5).fill(0);
    const samples = 100_000;
    for (let i = 0; i < samples; i++) counts[rng.zipf(5, 2)]!++;
    const h = harmonic(5, 2);
    for (let k = 0; k < 5; k++) {
      const p = 1 / (k + 1) ** 2 / h;
      expect(Math.abs(counts[k]! / samples - p)).toBeLessThan(0.006);
    }
  });

  it('is uniform for s = 0 and constant for n = 1', () => {
    const rng = createRng(13);
    const counts = new Array<number>(4).fill(0);
    for (let i = 0; i < 40_000; i++) counts[rng.zipf(4, 0)]!++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(600);
    for (let i = 0; i < 100; i++) expect(rng.zipf(1, 1.2)).toBe(0);
  });

  it('samples n = 10^7 without a table: ranks in range, head-heavy, long tail reached', () => {
    const rng = createRng(14);
    const n = 10_000_000;
    const heapBefore = process.memoryUsage().heapUsed;
    let zeros = 0;
    let beyondMillion = 0;
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < 100_000; i++) {
      const k = rng.zipf(n, 1.1);
      if (k < min) min = k;
      if (k > max) max = k;
      if (k === 0) zeros++;
      if (k >= 1_000_000) beyondMillion++;
    }
    expect(min).toBe(0);
    expect(Number.isInteger(max) && max < n).toBe(true);
    // P(rank 0) = 1 / H(10^7, 1.1) ~= 1 / 8.59 ~= 0.116; about 6% of draws land beyond rank 10^6.
    expect(zeros / 100_000).toBeGreaterThan(0.1);
    expect(zeros / 100_000).toBeLessThan(0.125);
    expect(beyondMillion).toBeGreaterThan(0);
    // A CDF table for 10^7 ranks would be 80 MB; the sampler keeps a handful of numbers.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(16 * 1024 * 1024);
  });

  it('is deterministic given the seed', () => {
    const a = createRng(15);
    const b = createRng(15);
    for (let i = 0; i < 1000; i++) expect(a.zipf(1000, 0.99)).toBe(b.zipf(1000, 0.99));
  });

  it('rejects bad arguments with a message naming the call', () => {
    const rng = createRng(16);
    expect(() => rng.zipf(0, 1)).toThrow(/rng\.zipf\(n, s\)/);
    expect(() => rng.zipf(10, -1)).toThrow(StatefnError);
  });
});
