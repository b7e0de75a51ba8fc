/**
 * The tables of the peers benchmark (results, guarantees, statefn scaling) built from a
 * `bench/results/peers-<date>.json` document's rows: printed and put into the HTML by run_peers.ts
 * and rendered into the READMEs by bench/render_tables.ts, so all three show the same cells.
 */
import type { PeerResult } from './types.js';
import type { ScalingResult } from './scaling.js';
import { seriesName } from './charts.js';

/** A throughput for the tables: M or K units when large, '-' when not a number. */
export function fmtRate(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)} K`;
  return x.toFixed(0);
}

/** A latency in ms with 2-3 significant digits, '-' when not a number. */
export function fmtMs(x: number): string {
  if (!Number.isFinite(x)) return '-';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function at(r: PeerResult): string {
  if (r.mode === 'open') return `${fmtRate(r.offeredPerSec ?? Number.NaN)}/s`;
  return r.concurrency !== undefined ? `c=${r.concurrency}` : 'max';
}

export function failedRow(r: PeerResult): boolean {
  return typeof r.notes === 'string' && r.notes.startsWith('FAILED');
}

/** The peer row a statefn row is compared with, if any. */
export function matchingPeer(r: PeerResult, all: readonly PeerResult[]): PeerResult | undefined {
  if (r.system !== 'statefn') return undefined;
  const peer = r.path === 'http' ? 'restate' : r.path === 'generator' ? 'flink-statefun' : undefined;
  if (peer === undefined) return undefined;
  const same = all.filter((p) => p.system === peer && p.workload === r.workload && p.mode === r.mode && !failedRow(p));
  if (r.mode === 'open') return same.find((p) => p.offeredPerSec === r.offeredPerSec);
  if (r.path === 'http') return same.find((p) => p.concurrency === r.concurrency);
  // The generator's closed loop runs at max: compare with the peer's best closed-loop row.
  return same.reduce<PeerResult | undefined>((m, p) => (m === undefined || p.throughputPerSec > m.throughputPerSec ? p : m), undefined);
}

/** A row that kept up: no failures, errors (e.g. requests the client dropped) at most 1% of completions. */
export function sustainedRow(r: PeerResult): boolean {
  return !failedRow(r) && r.throughputPerSec > 0 && r.errors <= 0.01 * Math.max(1, r.completed);
}

const ORDER = { 'counter-uniform': 0, 'counter-zipf': 1, chain: 2, fraud: 3 } as const;
const SYS = { statefn: 0, restate: 1, 'flink-statefun': 2 } as const;

function sortRows(rs: PeerResult[]): PeerResult[] {
  const key = (r: PeerResult): string => seriesName(r);
  return [...rs].sort(
    (a, b) =>
      ORDER[a.workload] - ORDER[b.workload] ||
      (a.mode === b.mode ? 0 : a.mode === 'closed' ? -1 : 1) ||
      (a.mode === 'open' ? (a.offeredPerSec ?? 0) - (b.offeredPerSec ?? 0) : (a.concurrency ?? 0) - (b.concurrency ?? 0)) ||
      SYS[a.system] - SYS[b.system] ||
      key(a).localeCompare(key(b)),
  );
}

export function resultsTable(results: PeerResult[]): { header: string[]; rows: string[][] } {
  const header = [
    'system',
    'workload',
    'path',
    'mode',
    'offered/conc',
    'throughput/s',
    'p50 ms',
    'p99 ms',
    'p99.9 ms',
    'errors',
    'thr statefn/peer',
    'p99 statefn/peer',
    'notes',
  ];
  const rows = sortRows(results).map((r) => {
    const p = matchingPeer(r, results);
    const variant = typeof r.settings.variant === 'string' ? ` (${r.settings.variant})` : '';
    return [
      r.system,
      r.workload,
      `${r.path}${variant}`,
      r.mode,
      at(r),
      failedRow(r) ? 'FAILED' : fmtRate(r.throughputPerSec),
      fmtMs(r.p50Ms),
      fmtMs(r.p99Ms),
      fmtMs(r.p999Ms),
      String(r.errors),
      p === undefined || !(p.throughputPerSec > 0) ? '' : `${(r.throughputPerSec / p.throughputPerSec).toFixed(2)}x (${p.system})`,
      p === undefined || !(p.p99Ms > 0) || !Number.isFinite(r.p99Ms) ? '' : `${(r.p99Ms / p.p99Ms).toFixed(2)}x`,
      (r.notes ?? '').slice(0, 120),
    ];
  });
  return { header, rows };
}

export function guaranteesTable(results: PeerResult[]): { header: string[]; rows: string[][] } {
  const groups = new Map<string, { system: string; path: string; workloads: Set<string>; guarantee: string }>();
  for (const r of results) {
    const variant = typeof r.settings.variant === 'string' ? ` (${r.settings.variant})` : '';
    const k = `${r.system}|${r.path}${variant}|${r.guarantee}`;
    const g = groups.get(k) ?? { system: r.system, path: `${r.path}${variant}`, workloads: new Set<string>(), guarantee: r.guarantee };
    g.workloads.add(r.workload);
    groups.set(k, g);
  }
  return {
    header: ['system', 'path', 'workloads', 'guarantee of a completed message'],
    rows: [...groups.values()].map((g) => [g.system, g.path, [...g.workloads].join(', '), g.guarantee]),
  };
}

export function scalingTableOf(scaling: ScalingResult | null): { header: string[]; rows: string[][] } {
  const row = (series: string, p: ScalingResult['byKeys'][number]): string[] => [
    p.variant === 'raised dirty bound' ? `${series} (raised dirty bound)` : series,
    String(p.workers),
    String(p.keys),
    p.error === undefined ? fmtRate(p.throughputPerSec) : 'FAILED',
    fmtMs(p.p99Ms),
    String(p.keysTouchedEstimate),
    typeof p.detail.rssMaxMiB === 'number' ? String(p.detail.rssMaxMiB) : '-',
    (p.error ?? p.notes ?? '')
      .replace('closed loop: latency is queueing at saturation (behind back-pressure)', '')
      .replace(/^; /, '')
      .slice(0, 160),
  ];
  return {
    header: ['series', 'workers', 'keys', 'msg/s', 'p99 ms (queueing)', 'keys touched (est.)', 'rss max MiB', 'notes'],
    rows: scaling === null ? [] : [...scaling.byWorkers.map((p) => row('workers', p)), ...scaling.byKeys.map((p) => row('keys', p))],
  };
}
