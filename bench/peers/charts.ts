/**
 * Charts of a peer run as one self-contained HTML page: inline SVG, inline CSS, no script, no
 * external resource, no dependency. Per workload: throughput vs offered load (open loop, log-log,
 * with the closed-loop maxima as dashed levels) and latency percentiles (p50 / p99 / p99.9) vs
 * offered load, per system and ingress path; HTTP closed loop against concurrency; statefn's
 * scaling with worker count and with key count; the results and guarantees tables.
 *
 * PNGs: only when a Chromium-family browser is on PATH (`chromium`, `chromium-browser`,
 * `google-chrome`, `google-chrome-stable`), as a headless screenshot of the page; otherwise none
 * (the project adds no dependency for it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PeerResult, Workload } from './types.js';
import type { ScalingResult } from './scaling.js';

export interface ChartInput {
  title: string;
  startedAt: string;
  machine: Record<string, unknown>;
  results: PeerResult[];
  scaling?: ScalingResult | null;
  peerErrors: { system: string; error: string }[];
  /** Lines of text shown under the title (targets, limits). */
  summary: string[];
  /** The printed tables, as header + rows. */
  tables: { title: string; header: string[]; rows: string[][] }[];
}

// ---- series ----

export function seriesName(r: PeerResult): string {
  const v = typeof r.settings.variant === 'string' ? ` (${r.settings.variant})` : '';
  return `${r.system} ${r.path}${v}`;
}

const PALETTE: Record<string, string> = {
  'statefn generator': '#1f77b4',
  'statefn http': '#2ca02c',
  'restate http': '#ff7f0e',
  'flink-statefun harness': '#d62728',
};
const EXTRA = ['#17becf', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

function colorFor(name: string, used: Map<string, string>): string {
  let c = used.get(name);
  if (c !== undefined) return c;
  c = PALETTE[name] ?? EXTRA[[...used.keys()].filter((k) => PALETTE[k] === undefined).length % EXTRA.length]!;
  used.set(name, c);
  return c;
}

interface Pt {
  x: number;
  y: number;
}
interface Series {
  name: string;
  color: string;
  dash?: string;
  points: Pt[];
  /** Draw as a horizontal level (closed-loop max) instead of a polyline. */
  level?: boolean;
  /** Leave out of the legend (e.g. p99 and p99.9 lines of a series whose p50 line is listed). */
  noLegend?: boolean;
}

// ---- SVG ----

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 1 || a === 0) return `${+v.toPrecision(3)}`;
  return `${+v.toPrecision(2)}`;
}

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  const span = Math.log10(hi) - Math.log10(lo);
  const mults = span <= 2 ? [1, 2, 5] : [1];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mults) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out;
}

function linTicks(lo: number, hi: number): number[] {
  const span = hi - lo || 1;
  const step0 = 10 ** Math.floor(Math.log10(span / 5));
  const step = [1, 2, 5, 10].map((m) => m * step0).find((s) => span / s <= 6) ?? step0 * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  xLog: boolean;
  yLog: boolean;
  series: Series[];
  /** Draw y = x (offered = achieved). */
  diagonal?: boolean;
  width?: number;
  height?: number;
  note?: string;
}

function chart(c: ChartSpec): string {
  const W = c.width ?? 640;
  const H = c.height ?? 360;
  const m = { l: 64, r: 12, t: 30, b: 46 };
  const legend = c.series.filter((s) => s.points.length > 0 && s.noLegend !== true);
  const cols = legend.some((s) => s.name.length > 42) ? 1 : 2;
  const legendH = 16 * Math.ceil(legend.length / cols) + 6;
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const pts = c.series
    .flatMap((s) => s.points)
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!c.xLog || p.x > 0) && (!c.yLog || p.y > 0));
  if (pts.length === 0) {
    return (
      `<figure><svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="80" role="img"><text x="10" y="20" ` +
      `font-weight="bold">${esc(c.title)}</text><text x="10" y="50" fill="#777">no data</text></svg></figure>`
    );
  }
  // Levels (closed-loop maxima) span the x axis: only their y counts for the ranges.
  const xs = c.series
    .filter((s) => s.level !== true)
    .flatMap((s) => s.points)
    .map((p) => p.x)
    .filter((x) => Number.isFinite(x) && (!c.xLog || x > 0));
  let xlo = xs.length > 0 ? Math.min(...xs) : 1;
  let xhi = xs.length > 0 ? Math.max(...xs) : 10;
  let ylo = Math.min(...pts.map((p) => p.y));
  let yhi = Math.max(...pts.map((p) => p.y));
  if (c.diagonal) {
    ylo = Math.min(ylo, xlo);
    yhi = Math.max(yhi, xhi);
  }
  const pad = (lo: number, hi: number, log: boolean): [number, number] => {
    if (log) {
      const a = 10 ** Math.floor(Math.log10(lo));
      const b = 10 ** Math.ceil(Math.log10(hi));
      return [a, b === a ? a * 10 : b];
    }
    const lo2 = Math.min(0, lo);
    return [lo2, hi === lo2 ? lo2 + 1 : hi * 1.08];
  };
  [xlo, xhi] = pad(xlo, xhi, c.xLog);
  [ylo, yhi] = pad(ylo, yhi, c.yLog);
  const sx = (x: number): number =>
    m.l + (c.xLog ? (Math.log10(x) - Math.log10(xlo)) / (Math.log10(xhi) - Math.log10(xlo)) : (x - xlo) / (xhi - xlo)) * pw;
  const sy = (y: number): number =>
    m.t + ph - (c.yLog ? (Math.log10(y) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo)) : (y - ylo) / (yhi - ylo)) * ph;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + legendH}" viewBox="0 0 ${W} ${H + legendH}" role="img" ` +
      `font-family="sans-serif" font-size="11">`,
  );
  o.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(c.title)}</text>`);
  o.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="#fff" stroke="#999"/>`);
  for (const v of c.xLog ? logTicks(xlo, xhi) : linTicks(xlo, xhi)) {
    const x = sx(v);
    o.push(
      `<line x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + ph}" stroke="#eee"/><text x="${x}" y="${m.t + ph + 14}" ` +
        `text-anchor="middle">${fmtTick(v)}</text>`,
    );
  }
  for (const v of c.yLog ? logTicks(ylo, yhi) : linTicks(ylo, yhi)) {
    const y = sy(v);
    o.push(
      `<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="#eee"/><text x="${m.l - 4}" y="${y + 4}" ` +
        `text-anchor="end">${fmtTick(v)}</text>`,
    );
  }
  o.push(`<text x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  o.push(`<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  if (c.diagonal) {
    const a = Math.max(xlo, ylo);
    const b = Math.min(xhi, yhi);
    if (b > a) o.push(`<line x1="${sx(a)}" y1="${sy(a)}" x2="${sx(b)}" y2="${sy(b)}" stroke="#bbb" stroke-dasharray="2 3"/>`);
  }
  o.push(`<clipPath id="c${c.title.length}${W}"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath>`);
  const shown = c.series.filter((s) => s.points.length > 0);
  for (const s of shown) {
    const ok = s.points
      .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!c.xLog || p.x > 0) && (!c.yLog || p.y > 0))
      .sort((p, q) => p.x - q.x);
    if (ok.length === 0) continue;
    const dash = s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`;
    if (s.level) {
      const y = sy(ok[0]!.y);
      o.push(
        `<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}" stroke="${s.color}" stroke-width="1.5"${dash} ` +
          `opacity="0.8"><title>${esc(`${s.name}: ${fmtTick(ok[0]!.y)}`)}</title></line>`,
      );
      continue;
    }
    o.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} ` +
        `points="${ok.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const p of ok)
      o.push(
        `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3" fill="${s.color}">` +
          `<title>${esc(`${s.name}: x ${fmtTick(p.x)}, y ${fmtTick(p.y)}`)}</title></circle>`,
      );
  }
  legend.forEach((s, i) => {
    const x = m.l + (i % cols) * (pw / cols);
    const y = H + 4 + Math.floor(i / cols) * 16;
    const dash = s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`;
    o.push(
      `<line x1="${x}" y1="${y + 6}" x2="${x + 22}" y2="${y + 6}" stroke="${s.color}" stroke-width="2"${dash}/><text ` +
        `x="${x + 27}" y="${y + 10}">${esc(s.name)}</text>`,
    );
  });
  o.push('</svg>');
  return `<figure>${o.join('')}${c.note === undefined ? '' : `<figcaption>${esc(c.note)}</figcaption>`}</figure>`;
}

// ---- the page ----

const WORKLOADS: Workload[] = ['counter-uniform', 'counter-zipf', 'chain', 'fraud'];

function ok(r: PeerResult): boolean {
  return r.throughputPerSec > 0 && !(typeof r.notes === 'string' && r.notes.startsWith('FAILED'));
}

function workloadCharts(results: PeerResult[], w: Workload, colors: Map<string, string>): string {
  const rows = results.filter((r) => r.workload === w && ok(r));
  if (rows.length === 0) return '';
  const names = [...new Set(rows.map(seriesName))];
  const thr: Series[] = [];
  const lat: Series[] = [];
  for (const n of names) {
    const color = colorFor(n, colors);
    const open = rows.filter((r) => seriesName(r) === n && r.mode === 'open' && r.offeredPerSec !== undefined);
    thr.push({ name: n, color, points: open.map((r) => ({ x: r.offeredPerSec!, y: r.throughputPerSec })) });
    const closedMax = Math.max(0, ...rows.filter((r) => seriesName(r) === n && r.mode === 'closed').map((r) => r.throughputPerSec));
    if (closedMax > 0)
      thr.push({ name: `${n}: closed-loop max`, color, dash: '6 4', level: true, noLegend: true, points: [{ x: 1, y: closedMax }] });
    lat.push({ name: n, color, points: open.map((r) => ({ x: r.offeredPerSec!, y: r.p50Ms })) });
    lat.push({ name: `${n} p99`, color, dash: '6 3', noLegend: true, points: open.map((r) => ({ x: r.offeredPerSec!, y: r.p99Ms })) });
    lat.push({ name: `${n} p99.9`, color, dash: '2 3', noLegend: true, points: open.map((r) => ({ x: r.offeredPerSec!, y: r.p999Ms })) });
  }
  const parts = [
    chart({
      title: `${w}: throughput vs offered load (open loop)`,
      xLabel: 'offered /s',
      yLabel: 'completed /s',
      xLog: true,
      yLog: true,
      series: thr,
      diagonal: true,
      note: 'dotted grey: completed = offered; dashed levels: closed-loop maxima (best concurrency)',
    }),
    chart({
      title: `${w}: latency vs offered load (open loop)`,
      xLabel: 'offered /s',
      yLabel: 'latency ms',
      xLog: true,
      yLog: true,
      series: lat,
      note: 'solid p50, dashed p99, dotted p99.9',
    }),
  ];
  const closedHttp = rows.filter((r) => r.mode === 'closed' && r.concurrency !== undefined);
  if (closedHttp.length > 0) {
    const cn = [...new Set(closedHttp.map(seriesName))];
    const ct: Series[] = cn.map((n) => ({
      name: n,
      color: colorFor(n, colors),
      points: closedHttp.filter((r) => seriesName(r) === n).map((r) => ({ x: r.concurrency!, y: r.throughputPerSec })),
    }));
    const cl: Series[] = cn.flatMap((n) => {
      const rs = closedHttp.filter((r) => seriesName(r) === n);
      const color = colorFor(n, colors);
      return [
        { name: n, color, points: rs.map((r) => ({ x: r.concurrency!, y: r.p50Ms })) },
        { name: `${n} p99`, color, dash: '6 3', noLegend: true, points: rs.map((r) => ({ x: r.concurrency!, y: r.p99Ms })) },
      ];
    });
    parts.push(
      chart({
        title: `${w}: closed loop, throughput vs concurrency`,
        xLabel: 'requests outstanding',
        yLabel: 'completed /s',
        xLog: true,
        yLog: true,
        series: ct,
      }),
    );
    parts.push(
      chart({
        title: `${w}: closed loop, latency vs concurrency`,
        xLabel: 'requests outstanding',
        yLabel: 'latency ms',
        xLog: true,
        yLog: true,
        series: cl,
        note: 'solid p50, dashed p99',
      }),
    );
  }
  return `<h2>${esc(w)}</h2><div class="row">${parts.join('')}</div>`;
}

function scalingCharts(s: ScalingResult): string {
  const okp = (p: { throughputPerSec: number; error?: string }): boolean => p.error === undefined && p.throughputPerSec > 0;
  const byW = chart({
    title: 'statefn counter: throughput vs workers (100,000 keys)',
    xLabel: 'worker threads',
    yLabel: 'messages /s',
    xLog: false,
    yLog: false,
    series: [
      {
        name: 'statefn generator, closed loop',
        color: PALETTE['statefn generator']!,
        points: s.byWorkers.filter(okp).map((p) => ({ x: p.workers, y: p.throughputPerSec })),
      },
    ],
  });
  const byK = chart({
    title: 'statefn counter: throughput vs keys (2 workers)',
    xLabel: 'keys',
    yLabel: 'messages /s',
    xLog: true,
    yLog: false,
    width: 700,
    series: [
      {
        name: 'statefn generator, closed loop, default limits',
        color: PALETTE['statefn generator']!,
        points: s.byKeys.filter((p) => p.variant !== 'raised dirty bound').map((p) => ({ x: p.keys, y: p.throughputPerSec })),
      },
      {
        name: 'same, dirtyEntriesMax raised to 2^21',
        color: '#9467bd',
        dash: '6 3',
        points: s.byKeys.filter((p) => okp(p) && p.variant === 'raised dirty bound').map((p) => ({ x: p.keys, y: p.throughputPerSec })),
      },
    ],
    note:
      'default limits at 0 = the engine stalled (dirty-set deadlock, see bench/README.md); large key counts: the window ' +
      'touches only part of the keys, mostly for the first time (keysTouchedEstimate in the JSON)',
  });
  return `<h2>statefn scaling</h2><div class="row">${byW}${byK}</div>`;
}

function table(t: { title: string; header: string[]; rows: string[][] }): string {
  return `<h3>${esc(t.title)}</h3><table><thead><tr>${t.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${t.rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

export function renderHtml(d: ChartInput): string {
  const colors = new Map<string, string>();
  const m = d.machine;
  const body = [
    `<h1>${esc(d.title)}</h1>`,
    `<p class="meta">${esc(d.startedAt)} — ${esc(String(m.cpuModel))} ` +
      `x${esc(String(m.cpuCount))}, ${esc(String(m.totalMemoryGiB))} GiB, ` +
      `node ${esc(String(m.node))}, ${esc(String(m.platform))} ${esc(String(m.release))}</p>`,
    d.summary.length > 0 ? `<ul>${d.summary.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>` : '',
    d.peerErrors.length > 0 ? `<p class="err">${d.peerErrors.map((e) => `${esc(e.system)}: ${esc(e.error)}`).join('<br>')}</p>` : '',
    ...WORKLOADS.map((w) => workloadCharts(d.results, w, colors)),
    d.scaling ? scalingCharts(d.scaling) : '',
    ...d.tables.map(table),
  ];
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(d.title)}</title><style>
body{font-family:sans-serif;margin:16px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}h3{font-size:14px}
.row{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}figcaption{font-size:11px;color:#666;max-width:600px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;vertical-align:top}
td:first-child,th:first-child{text-align:left}.meta{color:#555}.err{color:#b00}
</style></head><body>${body.join('\n')}</body></html>\n`;
}

function onPath(name: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(d, name);
    if (d !== '' && existsSync(p)) return p;
  }
  return undefined;
}

/**
 * PNGs of the page, without any new dependency: a headless Chromium screenshot of the whole page
 * (`<html>.png`) if a Chromium-family browser is on PATH; else, if librsvg's `rsvg-convert` is on
 * PATH, one PNG per chart in `<html minus .html>-charts/`. Returns the paths written (none when
 * neither tool is installed).
 */
export function writePngs(htmlPath: string): string[] {
  const chromium = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].map(onPath).find((p) => p !== undefined);
  if (chromium !== undefined) {
    const png = htmlPath.replace(/\.html$/, '.png');
    try {
      execFileSync(
        chromium,
        ['--headless=new', '--no-sandbox', '--disable-gpu', `--screenshot=${png}`, '--window-size=1320,7000', pathToFileURL(htmlPath).href],
        { stdio: 'ignore', timeout: 60_000 },
      );
      if (existsSync(png)) return [png];
    } catch {
      // fall through to rsvg-convert
    }
  }
  const rsvg = onPath('rsvg-convert');
  if (rsvg === undefined) return [];
  const html = readFileSync(htmlPath, 'utf8');
  const dir = htmlPath.replace(/\.html$/, '-charts');
  mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  svgs.forEach((svg, i) => {
    const title = /font-weight="bold">([^<]*)<\/text>/.exec(svg)?.[1] ?? `chart-${i}`;
    const slug = title
      .replace(/&[a-z]+;/g, '')
      .replace(/[^a-zA-Z0-9]+/g, '-')
      .replace(/^-|-$/g, '')
      .toLowerCase()
      .slice(0, 60);
    const png = join(dir, `${String(i + 1).padStart(2, '0')}-${slug}.png`);
    try {
      execFileSync(rsvg, ['-b', 'white', '-o', png], { input: svg, stdio: ['pipe', 'ignore', 'ignore'], timeout: 30_000 });
      out.push(png);
    } catch {
      // skip this chart
    }
  });
  return out;
}
