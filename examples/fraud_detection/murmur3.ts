/**
 * MurmurHash3 (x86, 32-bit, seed 0) of a string's UTF-8 bytes: the merchant scorer's stand-in
 * for a third-party risk service. The example carries its own copy so that it imports nothing
 * but the public 'statefn' API; it is the same hash statefn routes keys by, which keeps every
 * merchant's score identical to the one earlier versions of the example computed.
 */
const encoder = new TextEncoder();

/** Multiplication constants of MurmurHash3's block mix and finalizer (part of the algorithm). */
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const F1 = 0x85ebca6b;
const F2 = 0xc2b2ae35;

function mixBlock(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

/** The 32-bit hash of `s` as an unsigned integer in [0, 2^32). */
export function murmur3String(s: string): number {
  const bytes = encoder.encode(s);
  const n = bytes.length;
  const blocks = n & ~3;
  let h = 0;
  for (let i = 0; i < blocks; i += 4) {
    h ^= mixBlock((bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  // The 1 to 3 trailing bytes, little-endian: MurmurHash3's falling-through tail switch, as ifs.
  const tail = n & 3;
  let k = 0;
  if (tail >= 3) k ^= bytes[blocks + 2]! << 16;
  if (tail >= 2) k ^= bytes[blocks + 1]! << 8;
  if (tail >= 1) {
    k ^= bytes[blocks]!;
    h ^= mixBlock(k);
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, F1);
  h ^= h >>> 13;
  h = Math.imul(h, F2);
  h ^= h >>> 16;
  return h >>> 0;
}
