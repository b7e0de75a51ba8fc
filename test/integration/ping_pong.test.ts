// Proves cyclic messaging across all workers (worker<->worker rings in every direction plus
// self-sends) delivers exactly the expected messages per address, with default and with small rings
// (outboxes and wrap-around), without deadlock.
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { keyGroupOf, keyGroupRange } from '../../shared/key_group.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { PLAYER, ASK } from '../fixtures/apps/ping_pong_app.js';
import {
  MemoryLogger,
  TempDirs,
  type StatsPeaks,
  egressOf,
  ingressOf,
  jsonRecords,
  orFail,
  sampleStats,
} from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/ping_pong_app.ts', import.meta.url).pathname;
const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

const WORKERS = 4;
const KEY_GROUPS = 256;

function workerOf(id: string): number {
  const kg = keyGroupOf(id, KEY_GROUPS);
  for (let w = 0; w < WORKERS; w++) {
    const r = keyGroupRange(w, WORKERS, KEY_GROUPS);
    if (kg >= r.start && kg < r.end) return w;
  }
  throw new Error(`no owner for key group ${kg}`);
}

interface Pair {
  a: string;
  b: string;
}

/**
 * `pairs` pairs whose two ids live on different workers, spread so that every unordered pair of
 * workers carries traffic (pair p joins worker w(a) with w(a) + 1 + p % 3).
 */
function makePairs(pairs: number): Pair[] {
  const out: Pair[] = [];
  for (let p = 0; p < pairs; p++) {
    const a = `a${p}`;
    const want = (workerOf(a) + 1 + (p % (WORKERS - 1))) % WORKERS;
    let j = 0;
    while (workerOf(`b${p}.${j}`) !== want) j++;
    out.push({ a, b: `b${p}.${j}` });
  }
  return out;
}

/** The deliveries each address gets when a chain of `hops` starts at `a` (a model of the app). */
function expectedCounts(pairs: Pair[], hops: number, selfEvery: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { a, b } of pairs) {
    let cur = a;
    let other = b;
    for (let h = hops; h >= 0; h--) {
      counts.set(cur, (counts.get(cur) ?? 0) + 1);
      if (h > 0 && h % selfEvery !== 0) [cur, other] = [other, cur];
    }
  }
  return counts;
}

async function run(opts: {
  pairs: number;
  hops: number;
  selfEvery: number;
  pad: number;
  limits?: Record<string, number>;
}): Promise<StatsPeaks> {
  const { pairs: n, hops, selfEvery, pad } = opts;
  const pairs = makePairs(n);
  // Every ordered pair of distinct workers is exercised in both directions by some pair.
  const links = new Set(pairs.flatMap(({ a, b }) => [`${workerOf(a)}>${workerOf(b)}`, `${workerOf(b)}>${workerOf(a)}`]));
  expect(links.size).toBe(WORKERS * (WORKERS - 1));
  for (const { a, b } of pairs) expect(workerOf(a)).not.toBe(workerOf(b));

  const total = n * (hops + 1);
  const stateDir = tmp.make('pingpong');
  const logger = new MemoryLogger();
  const engine = await Engine.start(
    { module: app, params: { selfEvery } },
    {
      stateDir,
      workers: WORKERS,
      logger,
      limits: { keyGroups: KEY_GROUPS, checkpointIntervalMs: 200, ...opts.limits },
    },
  );
  try {
    const input = ingressOf(engine, 'pp/in');
    const output = egressOf(engine, 'pp/out');
    const sampler = sampleStats(engine, 5);
    const padding = pad > 0 ? ' ' + 'x'.repeat(pad) : '';
    input.pushAll(
      pairs.map(({ a, b }): RoutedMessage => ({
        to: { typename: PLAYER, id: a },
        message: Message.of(Types.string, `${hops} ${b}${padding}`),
      })),
    );
    await orFail(engine, output.waitFor(n, 100_000));
    const peaks = sampler.stop();

    // Each chain ended exactly once, at one of its two addresses.
    const done = jsonRecords<{ id: string }>(output);
    expect(done.length).toBe(n);
    const ended = new Set(done.map((d) => d.id));
    expect(ended.size).toBe(n);
    for (const { a, b } of pairs) expect(ended.has(a) !== ended.has(b)).toBe(true);
    expect(engine.stats().processed).toBe(total);

    // Exact per-address delivery counts, read back from state.
    output.clear();
    const ids = pairs.flatMap(({ a, b }) => [a, b]);
    input.pushAll(ids.map((id): RoutedMessage => ({ to: { typename: PLAYER, id }, message: Message.of(ASK, true) })));
    await orFail(engine, output.waitFor(ids.length, 60_000));
    const got = new Map(jsonRecords<{ id: string; count: number }>(output).map((r) => [r.id, r.count]));
    const want = expectedCounts(pairs, hops, selfEvery);
    let sum = 0;
    for (const id of ids) {
      expect(got.get(id), id).toBe(want.get(id) ?? 0);
      sum += got.get(id)!;
    }
    expect(sum).toBe(total);
    expect(engine.stats().processed).toBe(total + ids.length);
    expect(engine.stats().deadLetters).toBe(0);
    expect(logger.errors()).toEqual([]);
    return peaks;
  } finally {
    await engine.stop();
  }
}

describe('ping-pong', () => {
  it('1,000,000 messages over 200 cross-worker pairs with self-sends: exact counts', async () => {
    // 200 chains of 4,999 hops: 200 * 5,000 = 1,000,000 deliveries.
    await run({ pairs: 200, hops: 4999, selfEvery: 7, pad: 0 });
  });

  it('small rings: 1,000,000 messages over 10,000 pairs park in outboxes, wrap around, and do not deadlock', async () => {
    // 10,000 chains of 99 hops with ~150-byte messages: about 1.5 MB in flight at any time over
    // 12 worker->worker rings of 64 KiB, so producers find rings full and park frames; every ring
    // wraps around many times.
    const peaks = await run({
      pairs: 10_000,
      hops: 99,
      selfEvery: 5,
      pad: 120,
      limits: { ringBytes: 65536, frameBytesMax: 16384, batchMessagesMax: 64 },
    });
    // Worker threads (not only the main thread's ingress burst) had to park frames.
    expect(peaks.workerParkedBytes).toBeGreaterThan(0);
  });
});
