/**
 * Checkpoint benchmarks (`npm run bench -- --only checkpoint`; also run after the macro section):
 *
 *   checkpoint.incremental.<K>  counter app (bench/apps/checkpoint_app.ts, 2 workers) over K keys
 *                               (1e4, 1e5, 1e6): load K keys (one message each), force a
 *                               checkpoint, apply CHANGES messages to uniform random keys, force
 *                               one more checkpoint: that checkpoint's upload (bytes, objects,
 *                               changedKeys, ms) should follow the change, not K.
 *   checkpoint.recovery.<K>.<local|store>
 *                               child process (bench/checkpoint_child.ts): load K keys, checkpoint,
 *                               CHANGES more, SIGKILL; then time a fresh child until Engine.start
 *                               resolved, on the same state dir (local recovery: undo the
 *                               uncheckpointed epoch) and on a dir holding only a copy of the
 *                               snapshot store (restore from the store). `empty` = same child on an
 *                               empty dir (the fixed cost of node + tsx + workers).
 *   checkpoint.snapshots.<on|off>.2w
 *                               macro counter max rate, 2 workers, snapshot store on (default) vs
 *                               `snapshots: false`.
 *
 * Periodic checkpoints are off in the incremental and recovery cases (checkpointIntervalMs 1 h) so the
 * fixed set of changes falls into one epoch. Bounded: every child is killed after CHILD_TIMEOUT_MS.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { counterRun } from './macro.js';
import { pushAndSettle, randomKeys, startCheckpointApp } from './checkpoint_child.js';
import { increment } from './apps/checkpoint_app.js';

export interface CheckpointResult {
  name: string;
  /** The headline figure, in `unit`. */
  value: number;
  unit: string;
  detail?: Record<string, unknown>;
}

export interface CheckpointOptions {
  quick?: boolean;
}

const CHANGES = 10_000;
const WORKERS = 2;
const CHILD = fileURLToPath(new URL('./checkpoint_child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHILD_TIMEOUT_MS = 60_000;
/** Skip K = 1e6 when loading 1e5 keys took longer than this (it scales about linearly). */
const LOAD_1E5_MS_MAX_FOR_1E6 = 3_000;
/** Run the K = 1e6 recovery case only when section 1 loaded and checkpointed 1e6 keys within this. */
const LOAD_1E6_MS_MAX_FOR_RECOVERY = 10_000;

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

async function incremental(keys: number): Promise<CheckpointResult> {
  const stateDir = mkdtempSync(join(tmpdir(), 'statefn-ckbench-'));
  const { engine, ingress } = await startCheckpointApp(stateDir, WORKERS);
  try {
    const t0 = performance.now();
    await pushAndSettle(engine, ingress, keys, increment);
    const loadMs = performance.now() - t0;
    const t1 = performance.now();
    const e1 = await engine.checkpoint();
    const firstMs = performance.now() - t1;
    const first = engine.uploads.find((u) => u.epoch === e1);
    await pushAndSettle(engine, ingress, CHANGES, randomKeys(keys));
    const t2 = performance.now();
    const e2 = await engine.checkpoint();
    const flushMs = performance.now() - t2;
    const u = engine.uploads.find((x) => x.epoch === e2);
    if (u === undefined) throw new Error(`checkpoint.incremental.${keys}: no upload recorded for epoch ${e2}`);
    const st = engine.stats();
    if (st.failures !== 0 || st.deadLetters !== 0)
      throw new Error(`checkpoint.incremental.${keys}: ${st.failures} failures, ${st.deadLetters} dead letters`);
    return {
      name: `checkpoint.incremental.${keys}`,
      value: u.bytes,
      unit: 'bytes',
      detail: {
        keys,
        changes: CHANGES,
        epoch: e2,
        objects: u.objects,
        bytes: u.bytes,
        changedKeys: u.changedKeys,
        uploadMs: u.ms,
        bytesPerChangedKey: round(u.bytes / Math.max(1, u.changedKeys), 1),
        flushMs: round(flushMs, 1),
        loadMs: round(loadMs, 0),
        loadPerSec: round((keys * 1000) / loadMs, 0),
        firstCheckpoint: first === undefined ? null : { ...first, flushMs: round(firstMs, 1) },
      },
    };
  } finally {
    await engine.stop().catch(() => {});
    rmSync(stateDir, { recursive: true, force: true });
  }
}

interface Child {
  lines: string[];
  waitFor: (prefix: string) => Promise<{ line: string; atMs: number }>;
  kill: () => void;
  exited: Promise<number | null>;
}

/** Spawn the child runner; `waitFor` resolves with the first stdout line starting with prefix. */
function child(args: string[]): Child {
  const t0 = performance.now();
  const p = spawn(process.execPath, ['--conditions=statefn-source', '--import', 'tsx', CHILD, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { prefix: string; resolve: (v: { line: string; atMs: number }) => void; reject: (e: Error) => void }[] = [];
  let stderr = '';
  let buf = '';
  const timer = setTimeout(() => p.kill('SIGKILL'), CHILD_TIMEOUT_MS);
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      const atMs = performance.now() - t0;
      for (const w of waiters.splice(0)) {
        if (line.startsWith(w.prefix)) w.resolve({ line, atMs });
        else waiters.push(w);
      }
    }
  });
  p.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => {
    p.on('exit', (code) => {
      clearTimeout(timer);
      for (const w of waiters.splice(0))
        w.reject(new Error(`child ${args.join(' ')} exited (${String(code)}) before '${w.prefix}': ${stderr.slice(-2000)}`));
      resolve(code);
    });
  });
  return {
    lines,
    waitFor: (prefix) =>
      new Promise((resolve, reject) => {
        if (p.exitCode !== null) return reject(new Error(`child exited before '${prefix}': ${stderr.slice(-2000)}`));
        waiters.push({ prefix, resolve, reject });
      }),
    kill: () => p.kill('SIGKILL'),
    exited,
  };
}

/** Start a child in recover mode on stateDir: ms until it printed `running`, and its in-process Engine.start ms. */
async function timeStart(stateDir: string, keys: number): Promise<{ wallMs: number; engineStartMs: number; exitCode: number | null }> {
  const c = child(['--state-dir', stateDir, '--mode', 'recover', '--keys', String(keys), '--workers', String(WORKERS)]);
  const r = await c.waitFor('running ');
  const code = await c.exited;
  return { wallMs: round(r.atMs, 0), engineStartMs: Number(r.line.split(' ')[1]), exitCode: code };
}

async function recovery(keys: number): Promise<CheckpointResult[]> {
  const base = mkdtempSync(join(tmpdir(), 'statefn-ckrec-'));
  const local = join(base, 'local');
  const fromStore = join(base, 'store');
  const empty = join(base, 'empty');
  try {
    const c = child([
      '--state-dir',
      local,
      '--mode',
      'load',
      '--keys',
      String(keys),
      '--changes',
      String(CHANGES),
      '--workers',
      String(WORKERS),
    ]);
    const ck = await c.waitFor('checkpoint ');
    await c.waitFor('changed ');
    c.kill();
    await c.exited;
    // The store's copy, as if the machine's disk was lost: only <dir>/snapshots survives.
    cpSync(join(local, 'snapshots'), join(fromStore, 'snapshots'), { recursive: true });
    const e = await timeStart(empty, keys);
    const l = await timeStart(local, keys);
    const s = await timeStart(fromStore, keys);
    const common = { keys, changesAfterCheckpoint: CHANGES, checkpointEpoch: Number(ck.line.split(' ')[1]), workers: WORKERS };
    const mk = (kind: string, r: typeof e): CheckpointResult => ({
      name: `checkpoint.recovery.${keys}.${kind}`,
      value: r.wallMs,
      unit: 'ms to running',
      detail: { ...common, ...r, overEmptyStartMs: kind === 'empty' ? 0 : round(r.wallMs - e.wallMs, 0) },
    });
    return [mk('empty', e), mk('local', l), mk('store', s)];
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

async function snapshotsPair(quick: boolean): Promise<CheckpointResult[]> {
  // Long enough for a few 1 s checkpoints (each takes ~1 s under load) to complete in the window.
  // Full: two interleaved pairs (on, off, on, off), best of each, as the machine is shared.
  const timing = quick ? { warmupMs: 700, runMs: 2500 } : { warmupMs: 1000, runMs: 4000 };
  const pairs = quick ? 1 : 2;
  const ons: Awaited<ReturnType<typeof counterRun>>[] = [];
  const offs: Awaited<ReturnType<typeof counterRun>>[] = [];
  for (let i = 0; i < pairs; i++) {
    ons.push(await counterRun({ workers: WORKERS, timing }));
    offs.push(await counterRun({ workers: WORKERS, timing, snapshots: false }));
  }
  const best = (xs: typeof ons): (typeof ons)[number] => xs.reduce((a, b) => (b.win.messagesPerSec > a.win.messagesPerSec ? b : a));
  const on = best(ons);
  const off = best(offs);
  const all = (xs: typeof ons): number[] => xs.map((x) => round(x.win.messagesPerSec, 0));
  return [
    {
      name: `checkpoint.snapshots.on.${WORKERS}w`,
      value: on.win.messagesPerSec,
      unit: 'msg/s',
      detail: { ...on.win.detail, flushes: on.flushes, runsMsgPerSec: all(ons) },
    },
    {
      name: `checkpoint.snapshots.off.${WORKERS}w`,
      value: off.win.messagesPerSec,
      unit: 'msg/s',
      detail: {
        ...off.win.detail,
        flushes: off.flushes,
        runsMsgPerSec: all(offs),
        throughputRatioSnapshotsOnToOff: round(on.win.messagesPerSec / Math.max(1, off.win.messagesPerSec), 3),
      },
    },
  ];
}

export async function runCheckpoint(opts: CheckpointOptions = {}): Promise<CheckpointResult[]> {
  const quick = opts.quick === true;
  const results: CheckpointResult[] = [];
  const skipped: string[] = [];
  console.log(`\ncheckpoint: ${WORKERS} workers, ${CHANGES} changes between forced checkpoints${quick ? ' (quick: K = 1e6 skipped)' : ''}`);

  // 1. Incremental checkpoint size as state grows.
  let load1e5Ms = Infinity;
  let load1e6Ms = Infinity;
  for (const k of [10_000, 100_000, 1_000_000]) {
    if (k === 1_000_000 && (quick || load1e5Ms > LOAD_1E5_MS_MAX_FOR_1E6)) {
      skipped.push(`checkpoint.incremental.1000000 (${quick ? 'quick' : `1e5 keys loaded in ${round(load1e5Ms, 0)} ms`})`);
      continue;
    }
    const r = await incremental(k);
    if (k === 100_000) load1e5Ms = r.detail!.loadMs as number;
    if (k === 1_000_000)
      load1e6Ms = (r.detail!.loadMs as number) + ((r.detail!.firstCheckpoint as { flushMs?: number } | null)?.flushMs ?? 0);
    results.push(r);
    const d = r.detail!;
    console.log(
      `  ${r.name.padEnd(34)} ${String(d.bytes).padStart(9)} B  ${String(d.bytesPerChangedKey)} B/key  ${String(d.objects)} ` +
        `objects  ${String(d.changedKeys)} keys  upload ${String(d.uploadMs)} ms  (load ${String(d.loadMs)} ms; first ` +
        `checkpoint ${JSON.stringify(d.firstCheckpoint)})`,
    );
  }
  const inc = results.filter((r) => r.name.startsWith('checkpoint.incremental.'));
  if (inc.length >= 2) {
    const small = inc[0]!;
    const big = inc[inc.length - 1]!;
    big.detail = {
      ...big.detail,
      bytesRatioToSmallestK: round(big.value / Math.max(1, small.value), 3),
      msRatioToSmallestK: round((big.detail!.uploadMs as number) / Math.max(1, small.detail!.uploadMs as number), 3),
    };
    console.log(
      `  bytes ratio K=${String(big.detail.keys)} / ` +
        `K=${String(small.detail!.keys)}: ${String(big.detail.bytesRatioToSmallestK)} (upload ms ` +
        `ratio ${String(big.detail.msRatioToSmallestK)})`,
    );
  }

  // 2. Recovery after SIGKILL.
  const recKeys = quick ? [100_000] : [100_000, 1_000_000];
  for (const k of recKeys) {
    if (k === 1_000_000 && load1e6Ms > LOAD_1E6_MS_MAX_FOR_RECOVERY) {
      skipped.push(
        `checkpoint.recovery.1000000 (loading 1e6 keys + first checkpoint took ${round(load1e6Ms / 1000, 1)} s in section 1; ` +
          `over the time budget)`,
      );
      continue;
    }
    for (const r of await recovery(k)) {
      results.push(r);
      console.log(
        `  ${r.name.padEnd(34)} ${String(r.value).padStart(7)} ms to running (Engine.start ${String(r.detail!.engineStartMs)} ` +
          `ms in process; +${String(r.detail!.overEmptyStartMs)} ms over an empty start)`,
      );
    }
  }
  if (quick) skipped.push('checkpoint.recovery.1000000 (quick)');

  // 3. Snapshot store on vs off.
  for (const r of await snapshotsPair(quick)) {
    results.push(r);
    const ratio = r.detail!.throughputRatioSnapshotsOnToOff;
    const ratioText = ratio === undefined ? '' : `  (on/off ratio ${ratio as number})`;
    console.log(`  ${r.name.padEnd(34)} ${(r.value / 1e6).toFixed(3)} M msg/s${ratioText}`);
  }
  if (skipped.length > 0) {
    console.log(`  skipped: ${skipped.join('; ')}`);
    results.push({ name: 'checkpoint.skipped', value: skipped.length, unit: 'cases', detail: { skipped } });
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runCheckpoint({ quick: process.argv.includes('--quick') }).then(
    (rs) => console.log(JSON.stringify(rs, null, 2)),
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : e);
      process.exitCode = 1;
    },
  );
}
