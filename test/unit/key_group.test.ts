// Proves murmur3 matches MurmurHash3_x86_32 reference vectors, the allocation-free string path
// agrees with hashing the UTF-8 bytes, and key-group ranges partition [0, G) the way Flink does so
// rescaling only moves whole key groups.
import { describe, expect, it } from 'vitest';
import { InvariantError } from '../../shared/errors.js';
import { keyGroupOf, keyGroupRange, keyGroupRangeStart, murmur3, murmur3String, ownerTable } from '../../shared/key_group.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('murmur3 (MurmurHash3_x86_32)', () => {
  // Reference values: SMHasher's published vectors, cross-checked with Python's `mmh3` 5.3.1
  // (`mmh3.hash(data, seed, signed=False)`).
  const vectors: [Uint8Array, number, number][] = [
    [new Uint8Array(0), 0, 0x00000000],
    [new Uint8Array(0), 1, 0x514e28b7],
    [new Uint8Array(0), 0xffffffff, 0x81f16f39],
    [new Uint8Array(4), 0, 0x2362f9de],
    [Uint8Array.of(0xff, 0xff, 0xff, 0xff), 0, 0x76293b50],
    [utf8('a'), 0, 0x3c2569b2],
    [utf8('ab'), 0, 0x9bbfd75f],
    [utf8('abc'), 0, 0xb3dd93fa],
    [utf8('abcd'), 0, 0x43ed676a],
    [utf8('abcde'), 0, 0xe89b9af6],
    [utf8('hello'), 0, 0x248bfa47],
    [utf8('Hello, world!'), 0, 0xc0363e43],
    [utf8('Hello, world!'), 0x9747b28c, 0x24884cba],
    [utf8('The quick brown fox jumps over the lazy dog'), 0, 0x2e4ff723],
    [utf8('The quick brown fox jumps over the lazy dog'), 0x9747b28c, 0x2fa826cd],
    [utf8('a'), 0x9747b28c, 0x7fa09ea6],
    [utf8('aa'), 0x9747b28c, 0x5d211726],
    [utf8('aaa'), 0x9747b28c, 0x283e0130],
    [utf8('aaaa'), 0x9747b28c, 0x5a97808a],
    [utf8('abcd'), 0x9747b28c, 0xf0478627],
    [utf8('user-42'), 0, 0xb972dad0],
    [utf8('héllo wörld'), 0, 0x97f7f274],
    [utf8('日本語のキー'), 0, 0x363275b6],
    [utf8('😀'), 0, 0xbeb42efa],
    [Uint8Array.from({ length: 256 }, (_, i) => i), 0, 0xe40a0e56],
  ];

  it('matches the reference vectors (all tail lengths, seeds, high bytes)', () => {
    for (const [bytes, seed, want] of vectors) {
      expect(murmur3(bytes, seed), `${Buffer.from(bytes).toString('hex')} seed ${seed}`).toBe(want);
    }
  });

  it('returns an unsigned 32-bit integer', () => {
    for (let i = 0; i < 1000; i++) {
      const h = murmur3(utf8(`k${i}`));
      expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
    }
  });

  it('reads only the view it is given (subarray with an offset)', () => {
    const backing = utf8('xxHello, world!yy');
    expect(murmur3(backing.subarray(2, 15))).toBe(0xc0363e43);
  });
});

describe('murmur3String', () => {
  it('equals murmur3 of the UTF-8 bytes for the reference strings', () => {
    for (const s of ['', 'a', 'ab', 'abc', 'abcd', 'abcde', 'hello', 'Hello, world!', 'user-42', 'héllo wörld', '日本語のキー', '😀']) {
      expect(murmur3String(s), JSON.stringify(s)).toBe(murmur3(utf8(s)));
    }
    expect(murmur3String('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723);
  });

  it('equals murmur3(utf8(s)) for ASCII strings of every length 0..64 (every remainder mod 4)', () => {
    for (let len = 0; len <= 64; len++) {
      for (let variant = 0; variant < 8; variant++) {
        let s = '';
        for (let j = 0; j < len; j++) s += String.fromCharCode(1 + ((len * 31 + j * 17 + variant * 7) % 127));
        expect(murmur3String(s), `len ${len} variant ${variant}`).toBe(murmur3(utf8(s)));
      }
    }
  });

  it('equals murmur3(utf8(s)) when a non-ASCII character sits in a full block or in the tail', () => {
    const specials = ['\u0080', 'é', 'ÿ', 'Ā', '€', '\u07ff', '\u0800', '\uffff', '😀', '\ud800' /* lone surrogate */];
    for (const c of specials) {
      for (let len = 1; len <= 13; len++) {
        for (let pos = 0; pos < len; pos++) {
          const chars = Array.from({ length: len }, (_, j) => String.fromCharCode(97 + (j % 26)));
          chars[pos] = c;
          const s = chars.join('');
          expect(murmur3String(s), `${JSON.stringify(s)}`).toBe(murmur3(utf8(s)));
        }
      }
    }
  });

  it('treats 0x7f as ASCII and 0x80 as not (boundary of the fast path)', () => {
    for (const s of ['\u007f', 'abc\u007f', 'abcd\u007f', '\u0080', 'abc\u0080', 'abcd\u0080']) {
      expect(murmur3String(s)).toBe(murmur3(utf8(s)));
    }
  });

  it('agrees with murmur3(utf8) on seeded random strings mixing ASCII and non-ASCII', () => {
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed % n;
    };
    for (let t = 0; t < 2000; t++) {
      const len = rnd(40);
      let s = '';
      for (let j = 0; j < len; j++) {
        const r = rnd(10);
        s += r < 7 ? String.fromCharCode(32 + rnd(95)) : r < 9 ? String.fromCharCode(0x80 + rnd(0x7f80)) : '😀';
      }
      expect(murmur3String(s), JSON.stringify(s)).toBe(murmur3(utf8(s)));
    }
  });
});

describe('key groups', () => {
  it('keyGroupOf is murmur3 of the id mod G', () => {
    for (const G of [1, 128, 256, 4096, 32768]) {
      for (const id of ['', 'a', 'user-42', 'héllo', '😀']) {
        const kg = keyGroupOf(id, G);
        expect(kg).toBe(murmur3(utf8(id)) % G);
        expect(kg >= 0 && kg < G).toBe(true);
      }
    }
    expect(keyGroupOf('user-42', 256)).toBe(0xb972dad0 % 256);
  });

  it('spreads ids over key groups', () => {
    const G = 128;
    const counts = new Array<number>(G).fill(0);
    for (let i = 0; i < 128_000; i++) counts[keyGroupOf(`user-${i}`, G)]!++;
    // Expected 1000 per group; a fair hash stays well within +-25%.
    expect(Math.min(...counts)).toBeGreaterThan(750);
    expect(Math.max(...counts)).toBeLessThan(1250);
  });

  it('keyGroupRange partitions [0, G) into contiguous ranges, each key group exactly once', () => {
    for (const G of [1, 2, 3, 7, 10, 128, 129, 255, 256, 1000, 4096]) {
      for (let N = 1; N <= Math.min(G, 70); N++) {
        const seen = new Uint8Array(G);
        let expectedStart = 0;
        let minSize = Infinity;
        let maxSize = 0;
        for (let w = 0; w < N; w++) {
          const { start, end } = keyGroupRange(w, N, G);
          expect(start, `G=${G} N=${N} w=${w}`).toBe(expectedStart);
          expect(end).toBeGreaterThan(start); // N <= G: nobody is empty
          for (let k = start; k < end; k++) seen[k]!++;
          expectedStart = end;
          minSize = Math.min(minSize, end - start);
          maxSize = Math.max(maxSize, end - start);
        }
        expect(expectedStart, `G=${G} N=${N}`).toBe(G);
        expect(
          seen.every((c) => c === 1),
          `G=${G} N=${N}`,
        ).toBe(true);
        expect(maxSize - minSize).toBeLessThanOrEqual(1); // balanced
      }
    }
  });

  it("matches Flink's KeyGroupRangeAssignment formulas", () => {
    for (const G of [128, 256, 1000]) {
      for (const N of [1, 3, 7, 16, 100]) {
        for (let w = 0; w < N; w++) {
          const { start, end } = keyGroupRange(w, N, G);
          // computeKeyGroupRangeForOperatorIndex: start = (w*G + N - 1) / N, end (inclusive) = ((w+1)*G - 1) / N
          expect(start).toBe(Math.floor((w * G + N - 1) / N));
          expect(end - 1).toBe(Math.floor(((w + 1) * G - 1) / N));
          expect(keyGroupRangeStart(w, N, G)).toBe(start);
        }
      }
    }
  });

  it("ownerTable agrees with keyGroupRange and with Flink's operator index kg*N/G", () => {
    for (const G of [1, 5, 128, 256, 1000, 4096]) {
      for (const N of [1, 2, 3, 4, 7, 13, 64].filter((n) => n <= G)) {
        const table = ownerTable(N, G);
        expect(table.length).toBe(G);
        for (let w = 0; w < N; w++) {
          const { start, end } = keyGroupRange(w, N, G);
          for (let k = start; k < end; k++) expect(table[k]).toBe(w);
        }
        for (let k = 0; k < G; k++) expect(table[k]).toBe(Math.floor((k * N) / G));
      }
    }
  });

  it('rejects worker counts outside [1, G] and bad worker indexes', () => {
    expect(() => keyGroupRange(0, 0, 128)).toThrow(InvariantError);
    expect(() => keyGroupRange(0, 129, 128)).toThrow(InvariantError);
    expect(() => keyGroupRange(-1, 4, 128)).toThrow(InvariantError);
    expect(() => keyGroupRange(4, 4, 128)).toThrow(InvariantError);
    expect(() => ownerTable(0, 128)).not.toThrow(); // no workers: nothing to fill
  });

  it('keeps every id in its key group when the worker count changes; only ownership moves', () => {
    const G = 256;
    const ids = Array.from({ length: 5000 }, (_, i) => `account-${i * 7919}`);
    const groups = ids.map((id) => keyGroupOf(id, G));
    for (const [from, to] of [
      [1, 2],
      [2, 3],
      [4, 8],
      [8, 5],
      [16, 1],
      [7, 256],
    ] as const) {
      const before = ownerTable(from, G);
      const after = ownerTable(to, G);
      // The key group of an id depends on the id and G only.
      expect(ids.map((id) => keyGroupOf(id, G))).toEqual(groups);
      // Ids that share a key group stay together: they move as a whole with it.
      const ownerOf = new Map<number, number>();
      ids.forEach((id, i) => {
        const kg = groups[i]!;
        const w = after[kg]!;
        if (ownerOf.has(kg)) expect(ownerOf.get(kg)).toBe(w);
        ownerOf.set(kg, w);
        expect(w).toBe(after[keyGroupOf(id, G)]);
      });
      // Ownership of each key group in both layouts comes straight from the ranges.
      for (let k = 0; k < G; k++) {
        const wb = before[k]!;
        const wa = after[k]!;
        expect(k >= keyGroupRange(wb, from, G).start && k < keyGroupRange(wb, from, G).end).toBe(true);
        expect(k >= keyGroupRange(wa, to, G).start && k < keyGroupRange(wa, to, G).end).toBe(true);
      }
    }
  });

  it('doubling the worker count splits each range in two (no key group moves between survivors)', () => {
    const G = 256;
    for (const N of [1, 2, 4, 8, 16, 32]) {
      const before = ownerTable(N, G);
      const after = ownerTable(2 * N, G);
      for (let k = 0; k < G; k++) expect(Math.floor(after[k]! / 2)).toBe(before[k]);
    }
  });
});
