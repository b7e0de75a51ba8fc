/**
 * `npm run bench [-- --quick] [-- --only micro|macro|checkpoint]`: runs the micro benchmarks (ring,
 * codec, LMDB, cross-thread ring), the macro (end-to-end) benchmarks and the checkpoint benchmarks, prints one aligned table per
 * section, and writes everything with machine info and settings to
 * `bench/results/<ISO date-time>.json` (colons and dots replaced by dashes so the name is valid on
 * every file system).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { runMacro, type MacroResult } from './macro.js';
import { runMicro, type MicroResult } from './micro.js';
import { runCheckpoint, type CheckpointResult } from './checkpoint_bench.js';

type Section = 'micro' | 'macro' | 'checkpoint';

interface Settings {
  quick: boolean;
  only: Section | null;
  argv: string[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const USAGE = 'usage: npm run bench [-- --quick] [-- --only micro|macro|checkpoint]';

function parseArgs(argv: string[]): Settings {
  let quick = false;
  let only: Section | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a === '--only' ? argv[++i] : a.slice('--only='.length);
      if (v !== 'micro' && v !== 'macro' && v !== 'checkpoint') throw new Error(`--only: expected micro, macro or checkpoint, got ${String(v)}\n${USAGE}`);
      only = v;
    } else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return { quick, only, argv };
}

function packageVersion(name: string): string | null {
  try {
    const pkg = JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? null;
  } catch {
    return null;
  }
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  const status = git(['status', '--porcelain']);
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    totalMemoryBytes: os.totalmem(),
    totalMemoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
    node: process.version,
    packages: {
      msgpackr: packageVersion('msgpackr'),
      lmdb: packageVersion('lmdb'),
      tinybench: packageVersion('tinybench'),
    },
    gitCommit: git(['rev-parse', 'HEAD']),
    gitDirty: status === null ? null : status.length > 0,
  };
}

/** Format a rate with thousands separators, or in M/K units when large. */
function formatRate(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} K`;
  return x.toFixed(1);
}

function formatMs(x: number | undefined): string {
  return x === undefined ? '-' : x.toFixed(2);
}

/** Print rows as a table with a header, each column padded to its widest cell. */
function printTable(title: string, header: string[], rows: string[][], rightAligned: boolean[]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((cell, c) => (rightAligned[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

function microDetail(r: MicroResult): string {
  const d = r.detail ?? {};
  const parts: string[] = [];
  if (typeof d.rmePct === 'number') parts.push(`±${d.rmePct}%`);
  if (typeof d.mbPerSec === 'number') parts.push(`${d.mbPerSec} MiB/s`);
  if (typeof d.bytesPerMessage === 'number') parts.push(`${d.bytesPerMessage} B/msg`);
  if (typeof d.entries === 'number') parts.push(`${d.entries} entries`);
  if (typeof d.putsPerTxn === 'number') parts.push(`${d.putsPerTxn}/txn`);
  if (typeof d.elapsedMs === 'number') parts.push(`${d.elapsedMs} ms run`);
  return parts.join(', ');
}

function printMicro(results: MicroResult[]): void {
  printTable(
    'micro benchmarks',
    ['name', 'rate', 'unit', 'notes'],
    results.map((r) => [r.name, formatRate(r.opsPerSec), r.unit, microDetail(r)]),
    [false, true, false, false],
  );
}

function printMacro(results: MacroResult[]): void {
  if (results.length === 0) {
    console.log('\nmacro benchmarks\n(no results)');
    return;
  }
  printTable(
    'macro benchmarks',
    ['name', 'messages/s', 'p50 ms', 'p99 ms'],
    results.map((r) => [r.name, formatRate(r.messagesPerSec), formatMs(r.p50Ms), formatMs(r.p99Ms)]),
    [false, true, true, true],
  );
}

function printCheckpoint(results: CheckpointResult[]): void {
  printTable(
    'checkpoint benchmarks',
    ['name', 'value', 'unit', 'notes'],
    results.map((r) => {
      const d = r.detail ?? {};
      const notes: string[] = [];
      if (typeof d.changedKeys === 'number') notes.push(`${String(d.changedKeys)} keys, ${String(d.objects)} objects, upload ${String(d.uploadMs)} ms, ${String(d.bytesPerChangedKey)} B/key`);
      if (typeof d.bytesRatioToSmallestK === 'number') notes.push(`bytes ratio to smallest K ${String(d.bytesRatioToSmallestK)}`);
      if (typeof d.engineStartMs === 'number') notes.push(`Engine.start ${String(d.engineStartMs)} ms, +${String(d.overEmptyStartMs)} ms over empty`);
      if (typeof d.throughputRatioSnapshotsOnToOff === 'number') notes.push(`on/off ratio ${String(d.throughputRatioSnapshotsOnToOff)}`);
      if (Array.isArray(d.skipped)) notes.push((d.skipped as string[]).join('; '));
      return [r.name, r.unit === 'msg/s' ? formatRate(r.value) : String(Math.round(r.value)), r.unit, notes.join('; ')];
    }),
    [false, true, false, false],
  );
}

async function main(): Promise<void> {
  const settings = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const machine = machineInfo();
  console.log(
    `statefn bench${settings.quick ? ' (quick)' : ''}: ${String(machine.cpuModel)} x${String(machine.cpuCount)}, ` +
      `${String(machine.totalMemoryGiB)} GiB, node ${process.version}`,
  );

  let micro: MicroResult[] | undefined;
  let macro: MacroResult[] | undefined;
  if (settings.only === null || settings.only === 'micro') {
    micro = await runMicro({ quick: settings.quick });
    printMicro(micro);
  }
  if (settings.only === null || settings.only === 'macro') {
    const rawRing = micro?.filter((r) => r.name.startsWith('ring.crossThread.'));
    macro = await runMacro(rawRing === undefined ? { quick: settings.quick } : { quick: settings.quick, rawRing });
    printMacro(macro);
  }
  // ---- checkpoint section (bench/checkpoint_bench.ts) ----
  let checkpoint: CheckpointResult[] | undefined;
  if (settings.only === null || settings.only === 'checkpoint') {
    checkpoint = await runCheckpoint({ quick: settings.quick });
    printCheckpoint(checkpoint);
  }

  const finishedAt = new Date();
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}${startedAt.toISOString().replace(/[:.]/g, '-')}.json`;
  const doc = {
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    machine,
    settings,
    micro: micro ?? null,
    macro: macro ?? null,
    checkpoint: checkpoint ?? null,
  };
  // Write then rename, so a reader never sees half a file (bench/results/*.tmp is git-ignored).
  writeFileSync(`${file}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  console.log(`\nresults written to ${file.slice(ROOT.length)}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
