/**
 * Key groups: the unit of state ownership. `keyGroupOf(id) = murmur3_32(utf8(id)) mod G`, with G
 * fixed for the life of an application's state. Like StateFun, only the id is hashed, so all
 * function types with the same id live in the same key group (and on the same worker).
 *
 * Workers own contiguous ranges of key groups, computed exactly as Flink does
 * (`[ceil(w*G/N), ceil((w+1)*G/N))`), so the same G with another worker count N only moves whole
 * key groups between workers: rescaling never re-hashes a key.
 */
import { assert } from './errors.js';

const encoder = new TextEncoder();

/** MurmurHash3 x86 32-bit of a byte array, seed 0. */
export function murmur3(bytes: Uint8Array, seed = 0): number {
  let h = seed >>> 0;
  const n = bytes.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  // The 1 to 3 tail bytes, as murmur3's fall-through switch does it (written as ifs because the
  // compiler rejects switch fall-through).
  const tail = n & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[blocks + 2]! << 16;
    if (tail >= 2) k ^= bytes[blocks + 1]! << 8;
    k ^= bytes[blocks]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * MurmurHash3 of the UTF-8 bytes of `s`, without allocating for ASCII strings (the common case
 * for ids). Non-ASCII strings are encoded first so the result matches any other language's
 * murmur3 over UTF-8.
 */
export function murmur3String(s: string): number {
  const n = s.length;
  let h = 0;
  let i = 0;
  const blocks = n & ~3;
  for (; i < blocks; i += 4) {
    const c0 = s.charCodeAt(i);
    const c1 = s.charCodeAt(i + 1);
    const c2 = s.charCodeAt(i + 2);
    const c3 = s.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) > 0x7f) return murmur3(encoder.encode(s));
    let k = (c0 | (c1 << 8) | (c2 << 16) | (c3 << 24)) >>> 0;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  for (let j = i; j < n; j++) if (s.charCodeAt(j) > 0x7f) return murmur3(encoder.encode(s));
  // The tail, as in murmur3 above.
  const tail = n & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= s.charCodeAt(i + 2) << 16;
    if (tail >= 2) k ^= s.charCodeAt(i + 1) << 8;
    k ^= s.charCodeAt(i);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The key group of a function id. */
export function keyGroupOf(id: string, keyGroups: number): number {
  return murmur3String(id) % keyGroups;
}

/** First key group owned by `worker` of `workers` (inclusive). */
export function keyGroupRangeStart(worker: number, workers: number, keyGroups: number): number {
  return Math.ceil((worker * keyGroups) / workers);
}

/** The key groups `[start, end)` owned by `worker`. */
export function keyGroupRange(worker: number, workers: number, keyGroups: number): { start: number; end: number } {
  assert(workers >= 1 && workers <= keyGroups, 'workers must be in [1, keyGroups]');
  assert(worker >= 0 && worker < workers, 'worker index out of range');
  return {
    start: keyGroupRangeStart(worker, workers, keyGroups),
    end: keyGroupRangeStart(worker + 1, workers, keyGroups),
  };
}

/**
 * A precomputed key group -> worker table (a Uint16Array lookup is cheaper than the division on
 * the routing hot path).
 */
export function ownerTable(workers: number, keyGroups: number): Uint16Array {
  const table = new Uint16Array(keyGroups);
  for (let w = 0; w < workers; w++) {
    const { start, end } = keyGroupRange(w, workers, keyGroups);
    table.fill(w, start, end);
  }
  return table;
}
