/**
 * The tables of `npm run bench` (bench/run.ts), in one place so that the console output and the
 * README tables rendered from bench/results/ (bench/render_tables.ts) use the same rows: a table
 * is a header and rows of cells, built once per section here and printed either as aligned text
 * (`printTable`) or as Markdown (`markdownTable`).
 */
import type { CheckpointResult } from './checkpoint_bench.js';
import type { KafkaResult } from './kafka_bench.js';
import type { MacroResult } from './macro.js';
import type { MicroResult } from './micro.js';

/** A table of cells; `rightAligned[c]` right-aligns column c (numbers), default left. */
export interface Table {
  header: string[];
  rows: string[][];
  rightAligned?: boolean[];
}

/** Format a rate with thousands separators, or in M/K units when large. */
export function formatRate(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} K`;
  return x.toFixed(1);
}

export function formatMs(x: number | undefined): string {
  return x === undefined ? '-' : x.toFixed(2);
}

/** Print rows as a table with a title and a header, each column padded to its widest cell. */
export function printTable(title: string, t: Table): void {
  const widths = t.header.map((h, c) => Math.max(h.length, ...t.rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => (t.rightAligned?.[c] === true ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  console.log(`\n${title}`);
  console.log(line(t.header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of t.rows) console.log(line(r));
}

/** A Markdown (GitHub) table; `|` inside a cell is escaped so that it stays one cell. */
export function markdownTable(t: Table): string {
  const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const line = (cells: string[]): string => `| ${cells.map(cell).join(' | ')} |`;
  const rule = t.header.map((_, c) => (t.rightAligned?.[c] === true ? '---:' : '---'));
  return [line(t.header), `|${rule.join('|')}|`, ...t.rows.map(line)].join('\n');
}

/** The table restricted to the named columns, in that order (an unknown name is an error). */
export function pickColumns(t: Table, names: readonly string[]): Table {
  const idx = names.map((n) => {
    const i = t.header.indexOf(n);
    if (i < 0) throw new Error(`no column '${n}' in [${t.header.join(', ')}]`);
    return i;
  });
  return {
    header: idx.map((i) => t.header[i]!),
    rows: t.rows.map((r) => idx.map((i) => r[i] ?? '')),
    rightAligned: idx.map((i) => t.rightAligned?.[i] === true),
  };
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

export function microTable(results: MicroResult[]): Table {
  return {
    header: ['name', 'rate', 'unit', 'notes'],
    rows: results.map((r) => [r.name, formatRate(r.opsPerSec), r.unit, microDetail(r)]),
    rightAligned: [false, true, false, false],
  };
}

export function macroTable(results: MacroResult[]): Table {
  return {
    header: ['name', 'messages/s', 'p50 ms', 'p99 ms'],
    rows: results.map((r) => [r.name, formatRate(r.messagesPerSec), formatMs(r.p50Ms), formatMs(r.p99Ms)]),
    rightAligned: [false, true, true, true],
  };
}

export function checkpointTable(results: CheckpointResult[]): Table {
  return {
    header: ['name', 'value', 'unit', 'notes'],
    rows: results.map((r) => {
      const d = r.detail ?? {};
      const notes: string[] = [];
      if (typeof d.changedKeys === 'number')
        notes.push(
          `${String(d.changedKeys)} keys, ${String(d.objects)} objects, ` +
            `upload ${String(d.uploadMs)} ms, ${String(d.bytesPerChangedKey)} B/key`,
        );
      if (typeof d.bytesRatioToSmallestK === 'number') notes.push(`bytes ratio to smallest K ${String(d.bytesRatioToSmallestK)}`);
      if (typeof d.engineStartMs === 'number')
        notes.push(`Engine.start ${String(d.engineStartMs)} ms, +${String(d.overEmptyStartMs)} ms over empty`);
      if (typeof d.throughputRatioSnapshotsOnToOff === 'number') notes.push(`on/off ratio ${String(d.throughputRatioSnapshotsOnToOff)}`);
      if (Array.isArray(d.skipped)) notes.push((d.skipped as string[]).join('; '));
      return [r.name, r.unit === 'msg/s' ? formatRate(r.value) : String(Math.round(r.value)), r.unit, notes.join('; ')];
    }),
    rightAligned: [false, true, false, false],
  };
}

/** The title line of the Kafka table: broker, record count and the open-loop rate. */
export function kafkaTitle(r: KafkaResult): string {
  const version = r.broker.version === undefined ? '' : `, Kafka ${r.broker.version}`;
  return (
    `kafka benchmarks (Kafka -> counter -> Kafka; broker ${r.broker.bootstrap}${version}; ` +
    `${String(r.settings.records)} records closed loop, latency at ${String(r.settings.latencyRatePerSec)}/s open loop)`
  );
}

export function kafkaTable(r: KafkaResult): Table {
  const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  return {
    header: ['system', 'semantic', 'rec/s', 'ratio', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'achieved/s', 'guarantee'],
    rows: r.systems.map((s) =>
      'error' in s
        ? [s.system, s.semantic, 'FAILED', '-', '-', '-', '-', '-', '-', s.error.slice(0, 100)]
        : [
            s.system,
            s.semantic,
            formatRate(s.throughput.recordsPerSec),
            s.ratioToKafkajs === undefined ? '-' : s.ratioToKafkajs.toFixed(2),
            ms(s.latency.p50Ms),
            ms(s.latency.p99Ms),
            ms(s.latency.p999Ms),
            ms(s.latency.maxMs),
            String(s.latency.achievedPerSec),
            s.guarantee,
          ],
    ),
    rightAligned: [false, false, true, true, true, true, true, true, true, false],
  };
}
