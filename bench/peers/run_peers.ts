/**
 * `npm run bench -- --peers` (wired in by bench/run.ts) and standalone:
 *
 *   node --import tsx bench/peers/run_peers.ts [--quick] [--only statefn,restate,flink,scaling]
 *
 * Runs, one after another on this machine: statefn (bench/peers/statefn.ts: generator and HTTP
 * ingress), Restate (bench/peers/restate.ts, `runRestate`), Apache Flink StateFun
 * (bench/peers/flink_statefun.ts, `runFlinkStatefun`) and statefn's scaling runs
 * (bench/peers/scaling.ts). A peer module that is missing or fails is recorded in the results
 * (`peerErrors`) and the run goes on. `--only statefn` includes the scaling runs; `scaling` alone
 * runs only them.
 *
 * Prints one table (system, workload, path, mode, offered rate or concurrency, throughput,
 * p50/p99/p99.9, and for statefn rows the ratio statefn/peer of the matching peer row: HTTP rows
 * against Restate at the same concurrency or offered rate, generator rows against the Flink
 * StateFun harness in the same mode and at the same rate), the target checks, and a guarantees
 * table (what a completed message means per system and path). Writes
 * `bench/results/peers-<ISO date>.json` (machine info, versions, exact settings, every result,
 * the machine-limit probes), `bench/results/peers-<ISO date>.html` (charts, charts.ts) and a
 * stable copy `bench/peers-latest.html`; a PNG beside it only if a headless Chromium is on PATH.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  fdatasyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEFAULT_PEER_OPTIONS, type PeerResult, type PeerRunOptions } from './types.js';
import { STATEFN_ENGINE_DEFAULTS, runStatefn, statefnTiming, statefnVersion } from './statefn.js';
import { runScaling, type ScalingResult } from './scaling.js';
import { renderHtml, writePngs } from './charts.js';
import { at, fmtMs, fmtRate, guaranteesTable, matchingPeer, resultsTable, scalingTableOf, sustainedRow } from './tables.js';
import { LoadClient } from './apps/http_load.js';
import { machineInfo } from '../machine.js';
import { keepLatestAndRender } from '../render_tables.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));
const LATEST_HTML = fileURLToPath(new URL('../peers-latest.html', import.meta.url));
const SYSTEMS = ['statefn', 'restate', 'flink', 'scaling'] as const;
type SystemKey = (typeof SYSTEMS)[number];

// ---- machine limits (back-of-the-envelope figures, measured now) ----

const round = (x: number, d = 2): number => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);

function probeFsync(n: number): Record<string, number> {
  const dir = mkdtempSync(join(os.tmpdir(), 'statefn-fsync-'));
  const ts: number[] = [];
  try {
    const fd = openSync(join(dir, 'f'), 'w');
    const buf = Buffer.alloc(4096, 1);
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      ts.push(performance.now() - t);
    }
    closeSync(fd);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  ts.sort((a, b) => a - b);
  return { writes: n, p50Ms: round(ts[Math.floor(n / 2)]!, 3), p99Ms: round(ts[Math.ceil(n * 0.99) - 1]!, 3), maxMs: round(ts[n - 1]!, 3) };
}

/**
 * Loopback HTTP through Node's http server (this process) and the benchmark's pipelining client
 * (a child process): what one request costs each side when the server does nothing but answer 202.
 * This is the floor under statefn's HTTP ingress, which runs the same server on its main thread.
 */
async function probeHttp(quick: boolean): Promise<Record<string, unknown>[]> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.statusCode = 202;
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.setHeader('Content-Length', 21);
      res.end('{"status":"accepted"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  const client = LoadClient.start();
  const out: Record<string, unknown>[] = [];
  try {
    for (const [concurrency, connections] of [
      [1, 1],
      [64, 64],
      [1024, 16],
    ] as const) {
      let a: NodeJS.CpuUsage | undefined;
      let b: NodeJS.CpuUsage | undefined;
      const r = await client.run(
        {
          host: '127.0.0.1',
          port,
          workload: 'counter-uniform',
          keys: 1000,
          zipfExponent: 0,
          seed: 1,
          mode: 'closed',
          concurrency,
          connections,
          warmupMs: 500,
          measureMs: quick ? 1000 : 2000,
          drainMs: 2000,
          maxInFlight: 1 << 20,
        },
        (phase) => {
          if (phase === 'start') a = process.cpuUsage();
          else b = process.cpuUsage(a);
        },
      );
      const serverCores = b === undefined ? Number.NaN : (b.user + b.system) / 1000 / r.windowMs;
      out.push({
        concurrency,
        connections,
        requestsPerSec: round(r.throughputPerSec, 0),
        p50Ms: round(r.p50Ms ?? Number.NaN, 3),
        p99Ms: round(r.p99Ms ?? Number.NaN, 3),
        serverCores: round(serverCores),
        clientCores: r.clientCpuCores,
        serverUsPerRequest: r.throughputPerSec > 0 ? round((serverCores * 1e6) / r.throughputPerSec, 1) : null,
        clientUsPerRequest: r.throughputPerSec > 0 ? round((r.clientCpuCores * 1e6) / r.throughputPerSec, 1) : null,
      });
    }
  } finally {
    await client.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
  return out;
}

/** The newest micro ring figure and macro counter figures of `npm run bench`, if any run kept them. */
function latestCoreBench(): Record<string, unknown> | null {
  try {
    const files = readdirSync(RESULTS_DIR)
      .filter((f) => /^\d{4}-.*\.json$/.test(f))
      .sort()
      .reverse();
    let ring: Record<string, unknown> | null = null;
    let macro: Record<string, unknown> | null = null;
    for (const f of files) {
      const d = JSON.parse(readFileSync(join(RESULTS_DIR, f), 'utf8')) as {
        micro?: { name: string; opsPerSec: number }[] | null;
        macro?: { name: string; messagesPerSec: number }[] | null;
      };
      const m = d.micro?.find((x) => x.name === 'ring.crossThread.64B');
      if (ring === null && m !== undefined) ring = { file: f, ringCrossThread64BFramesPerSec: Math.round(m.opsPerSec) };
      const c = d.macro?.find((x) => x.name === 'counter.max.2w');
      if (macro === null && c !== undefined) macro = { file: f, counterMax2wMessagesPerSec: Math.round(c.messagesPerSec) };
      if (ring !== null && macro !== null) break;
    }
    return { ...ring, ...macro };
  } catch {
    return null;
  }
}

async function probeLimits(quick: boolean, log: (l: string) => void): Promise<Record<string, unknown>> {
  const fsync = probeFsync(quick ? 50 : 200);
  log(`limits: fdatasync of 4 KiB: p50 ${fsync.p50Ms} ms, p99 ${fsync.p99Ms} ms`);
  let httpProbe: Record<string, unknown>[] | { error: string };
  try {
    httpProbe = await probeHttp(quick);
    for (const p of httpProbe) {
      log(
        `limits: loopback HTTP (Node http server, no work), ${String(p.concurrency)} outstanding over ${String(p.connections)} ` +
          `connections: ` +
          `${String(p.requestsPerSec)} req/s, p50 ${String(p.p50Ms)} ms; server ${String(p.serverUsPerRequest)} µs/req, ` +
          `client ${String(p.clientUsPerRequest)} µs/req`,
      );
    }
  } catch (e) {
    httpProbe = { error: e instanceof Error ? e.message : String(e) };
  }
  return { fdatasync4KiB: fsync, loopbackHttp: httpProbe, coreBench: latestCoreBench(), loadAverage: os.loadavg().map((x) => round(x)) };
}

// ---- tables (the rows are built in tables.ts, shared with bench/render_tables.ts) ----

function printTable(title: string, t: { header: string[]; rows: string[][] }, wrapLast = false): void {
  const rows = t.rows.map((r) => (wrapLast ? r.slice(0, -1) : r));
  const header = wrapLast ? t.header.slice(0, -1) : t.header;
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd();
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  t.rows.forEach((r, i) => {
    console.log(line(rows[i]!));
    if (wrapLast) console.log(`    ${r[r.length - 1]!}`);
  });
}

// ---- targets ----

export interface TargetCheck {
  target: string;
  workload: string;
  statefn: string;
  peer: string;
  ratio: number | null;
  met: boolean | null;
  text: string;
}

/**
 * The issue's targets, per workload the peer ran:
 *   HTTP: statefn's best HTTP throughput among rows whose p99 is below the p99 of Restate's best
 *     row, >= 20x Restate's best throughput (only rows that kept up: client drops <= 1%) (same promise: reply once the effect is durable);
 *   generator: statefn's best generator throughput >= 3x the Flink StateFun harness's best on the
 *     counter workloads (closed or open rows alike: the best throughput each reached).
 */
export function targetChecks(results: PeerResult[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  // Rows that did not keep up (requests dropped by the client) and diagnostic variants (statefn
  // with a runtime patch, in older result files) do not count.
  const good = results.filter((r) => sustainedRow(r) && r.settings.diagnostic !== true);
  const best = (rs: PeerResult[]): PeerResult | undefined =>
    rs.reduce<PeerResult | undefined>((m, r) => (m === undefined || r.throughputPerSec > m.throughputPerSec ? r : m), undefined);
  const desc = (r: PeerResult): string => {
    const variant = typeof r.settings.variant === 'string' ? ` (${r.settings.variant})` : '';
    return `${fmtRate(r.throughputPerSec)}/s ${r.path}${variant} ${r.mode} ${at(r)}, p99 ${fmtMs(r.p99Ms)} ms`;
  };
  for (const w of ['counter-uniform', 'counter-zipf', 'chain', 'fraud'] as const) {
    const R = best(good.filter((r) => r.system === 'restate' && r.workload === w));
    if (R !== undefined) {
      const mine = good.filter((r) => r.system === 'statefn' && r.path === 'http' && r.workload === w);
      const lower = best(mine.filter((r) => r.p99Ms < R.p99Ms));
      const S = lower ?? best(mine);
      const ratio = S === undefined ? null : S.throughputPerSec / R.throughputPerSec;
      const met = S === undefined ? false : lower !== undefined && ratio! >= 20;
      out.push({
        target: 'HTTP, durable replies: >= 20x Restate throughput at a lower p99',
        workload: w,
        statefn: S === undefined ? 'no result' : desc(S),
        peer: `restate ${desc(R)}`,
        ratio: ratio === null ? null : round(ratio, 2),
        met,
        text:
          `${w}: statefn ${S === undefined ? 'no result' : desc(S)} vs ` +
          `Restate ${desc(R)}: ${ratio === null ? '-' : `${ratio.toFixed(2)}x`}` +
          `${S !== undefined && lower === undefined ? ' (no statefn HTTP row has a lower p99; best throughput shown)' : ''} ` +
          `-> ${met ? 'MET' : 'NOT MET'}`,
      });
    }
    const F = best(good.filter((r) => r.system === 'flink-statefun' && r.workload === w));
    if (F !== undefined && w.startsWith('counter')) {
      const S = best(good.filter((r) => r.system === 'statefn' && r.path === 'generator' && r.workload === w));
      const ratio = S === undefined ? null : S.throughputPerSec / F.throughputPerSec;
      const met = ratio !== null && ratio >= 3;
      out.push({
        target: 'generator: >= 3x Flink StateFun (embedded, harness) on the counter',
        workload: w,
        statefn: S === undefined ? 'no result' : desc(S),
        peer: `flink-statefun ${desc(F)}`,
        ratio: ratio === null ? null : round(ratio, 2),
        met,
        text:
          `${w}: statefn ${S === undefined ? 'no result' : desc(S)} vs Flink ` +
          `StateFun ${desc(F)}: ${ratio === null ? '-' : `${ratio.toFixed(2)}x`} -> ${met ? 'MET' : 'NOT MET'}`,
      });
    }
  }
  return out;
}

// ---- the run ----

interface PeerModule {
  system: 'restate' | 'flink-statefun';
  key: SystemKey;
  file: string;
  exportName: string;
}

const PEERS: PeerModule[] = [
  { system: 'restate', key: 'restate', file: 'restate', exportName: 'runRestate' },
  { system: 'flink-statefun', key: 'flink', file: 'flink_statefun', exportName: 'runFlinkStatefun' },
];

async function runPeer(p: PeerModule, opts: PeerRunOptions): Promise<PeerResult[]> {
  const ts = new URL(`./${p.file}.ts`, import.meta.url);
  const js = new URL(`./${p.file}.js`, import.meta.url);
  const url = existsSync(fileURLToPath(ts)) ? ts : existsSync(fileURLToPath(js)) ? js : undefined;
  if (url === undefined) throw new Error(`bench/peers/${p.file}.ts is not present`);
  // A computed specifier: the module may not exist when this file is type-checked.
  const mod = (await import(url.href)) as Record<string, unknown>;
  const run = mod[p.exportName];
  if (typeof run !== 'function') throw new Error(`bench/peers/${p.file}.ts does not export ${p.exportName}()`);
  return await (run as (o: PeerRunOptions) => Promise<PeerResult[]>)(opts);
}

export interface RunPeersOptions {
  quick: boolean;
  /** Systems to run: statefn, restate, flink, scaling (statefn implies scaling). Default all. */
  only?: string[];
}

export function peerOptions(quick: boolean, log: (l: string) => void): PeerRunOptions {
  return quick ? { ...DEFAULT_PEER_OPTIONS, quick: true, openRates: [1_000, 10_000], runMs: 5_000, log } : { ...DEFAULT_PEER_OPTIONS, log };
}

export async function runPeers(opts: RunPeersOptions): Promise<{ resultsPath: string; htmlPath: string }> {
  const only = new Set<string>((opts.only ?? [...SYSTEMS]).map((s) => s.trim()).filter((s) => s.length > 0));
  for (const s of only)
    if (!(SYSTEMS as readonly string[]).includes(s)) throw new Error(`--only: unknown system '${s}'; expected ${SYSTEMS.join(', ')}`);
  if (only.has('statefn')) only.add('scaling');
  const startedAt = new Date();
  const log = (l: string): void => console.log(l);
  const o = peerOptions(opts.quick, log);
  const machine = machineInfo();
  log(
    `statefn peers${opts.quick ? ' (quick)' : ''}: ${String(machine.cpuModel)} ` +
      `x${String(machine.cpuCount)}, ${String(machine.totalMemoryGiB)} GiB, node ${process.version}, ` +
      `load average ${(machine.loadAverageAtStart as number[]).join(' ')}; systems: ${[...only].join(', ')}`,
  );
  const limits = await probeLimits(opts.quick, log);

  const results: PeerResult[] = [];
  const peerErrors: { system: string; error: string }[] = [];
  const timings: Record<string, number> = {};
  if (only.has('statefn')) {
    const t0 = Date.now();
    try {
      results.push(...(await runStatefn(o)));
    } catch (e) {
      const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
      peerErrors.push({ system: 'statefn', error });
      log(`statefn FAILED: ${error}`);
    }
    timings.statefnMs = Date.now() - t0;
  }
  for (const p of PEERS) {
    if (!only.has(p.key)) continue;
    const t0 = Date.now();
    try {
      log(`\n${p.system}: starting`);
      const rs = await runPeer(p, o);
      results.push(...rs);
      if (rs.length === 0) peerErrors.push({ system: p.system, error: 'no results' });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      peerErrors.push({ system: p.system, error });
      log(`${p.system} FAILED (recorded, going on): ${error}`);
    }
    timings[`${p.key}Ms`] = Date.now() - t0;
  }
  let scaling: ScalingResult | null = null;
  if (only.has('scaling')) {
    const t0 = Date.now();
    try {
      log('\nscaling: statefn counter, closed loop');
      scaling = await runScaling({ quick: opts.quick, log, runMs: o.runMs });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      peerErrors.push({ system: 'statefn scaling', error });
      log(`scaling FAILED: ${error}`);
    }
    timings.scalingMs = Date.now() - t0;
  }

  // ---- print ----
  const finishedAt = new Date();
  const versions: Record<string, string> = {};
  for (const r of results) versions[r.system] ??= r.version;
  versions.statefn ??= statefnVersion();
  const { log: _log, ...options } = o;
  const doc: PeersDoc = {
    kind: 'statefn-peers',
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    machine: { ...machine, loadAverageAtEnd: os.loadavg().map((x) => round(x)) },
    versions,
    settings: {
      argv: process.argv.slice(2),
      quick: opts.quick,
      systems: [...only],
      options,
      statefn: { engine: STATEFN_ENGINE_DEFAULTS, timing: statefnTiming(o) },
    },
    limits,
    timings,
    targets: targetChecks(results),
    results,
    peerErrors,
    scaling,
  };
  printDoc(doc);

  // ---- write ----
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const resultsPath = join(RESULTS_DIR, `peers-${stamp}.json`);
  writeFileSync(`${resultsPath}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${resultsPath}.tmp`, resultsPath);
  const htmlPath = writeHtml(doc, resultsPath);
  // Keep only the latest results per suite and re-render the README tables from them.
  const superseded = keepLatestAndRender();
  if (superseded.length > 0) console.log(`superseded results deleted: ${superseded.join(', ')}`);
  return { resultsPath, htmlPath };
}

/** What `bench/results/peers-<date>.json` holds. */
export interface PeersDoc {
  kind: 'statefn-peers';
  startedAt: string;
  finishedAt: string;
  machine: Record<string, unknown>;
  versions: Record<string, string>;
  settings: Record<string, unknown> & { quick: boolean };
  limits: Record<string, unknown>;
  timings: Record<string, number>;
  targets: TargetCheck[];
  results: PeerResult[];
  peerErrors: { system: string; error: string }[];
  scaling: ScalingResult | null;
}

/** Print the results table, the target checks, the guarantees and the scaling table. */
export function printDoc(doc: PeersDoc): void {
  printTable(
    `peer benchmarks (${doc.startedAt}; throughput = completed messages/s: counter increments, chains, fraud transactions)`,
    resultsTable(doc.results),
  );
  console.log(
    'ratios: statefn / peer at the same workload, mode and offered rate (HTTP closed loop: same concurrency); statefn http vs ' +
      'restate http, statefn generator vs flink-statefun harness.',
  );
  if (doc.targets.length > 0) {
    console.log('\ntargets');
    for (const t of doc.targets) console.log(`  ${t.target}: ${t.text}`);
  }
  printTable('guarantees (what a completed message means)', guaranteesTable(doc.results), true);
  if (doc.scaling !== null) printTable('statefn counter scaling (generator, closed loop)', scalingTableOf(doc.scaling));
  for (const e of doc.peerErrors) console.log(`\n${e.system}: ${e.error.split('\n')[0]}`);
}

/** Write `<results>.html` (charts and tables) and the stable copy bench/peers-latest.html; a PNG if a headless Chromium is there. */
export function writeHtml(doc: PeersDoc, resultsPath: string): string {
  const htmlPath = resultsPath.replace(/\.json$/, '.html');
  const m = doc.machine;
  const html = renderHtml({
    title: `statefn vs peers${doc.settings.quick ? ' (quick run)' : ''}`,
    startedAt: doc.startedAt,
    machine: m,
    results: doc.results,
    scaling: doc.scaling,
    peerErrors: doc.peerErrors,
    summary: [
      ...doc.targets.map((t) => `${t.target}: ${t.text}`),
      `versions: ${Object.entries(doc.versions)
        .map(([k, v]) => `${k} ${v}`)
        .join('; ')}`,
      `load average at start ${String(m.loadAverageAtStart)}, at end ${String(m.loadAverageAtEnd)} (2 cores: other processes ` +
        `on the machine show up in every figure)`,
      `results: bench/results/${basename(resultsPath)}`,
    ],
    tables: [
      { title: 'results', ...resultsTable(doc.results) },
      { title: 'guarantees', ...guaranteesTable(doc.results) },
      ...(doc.scaling === null ? [] : [{ title: 'statefn counter scaling', ...scalingTableOf(doc.scaling) }]),
    ],
  });
  writeFileSync(htmlPath, html);
  copyFileSync(htmlPath, LATEST_HTML);
  const pngs = writePngs(htmlPath);
  const pngText =
    pngs.length === 0
      ? '; no PNGs (neither a headless Chromium nor rsvg-convert on PATH)'
      : `; ${pngs.length} PNG(s) in ${dirname(pngs[0]!).slice(ROOT.length)}`;
  console.log(
    `\nresults written to ${resultsPath.slice(ROOT.length)}; charts ${htmlPath.slice(ROOT.length)} ` +
      `(copy: ${LATEST_HTML.slice(ROOT.length)})${pngText}`,
  );
  return htmlPath;
}

// Kept importable from here for code that imported them from run_peers.ts before tables.ts existed.
export { guaranteesTable, matchingPeer, resultsTable };

// ---- standalone ----

function parseArgs(argv: string[]): RunPeersOptions & { render?: string } {
  const out: RunPeersOptions & { render?: string } = { quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') out.quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a === '--only' ? argv[++i] : a.slice('--only='.length);
      if (v === undefined) throw new Error('--only: missing value (statefn,restate,flink,scaling)');
      out.only = v.split(',');
    } else if (a === '--render') {
      const v = argv[++i];
      if (v === undefined) throw new Error('--render: missing results file');
      out.render = v;
    } else if (a === '--help' || a === '-h') {
      console.log(
        'usage: node --import tsx bench/peers/run_peers.ts [--quick] [--only statefn,restate,flink,scaling]\n' +
          '       node --import tsx bench/peers/run_peers.ts --render bench/results/peers-<date>.json   (print the tables, ' +
          'rewrite the HTML)',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = parseArgs(process.argv.slice(2));
  const run = async (): Promise<unknown> => {
    if (args.render === undefined) return runPeers(args);
    const path = resolve(args.render);
    const doc = JSON.parse(readFileSync(path, 'utf8')) as PeersDoc;
    doc.targets = targetChecks(doc.results);
    printDoc(doc);
    return writeHtml(doc, path);
  };
  run().catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exitCode = 1;
  });
}
