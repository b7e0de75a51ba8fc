/**
 * Where hop i of the chain started at key k runs, the same for every system of the peer
 * benchmark: statefn's chain app, its HTTP load client, and the Restate load generator (the Restate
 * service, `restate/service.mjs`, is plain JavaScript and carries the same two functions).
 */

/** FNV-1a (32 bit) of a string's UTF-16 code units (ASCII keys: the bytes). */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Key of hop `i` of the chain started for `key`: hash(key, i) mod keys. */
export function hopKey(key: string, i: number, keys: number): string {
  return String(fnv1a(`${key}:${i}`) % keys);
}
