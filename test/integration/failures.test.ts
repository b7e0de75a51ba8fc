// Proves failing invocations never vanish: a handler that always throws is retried
// handlerAttemptsMax times and dead-lettered with its error; one that throws once is retried
// without any effect of the failed attempt and keeps per-address order (sync and async); unknown
// function types, unknown egresses, oversized messages and state type mismatches become dead
// letters; and the engine keeps working afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { DEAD_LETTER_EGRESS } from '../../api/app.js';
import { ErrorCode } from '../../shared/errors.js';
import { keyGroupOf, ownerTable } from '../../shared/key_group.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import type { MemoryIngress } from '../../connectors/memory/memory_ingress.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { ASYNC, CMD, SINK, SYNC, TYPED, type Cmd, type Report } from '../fixtures/apps/failures_app.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf, jsonRecords, orFail } from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/failures_app.ts', import.meta.url).pathname;
const tmp = new TempDirs();

const WORKERS = 2;
const KEY_GROUPS = 64;
const ATTEMPTS = 4;
const FRAME_BYTES_MAX = 16_384;

interface Dead {
  code: string;
  value?: unknown;
  error: string;
  target?: { typename: string; id: string };
  typename?: string;
  attempts?: number;
}

let engine: Engine;
let input: MemoryIngress<RoutedMessage>;
let output: MemoryEgress;
let dead: MemoryEgress;
let stateDir: string;
const logger = new MemoryLogger();

async function startEngine(typedAs: 'long' | 'string'): Promise<void> {
  engine = await Engine.start(
    { module: app, params: { typedAs } },
    {
      stateDir,
      workers: WORKERS,
      logger,
      limits: {
        keyGroups: KEY_GROUPS,
        handlerAttemptsMax: ATTEMPTS,
        handlerRetryBackoffMs: 5,
        checkpointIntervalMs: 100,
        ringBytes: 65_536,
        frameBytesMax: FRAME_BYTES_MAX,
      },
    },
  );
  input = ingressOf(engine, 'f/in');
  output = egressOf(engine, 'f/out');
  dead = egressOf(engine, DEAD_LETTER_EGRESS);
}

beforeAll(async () => {
  stateDir = tmp.make('failures');
  await startEngine('long');
});
afterAll(async () => {
  try {
    await engine.stop();
    expect(logger.errors()).toEqual([]);
  } finally {
    tmp.removeAll();
  }
});

function send(typename: string, id: string, cmd: Cmd): void {
  input.push({ to: { typename, id }, message: Message.of(CMD, cmd) });
}

function reports(fn: string, id: string): Report[] {
  return jsonRecords<Report>(output).filter((r) => r.fn === fn && r.id === id);
}

async function waitReports(fn: string, id: string, count: number): Promise<Report[]> {
  await orFail(
    engine,
    output.waitFor(() => reports(fn, id).length >= count, 20_000),
  );
  return reports(fn, id);
}

async function waitDead(pred: (d: Dead) => boolean): Promise<Dead> {
  await orFail(
    engine,
    dead.waitFor((rs) => rs.some((r) => pred(r.message.toJSON() as Dead)), 20_000),
  );
  return jsonRecords<Dead>(dead).find(pred)!;
}

async function get(fn: string, id: string): Promise<Report> {
  // Only the 'get' op's reports count: reports of earlier ops may still be on their way (egress
  // is released per checkpoint), so a count of all reports would race with them.
  const gets = (): Report[] => reports(fn, id).filter((r) => (r as { get?: boolean }).get === true);
  const before = gets().length;
  send(fn, id, { op: 'get' });
  await orFail(
    engine,
    output.waitFor(() => gets().length > before, 20_000),
  );
  return gets().at(-1)!;
}

/** An id owned by another worker than `id`'s. */
function otherWorkerId(id: string): string {
  const owner = ownerTable(WORKERS, KEY_GROUPS);
  for (let i = 0; ; i++) if (owner[keyGroupOf(`o${i}`, KEY_GROUPS)] !== owner[keyGroupOf(id, KEY_GROUPS)]) return `o${i}`;
}

/** An id owned by the same worker as `id`. */
function sameWorkerId(id: string): string {
  const owner = ownerTable(WORKERS, KEY_GROUPS);
  for (let i = 0; ; i++) if (owner[keyGroupOf(`s${i}`, KEY_GROUPS)] === owner[keyGroupOf(id, KEY_GROUPS)] && `s${i}` !== id) return `s${i}`;
}

describe('failures', () => {
  it('a handler that always throws is attempted handlerAttemptsMax times, then dead-lettered with its error', async () => {
    const failuresBefore = engine.stats().failures;
    send(SYNC, 'always', { op: 'log', n: 1 });
    send(SYNC, 'always', { op: 'log', n: 2, failAlways: true });
    send(SYNC, 'always', { op: 'log', n: 3 });
    const d = await waitDead((x) => x.target?.id === 'always');
    expect(d).toMatchObject({
      code: ErrorCode.HANDLER_FAILED,
      target: { typename: SYNC, id: 'always' },
      typename: CMD.typename,
      attempts: ATTEMPTS,
    });
    expect(d.error).toContain(`always failing on 2 (attempt ${ATTEMPTS})`);
    // The failed message left nothing behind; the next one ran after it, in order.
    const rs = await waitReports(SYNC, 'always', 2);
    expect(rs.map((r) => r.log)).toEqual([[1], [1, 3]]);
    expect(engine.stats().failures - failuresBefore).toBe(ATTEMPTS);
    expect((await get(SYNC, 'always')).log).toEqual([1, 3]);
  });

  it('a failing message too big to carry in its dead-letter record (base64) is dead-lettered without killing the worker', async () => {
    // ~12.5 KB of JSON fits in a 16 KiB frame, but not once base64-encoded inside the record.
    send(SYNC, 'big-fail', { op: 'log', n: 1, failAlways: true, pad: 'p'.repeat(12_500) });
    const d = await waitDead((x) => x.target?.id === 'big-fail');
    expect(d).toMatchObject({ code: ErrorCode.HANDLER_FAILED, attempts: ATTEMPTS, value: { omitted: true } });
    expect((d.value as { bytes: number }).bytes).toBeGreaterThan(12_500);
    expect((await get(SYNC, 'big-fail')).log).toEqual([]);
  });

  it('a sync handler that throws once is retried: no effect of the failed attempt, order per address kept', async () => {
    const id = 'once';
    for (let n = 1; n <= 20; n++) send(SYNC, id, { op: 'log', n, failOnce: n === 3 || n === 11 });
    const rs = await waitReports(SYNC, id, 20);
    // One report per message (the failed attempts' egress was discarded), each log in order.
    expect(rs.map((r) => r.n)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(rs.at(-1)!.log).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await get(SYNC, id)).log).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(jsonRecords<Dead>(dead).filter((d) => d.target?.id === id)).toEqual([]);
  });

  it('async handlers hold their address until they settle, retry once-failures, and run addresses concurrently', async () => {
    const ids = ['a1', 'a2', 'a3'];
    for (let n = 1; n <= 15; n++) {
      for (const id of ids) send(ASYNC, id, { op: 'log', n, delayMs: (n * 7 + id.charCodeAt(1)) % 5, failOnce: n === 5 && id === 'a2' });
    }
    send(ASYNC, 'a-always', { op: 'log', n: 1, failAlways: true });
    for (const id of ids) {
      const rs = await waitReports(ASYNC, id, 15);
      expect(rs.map((r) => r.n)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
      expect((await get(ASYNC, id)).log).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    }
    const d = await waitDead((x) => x.target?.id === 'a-always');
    expect(d).toMatchObject({ code: ErrorCode.HANDLER_FAILED, target: { typename: ASYNC, id: 'a-always' }, attempts: ATTEMPTS });
    expect(d.error).toContain('always failing on 1');
  });

  it('a message to an unknown function type is dead-lettered naming the type', async () => {
    send(SYNC, 'u1', { op: 'send-unknown-type' });
    const d = await waitDead((x) => x.code === ErrorCode.UNKNOWN_FUNCTION_TYPE);
    expect(d.error).toContain('f/no-such-function');
    expect(d.target).toEqual({ typename: 'f/no-such-function', id: 'u1' });
    // From an ingress, too: rejected on the main thread before routing.
    input.push({ to: { typename: 'f/not-registered', id: 'x' }, message: Message.of(Types.long, 1) });
    const d2 = await waitDead((x) => x.code === ErrorCode.UNKNOWN_FUNCTION_TYPE && x.error.includes('f/not-registered'));
    expect(d2).toBeDefined();
  });

  it('an unknown egress id fails the invocation into a dead letter without applying its state', async () => {
    send(SYNC, 'e1', { op: 'egress-unknown' });
    const d = await waitDead((x) => x.code === ErrorCode.UNKNOWN_EGRESS);
    expect(d.error).toContain('f/no-such-egress');
    expect(d.target).toEqual({ typename: SYNC, id: 'e1' });
    expect((await get(SYNC, 'e1')).n).toBeNull();
  });

  it('a message larger than frameBytesMax is dead-lettered with STATEFN_PAYLOAD_TOO_LARGE', async () => {
    const from = 'big';
    const remote = otherWorkerId(from);
    send(SYNC, from, { op: 'send-big', bytes: FRAME_BYTES_MAX + 1, to: remote });
    const d = await waitDead((x) => x.code === ErrorCode.PAYLOAD_TOO_LARGE && x.target?.id === remote);
    expect(d).toMatchObject({ target: { typename: SINK, id: remote }, typename: 'f/Blob' });
    expect(d.error).toMatch(/exceeds frameBytesMax 16384/);
    // The record itself must fit in a frame: the value is left out, its size kept.
    expect(d.value).toEqual({ omitted: true, bytes: FRAME_BYTES_MAX + 1 });
    // From an ingress as well.
    input.push({
      to: { typename: SINK, id: 'ingress-big' },
      message: Message.of(Types.raw('f/Blob'), new Uint8Array(FRAME_BYTES_MAX + 1)),
    });
    const d2 = await waitDead((x) => x.code === ErrorCode.PAYLOAD_TOO_LARGE && x.target?.id === 'ingress-big');
    expect(d2.error).toMatch(/exceeds frameBytesMax/);
    // A message just under the bound is delivered.
    send(SYNC, from, { op: 'send-big', bytes: FRAME_BYTES_MAX - 200, to: remote });
    const rs = await waitReports(SINK, remote, 1);
    expect(rs[0]!.log[0]).toBe(FRAME_BYTES_MAX - 200);
  });

  it('an oversized message to an address on the same worker is dead-lettered as well', async () => {
    const from = 'big2';
    const local = sameWorkerId(from);
    send(SYNC, from, { op: 'send-big', bytes: FRAME_BYTES_MAX + 1, to: local });
    const d = await waitDead((x) => x.code === ErrorCode.PAYLOAD_TOO_LARGE && x.target?.id === local);
    expect(d).toMatchObject({ target: { typename: SINK, id: local } });
  });

  it('writing a value of the wrong type to state fails the invocation with TYPE_MISMATCH', async () => {
    send(SYNC, 'w1', { op: 'log', n: 1 });
    send(SYNC, 'w1', { op: 'write-wrong-type' });
    const d = await waitDead((x) => x.code === ErrorCode.TYPE_MISMATCH && x.target?.id === 'w1');
    expect(d.error).toContain('io.statefun.types/long');
    expect(await get(SYNC, 'w1')).toMatchObject({ log: [1], n: null });
  });

  it('state stored under another type than declared dead-letters its messages after a restart', async () => {
    send(TYPED, 't1', { op: 'log', n: 42 });
    expect((await waitReports(TYPED, 't1', 1))[0]!.n).toBe(42);
    await engine.stop();
    await startEngine('string');
    send(TYPED, 't1', { op: 'log', n: 43 });
    const d = await waitDead((x) => x.code === ErrorCode.STATE_INVALID && x.target?.id === 't1');
    expect(d.error).toMatch(/stored as io\.statefun\.types\/long but declared as io\.statefun\.types\/string/);
    // Other addresses of the type are fine.
    send(TYPED, 't2', { op: 'log', n: 7 });
    expect((await waitReports(TYPED, 't2', 1))[0]!.n).toBe(7);
  });

  it('the engine keeps running after all of them', async () => {
    send(SYNC, 'after-all', { op: 'log', n: 1 });
    send(ASYNC, 'after-all', { op: 'log', n: 1 });
    expect((await waitReports(SYNC, 'after-all', 1))[0]!.log).toEqual([1]);
    expect((await waitReports(ASYNC, 'after-all', 1))[0]!.log).toEqual([1]);
    expect(engine.stats().deadLetters).toBe(jsonRecords(dead).length);
    await expect(Promise.race([engine.failed(), new Promise((r) => setTimeout(() => r('running'), 50))])).resolves.toBe('running');
  });
});
