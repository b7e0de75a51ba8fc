// Proves Idempotency-Keys of the HTTP ingress are durable with the checkpoint: a client retry after
// any restart (clean stop, SIGKILL of the process, a worker thread's death and in-process restore,
// restore from the snapshot store onto an empty disk) answers 202 {"status":"duplicate"} and is
// not applied again; a key reused with another body or target gets 422; keys past the age or
// count bound are forgotten. Real engines, real HTTP, real LMDB; the SIGKILL case a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import type { HttpIngress } from '../../connectors/http/http_ingress.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import { ManualClock } from '../../shared/clock.js';
import { ErrorCode } from '../../shared/errors.js';
import { MemoryLogger, TempDirs } from '../fixtures/engine_harness.js';
import type { HttpIdemParams } from '../fixtures/apps/http_idem_app.js';

const app = new URL('../fixtures/apps/http_idem_app.ts', import.meta.url).href;
const repo = fileURLToPath(new URL('../../', import.meta.url));
const dirs = new TempDirs();
afterAll(() => dirs.removeAll());

const RAW = 'application/vnd.hi/Raw';

/** Quiet: worker deaths and kills are logged as errors on purpose. */
class QuietLogger extends MemoryLogger {
  override error(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', msg, ...(fields ? { fields } : {}) });
  }
}

function start(stateDir: string, params: HttpIdemParams = {}, extra: Record<string, unknown> = {}): Promise<Engine> {
  return Engine.start({ module: app, params }, { stateDir, workers: 2, logger: new QuietLogger(), ...extra });
}

function portOf(engine: Engine): number {
  return (engine.app.ingresses[0]!.connector as unknown as HttpIngress).address().port;
}

async function post(port: number, id: string, body: string, key?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'Content-Type': RAW };
  if (key !== undefined) headers['Idempotency-Key'] = key;
  const r = await fetch(`http://127.0.0.1:${port}/hi/counter/${encodeURIComponent(id)}`, { method: 'POST', headers, body });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/**
 * The counts `hi/counter/<id>` reported in this run, once the egress holds `n` of them. (The memory
 * egress is at-least-once: after a crash a count of the last checkpoint may be reported again.)
 */
async function countsOf(engine: Engine, id: string, n: number): Promise<number[]> {
  const out = engine.app.egresses.get('hi/out') as MemoryEgress;
  const mine = () => out.records.map((r) => r.message.toJSON() as { id: string; n: number }).filter((c) => c.id === id);
  await out.waitFor(() => mine().length >= n, 20_000);
  return mine().map((c) => c.n);
}

/** The count `hi/counter/<id>` reported when it applied the message with `body`. */
async function countAt(engine: Engine, id: string, body: string): Promise<number> {
  const out = engine.app.egresses.get('hi/out') as MemoryEgress;
  const find = () =>
    out.records.map((r) => r.message.toJSON() as { id: string; n: number; body: string }).find((c) => c.id === id && c.body === body);
  await out.waitFor(() => find() !== undefined, 20_000);
  return find()!.n;
}

const ACCEPTED = { status: 202, body: { status: 'accepted' } };
const DUPLICATE = { status: 202, body: { status: 'duplicate' } };

/**
 * The check after a restart: the retry of `key` is a duplicate, and a new message to the same
 * counter counts 2, so the first request was applied exactly once across the restart.
 */
async function expectAppliedOnce(engine: Engine, id: string, key: string): Promise<void> {
  const port = portOf(engine);
  expect(await post(port, id, 'first', key)).toEqual(DUPLICATE);
  expect(await post(port, id, 'second', `${key}-next`)).toEqual(ACCEPTED);
  expect(await countAt(engine, id, 'second')).toBe(2);
}

describe('Idempotency-Key across restarts', () => {
  it('a retry after a clean stop and restart answers duplicate and applies nothing', async () => {
    const stateDir = dirs.make('idem-clean');
    let engine = await start(stateDir);
    expect(await post(portOf(engine), 'a', 'first', 'key-a')).toEqual(ACCEPTED);
    await engine.stop();
    engine = await start(stateDir);
    await expectAppliedOnce(engine, 'a', 'key-a');
    await engine.stop();
  });

  it('a retry after a worker thread died and the engine restored in-process answers duplicate', async () => {
    const stateDir = dirs.make('idem-worker');
    const engine = await start(stateDir);
    expect(await post(portOf(engine), 'w', 'first', 'key-w')).toEqual(ACCEPTED);
    const firstApp = engine.app;
    await engine.terminateWorker(0);
    await engine.whenWritable(); // the restart under way completed
    expect(engine.app).not.toBe(firstApp);
    await expectAppliedOnce(engine, 'w', 'key-w');
    await engine.stop();
  });

  it('a retry after a restore from the snapshot store onto an empty disk answers duplicate', async () => {
    const snapshots = { type: 'local' as const, dir: dirs.make('idem-store') };
    const first = dirs.make('idem-disk1');
    let engine = await start(first, {}, { snapshots });
    expect(await post(portOf(engine), 's', 'first', 'key-s')).toEqual(ACCEPTED);
    await engine.stop();
    rmSync(first, { recursive: true, force: true });
    engine = await start(dirs.make('idem-disk2'), {}, { snapshots });
    await expectAppliedOnce(engine, 's', 'key-s');
    await engine.stop();
  });

  it('a retry after the engine process was SIGKILLed right after the 202 answers duplicate', async () => {
    const stateDir = dirs.make('idem-kill');
    const child = spawn(
      process.execPath,
      ['--conditions=statefn-source', '--import', 'tsx', join('test', 'fixtures', 'http_idem_child.ts'), stateDir],
      {
        cwd: repo,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const port = await childPort(child);
      expect(await post(port, 'k', 'first', 'key-k')).toEqual(ACCEPTED);
      const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
    } finally {
      child.kill('SIGKILL');
    }
    const engine = await start(stateDir);
    await expectAppliedOnce(engine, 'k', 'key-k');
    await engine.stop();
  }, 60_000);
});

function childPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the child engine exited with ${code} before listening: ${err}`)));
  });
}

describe('Idempotency-Key reuse and bounds', () => {
  it('answers 422 to a key reused with another body or another target, and submits nothing', async () => {
    const engine = await start(dirs.make('idem-422'));
    const port = portOf(engine);
    expect(await post(port, 'r', 'body-1', 'key-r')).toEqual(ACCEPTED);
    const otherBody = await post(port, 'r', 'body-2', 'key-r');
    expect(otherBody.status).toBe(422);
    expect(otherBody.body.code).toBe(ErrorCode.IDEMPOTENCY_KEY_REUSED);
    expect(otherBody.body.message).toMatch(/Idempotency-Key .*another/);
    const otherTarget = await post(port, 'r2', 'body-1', 'key-r');
    expect(otherTarget.status).toBe(422);
    expect(otherTarget.body.code).toBe(ErrorCode.IDEMPOTENCY_KEY_REUSED);
    // The same request again is still a duplicate; nothing of the 422s was applied.
    expect(await post(port, 'r', 'body-1', 'key-r')).toEqual(DUPLICATE);
    expect(await post(port, 'r', 'body-3', 'key-r-next')).toEqual(ACCEPTED);
    expect(await countsOf(engine, 'r', 2)).toEqual([1, 2]);
    expect(engine.stats().ingested).toBe(2);
    await engine.stop();
  });

  it('forgets a key older than idempotencyKeyAgeMs, across a restart too', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const params: HttpIdemParams = { clockBuffer: clock.buffer, http: { idempotencyKeyAgeMs: 60_000 } };
    const stateDir = dirs.make('idem-age');
    let engine = await start(stateDir, params);
    expect(await post(portOf(engine), 'g', 'one', 'key-old')).toEqual(ACCEPTED);
    clock.advance(30_000);
    expect(await post(portOf(engine), 'g', 'two', 'key-young')).toEqual(ACCEPTED);
    await engine.stop();
    engine = await start(stateDir, params);
    // 31 s later the first key is 61 s old (forgotten: applied again), the second 31 s (remembered).
    clock.advance(31_000);
    expect(await post(portOf(engine), 'g', 'two', 'key-young')).toEqual(DUPLICATE);
    expect(await post(portOf(engine), 'g', 'one', 'key-old')).toEqual(ACCEPTED);
    expect(await countAt(engine, 'g', 'one')).toBe(3);
    await engine.stop();
  });

  it('forgets the oldest keys beyond idempotencyKeysMax', async () => {
    const engine = await start(dirs.make('idem-count'), { http: { idempotencyKeysMax: 2 } });
    const port = portOf(engine);
    for (const k of ['c1', 'c2', 'c3']) expect(await post(port, 'c', k, k)).toEqual(ACCEPTED);
    expect(await post(port, 'c', 'c3', 'c3')).toEqual(DUPLICATE);
    expect(await post(port, 'c', 'c2', 'c2')).toEqual(DUPLICATE);
    expect(await post(port, 'c', 'c1', 'c1')).toEqual(ACCEPTED); // forgotten: applied again
    expect(await countsOf(engine, 'c', 4)).toEqual([1, 2, 3, 4]);
    await engine.stop();
  });
});
