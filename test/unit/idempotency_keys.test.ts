// Proves the HTTP ingress's idempotency-key log keeps exactly the newest keys within its count and
// age bounds through appends, compactions and growth, and that its position round-trips.
import { describe, expect, it } from 'vitest';
import { IdempotencyKeys, KEY_RECORD_BYTES, keyHash, requestHash } from '../../connectors/http/idempotency_keys.js';
import { ErrorCode } from '../../shared/errors.js';

const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const k = (i: number) => keyHash(`key-${i}`);

describe('IdempotencyKeys', () => {
  it('keeps the newest countMax keys through compactions and growth', () => {
    const keys = new IdempotencyKeys(3000, DAY);
    const sizes: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      keys.add(k(i), i, T0);
      if (i % 1000 === 999) sizes.push(keys.size);
    }
    expect(sizes).toEqual([1000, 2000, ...Array<number>(18).fill(3000)]);
    const found = Array.from({ length: 20_000 }, (_, i) => keys.lookup(k(i), T0));
    expect(found.slice(0, 17_000).every((v) => v === undefined)).toBe(true);
    expect(found.slice(17_000)).toEqual(Array.from({ length: 3000 }, (_, i) => 17_000 + i));
  });

  it('round-trips its position, keeping the newest countMax of a larger one', () => {
    const a = new IdempotencyKeys(100, DAY);
    for (let i = 0; i < 150; i++) a.add(k(i), i * 7, T0 + i * 1000);
    const pos = a.position();
    expect(Buffer.from(pos.keys, 'base64').length).toBe(100 * KEY_RECORD_BYTES);
    expect(JSON.parse(JSON.stringify(pos))).toEqual(pos);
    const b = new IdempotencyKeys(100, DAY);
    b.seek(JSON.parse(JSON.stringify(pos)), 'test');
    for (let i = 0; i < 150; i++) expect(b.lookup(k(i), T0 + 150_000)).toBe(i < 50 ? undefined : i * 7);
    const c = new IdempotencyKeys(10, DAY);
    c.seek(pos, 'test');
    expect(c.size).toBe(10);
    expect(c.lookup(k(139), T0 + 150_000)).toBeUndefined();
    expect(c.lookup(k(140), T0 + 150_000)).toBe(140 * 7);
  });

  it('forgets keys past their age, never before it, and a key seen again is kept anew', () => {
    const keys = new IdempotencyKeys(1000, 60_000);
    keys.add(k(1), 1, T0 + 500); // kept as T0 + 1 s: rounded up, so never forgotten early
    keys.add(k(2), 2, T0 + 30_000);
    expect(keys.lookup(k(1), T0 + 60_500)).toBe(1);
    expect(keys.lookup(k(1), T0 + 61_001)).toBeUndefined();
    expect(keys.size).toBe(1);
    expect(keys.lookup(k(2), T0 + 61_001)).toBe(2);
    keys.add(k(1), 9, T0 + 61_001);
    expect(keys.lookup(k(1), T0 + 61_001)).toBe(9);
    // A clock that went back: an old record behind a younger head is still not answered.
    const back = new IdempotencyKeys(1000, 60_000);
    back.add(k(3), 3, T0 + 100_000);
    back.add(k(4), 4, T0);
    expect(back.lookup(k(4), T0 + 90_000)).toBeUndefined();
    expect(back.lookup(k(3), T0 + 90_000)).toBe(3);
  });

  it('a key re-added after its old record was overtaken is not dropped with the old record', () => {
    const keys = new IdempotencyKeys(3, 60_000);
    keys.add(k(1), 1, T0);
    keys.add(k(1), 2, T0 + 61_000); // the first record expired; the new one is kept
    keys.add(k(2), 3, T0 + 61_000);
    keys.add(k(3), 4, T0 + 61_000);
    expect(keys.lookup(k(1), T0 + 61_000)).toBe(2);
  });

  it('is off with countMax 0, caches its position, and rejects a position that is not its own', () => {
    const off = new IdempotencyKeys(0, DAY);
    off.add(k(1), 1, T0);
    expect(off.enabled).toBe(false);
    expect(off.lookup(k(1), T0)).toBeUndefined();
    const keys = new IdempotencyKeys(10, DAY);
    keys.add(k(1), 1, T0);
    expect(keys.position()).toBe(keys.position());
    for (const bad of [{ offset: 5 }, { v: 1, keys: 'AAAA' }, null, 'x']) {
      let thrown: { code?: string; message?: string } = {};
      try {
        keys.seek(bad, "http ingress 'a/b'");
      } catch (e) {
        thrown = e as { code?: string; message?: string };
      }
      expect(thrown.code).toBe(ErrorCode.STATE_DIR_INVALID);
      expect(thrown.message).toMatch(/http ingress 'a\/b'/);
    }
  });

  it('hashes the target, type and body, so any of them changing is another request', () => {
    const body = new TextEncoder().encode('x');
    const h = requestHash('a/b', 'id', 'a/T', body);
    expect(requestHash('a/b', 'id', 'a/T', new TextEncoder().encode('x'))).toBe(h);
    expect(requestHash('a/b', 'id2', 'a/T', body)).not.toBe(h);
    expect(requestHash('a/c', 'id', 'a/T', body)).not.toBe(h);
    expect(requestHash('a/b', 'id', 'a/U', body)).not.toBe(h);
    expect(requestHash('a/b', 'id', 'a/T', new TextEncoder().encode('y'))).not.toBe(h);
  });
});
