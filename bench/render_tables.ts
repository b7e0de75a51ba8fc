/**
 * `npm run bench:tables [-- --check | --list]`: renders the benchmark tables of README.md and
 * bench/README.md from the latest results file of each suite in bench/results/.
 *
 * A suite is one kind of run whose figures are comparable (bench/README.md, "Results files and
 * suites", is the definition for readers):
 *   - `bench/run.ts` (`npm run bench`) files `<ISO date>.json`: one suite per section the file
 *     holds results for: `micro`, `macro`, `checkpoint`, `kafka`, `remote`; a `--quick` run's
 *     sections are the suites `<section>-quick`. A full `npm run bench` file belongs to all
 *     five; a `--only kafka` file to `kafka` alone.
 *   - `bench/peers/run_peers.ts` (`npm run bench -- --peers`) files `peers-<ISO date>.json`: the
 *     suite `peers` for a run of all systems, `peers-only-<systems>` for a `--only` run (the
 *     systems as given, `+`-joined; `statefn` implies the scaling runs, so `--only statefn` is
 *     `peers-only-statefn`), with `-quick` appended for `--quick`.
 * The latest file of a suite is the one that started last. A file that is the latest of none of
 * its suites is superseded (`--list` names them; each benchmark run deletes the ones it superseded and re-renders the tables; git keeps them).
 *
 * In a Markdown file, everything between `<!-- bench:<block>:start -->` and
 * `<!-- bench:<block>:end -->` is replaced by the rendered block; `<block>` is a suite, or
 * `<suite>.<view>` for one of several tables of a suite (see BLOCKS). Each block starts with its
 * source file and run date. `--check` rewrites nothing and exits 1 if a file is not up to date.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { CheckpointResult } from './checkpoint_bench.js';
import type { KafkaResult } from './kafka_bench.js';
import type { MacroResult } from './macro.js';
import type { MicroResult } from './micro.js';
import type { PeersDoc } from './peers/run_peers.js';
import { guaranteesTable, resultsTable, scalingTableOf } from './peers/tables.js';
import { checkpointTable, kafkaTable, kafkaTitle, macroTable, markdownTable, microTable, pickColumns, type Table } from './tables.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The Markdown files whose marked blocks are rendered, relative to the repository root. */
export const MARKDOWN_FILES = ['README.md', 'bench/README.md'] as const;
export const RESULTS_DIR = 'bench/results';

const RUN_SECTIONS = ['micro', 'macro', 'checkpoint', 'kafka', 'remote'] as const;
/** run_peers.ts's systems in its own order; `statefn` implies `scaling`. */
const PEER_SYSTEMS = ['statefn', 'restate', 'flink', 'scaling'] as const;

/** What bench/run.ts writes (the sections not run are null). */
interface RunDoc {
  startedAt: string;
  machine: Record<string, unknown>;
  settings: { quick: boolean; only: string | null; argv: string[] };
  micro: MicroResult[] | null;
  macro: MacroResult[] | null;
  checkpoint: CheckpointResult[] | null;
  kafka: KafkaResult | { error: string } | null;
  remote: unknown;
}

/** One results file with the suites it belongs to. */
export interface ResultsFile {
  /** Path relative to the repository root, with `/`. */
  path: string;
  startedAt: string;
  suites: string[];
  doc: RunDoc | PeersDoc;
}

function isPeersDoc(doc: RunDoc | PeersDoc): doc is PeersDoc {
  return (doc as PeersDoc).kind === 'statefn-peers';
}

/** The suites a results document belongs to (the definition in this file's header). */
export function suitesOf(doc: RunDoc | PeersDoc): string[] {
  const quick = doc.settings.quick ? '-quick' : '';
  if (isPeersDoc(doc)) {
    const systems = (doc.settings.systems as string[] | undefined) ?? [...PEER_SYSTEMS];
    if (PEER_SYSTEMS.every((s) => systems.includes(s))) return [`peers${quick}`];
    const given = PEER_SYSTEMS.filter((s) => systems.includes(s) && !(s === 'scaling' && systems.includes('statefn')));
    return [`peers-only-${given.join('+')}${quick}`];
  }
  return RUN_SECTIONS.filter((s) => doc[s] !== null && doc[s] !== undefined).map((s) => `${s}${quick}`);
}

/** Every results file in bench/results/ (JSON only), oldest first. */
export function readResults(root = ROOT): ResultsFile[] {
  const dir = join(root, RESULTS_DIR);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      const doc = JSON.parse(readFileSync(join(dir, f), 'utf8')) as RunDoc | PeersDoc;
      return { path: `${RESULTS_DIR}/${f}`, startedAt: doc.startedAt, suites: suitesOf(doc), doc };
    })
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** Suite -> its latest file. */
export function latestPerSuite(files: readonly ResultsFile[]): Map<string, ResultsFile> {
  const latest = new Map<string, ResultsFile>();
  for (const f of files) for (const s of f.suites) if ((latest.get(s)?.startedAt ?? '') <= f.startedAt) latest.set(s, f);
  return latest;
}

/** Files that are the latest of none of their suites. */
export function supersededFiles(files: readonly ResultsFile[]): ResultsFile[] {
  const kept = new Set([...latestPerSuite(files).values()]);
  return files.filter((f) => !kept.has(f));
}

// ---- blocks ----

function runDoc(f: ResultsFile): RunDoc {
  if (isPeersDoc(f.doc)) throw new Error(`${f.path} is a peers results file, not bench/run.ts's`);
  return f.doc;
}

function peersDoc(f: ResultsFile): PeersDoc {
  if (!isPeersDoc(f.doc)) throw new Error(`${f.path} is not a peers results file`);
  return f.doc;
}

function section<T>(f: ResultsFile, value: T | { error: string } | null, name: string): T {
  if (value === null) throw new Error(`${f.path} has no ${name} results`);
  if (typeof value === 'object' && 'error' in value) throw new Error(`${f.path}: the ${name} section failed: ${value.error}`);
  return value;
}

/** The peers results table restricted to closed-loop rows (open-loop rows are in the HTML charts). */
function peersClosed(doc: PeersDoc): Table {
  const closed = resultsTable(doc.results.filter((r) => r.mode === 'closed'));
  return pickColumns(closed, [
    'system',
    'workload',
    'path',
    'offered/conc',
    'throughput/s',
    'p50 ms',
    'p99 ms',
    'p99.9 ms',
    'errors',
    'thr statefn/peer',
  ]);
}

function peersTargets(doc: PeersDoc): Table {
  return {
    header: ['target', 'workload', 'statefn', 'peer', 'ratio', 'met'],
    rows: doc.targets.map((t) => [
      t.target,
      t.workload,
      t.statefn,
      t.peer,
      t.ratio === null ? '-' : `${t.ratio.toFixed(2)}x`,
      t.met === null ? '-' : t.met ? 'yes' : 'no',
    ]),
  };
}

/**
 * A renderable view: the suite whose latest file it reads and the Markdown it makes of that file.
 * The block name in the markers is `<suite>` for a suite's main table, `<suite>.<view>` otherwise.
 */
interface View {
  suite: string;
  render: (f: ResultsFile) => string;
}

const md = (t: Table): string => markdownTable(t);

/** Every block name the markers may use. */
export const BLOCKS: Record<string, View> = {
  micro: { suite: 'micro', render: (f) => md(microTable(section(f, runDoc(f).micro, 'micro'))) },
  macro: { suite: 'macro', render: (f) => md(macroTable(section(f, runDoc(f).macro, 'macro'))) },
  checkpoint: { suite: 'checkpoint', render: (f) => md(checkpointTable(section(f, runDoc(f).checkpoint, 'checkpoint'))) },
  kafka: {
    suite: 'kafka',
    render: (f) => {
      const k = section(f, runDoc(f).kafka, 'kafka');
      return `${kafkaTitle(k)}:\n\n${md(kafkaTable(k))}`;
    },
  },
  'peers.targets': { suite: 'peers', render: (f) => md(peersTargets(peersDoc(f))) },
  'peers.closed': { suite: 'peers', render: (f) => md(peersClosed(peersDoc(f))) },
  'peers.guarantees': { suite: 'peers', render: (f) => md(guaranteesTable(peersDoc(f).results)) },
  'peers.scaling': { suite: 'peers', render: (f) => md(scalingTableOf(peersDoc(f).scaling)) },
  'peers-only-statefn.closed': { suite: 'peers-only-statefn', render: (f) => md(peersClosed(peersDoc(f))) },
  'peers-only-scaling.scaling': { suite: 'peers-only-scaling', render: (f) => md(scalingTableOf(peersDoc(f).scaling)) },
};

/** "2026-11-21 21:10 UTC" from an ISO date. */
function runDate(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** The line above every rendered table: where the figures come from. */
function sourceLine(f: ResultsFile, suite: string): string {
  const m = f.doc.machine;
  const commit = typeof m.gitCommit === 'string' ? `, commit ${m.gitCommit.slice(0, 7)}${m.gitDirty === true ? ' (dirty)' : ''}` : '';
  const argv = (f.doc.settings.argv as string[] | undefined) ?? [];
  const command =
    isPeersDoc(f.doc) && !argv.includes('--peers')
      ? `node --import tsx bench/peers/run_peers.ts ${argv.join(' ')}`
      : `npm run bench${argv.length === 0 ? '' : ` -- ${argv.join(' ')}`}`;
  return (
    `<!-- rendered by \`npm run bench:tables\`: edit bench/render_tables.ts or rerun the suite, not this table -->\n` +
    `Source: \`${f.path}\` (suite \`${suite}\`: \`${command.trim()}\`, started ${runDate(f.startedAt)}${commit}).`
  );
}

/** The block's content between its markers (without them), from the latest file of its suite. */
export function renderBlock(name: string, latest: ReadonlyMap<string, ResultsFile>): string {
  const view = BLOCKS[name];
  if (view === undefined) throw new Error(`unknown bench block '${name}'; known: ${Object.keys(BLOCKS).join(', ')}`);
  const f = latest.get(view.suite);
  if (f === undefined) throw new Error(`block '${name}': no results file of suite '${view.suite}' in ${RESULTS_DIR}/`);
  return `${sourceLine(f, view.suite)}\n\n${view.render(f)}`;
}

const MARKER = /<!-- bench:([\w.+-]+):start -->\n[\s\S]*?<!-- bench:\1:end -->/g;

/** The Markdown text with every marked block rendered, and the names of the blocks found. */
export function renderMarkdown(text: string, latest: ReadonlyMap<string, ResultsFile>): { text: string; blocks: string[] } {
  const blocks: string[] = [];
  const out = text.replace(MARKER, (_all, name: string) => {
    blocks.push(name);
    return `<!-- bench:${name}:start -->\n${renderBlock(name, latest)}\n<!-- bench:${name}:end -->`;
  });
  return { text: out, blocks };
}

/** Render every Markdown file; with `write` false only report which ones are out of date. */
export function renderAll(root = ROOT, write = true): { file: string; blocks: string[]; stale: boolean }[] {
  const latest = latestPerSuite(readResults(root));
  return MARKDOWN_FILES.map((file) => {
    const path = join(root, file);
    const before = readFileSync(path, 'utf8');
    const { text, blocks } = renderMarkdown(before, latest);
    const stale = text !== before;
    if (stale && write) writeFileSync(path, text);
    return { file, blocks, stale };
  });
}

/**
 * After a benchmark wrote its results: delete the files it superseded (with their HTML; git keeps
 * the history) and re-render the marked tables, so the READMEs always quote the latest run of each
 * suite and `npm test`'s check of them stays green. Returns the deleted paths.
 */
export function keepLatestAndRender(root = ROOT): string[] {
  const deleted: string[] = [];
  for (const f of supersededFiles(readResults(root))) {
    for (const path of [f.path, f.path.replace(/\.json$/, '.html')]) {
      if (!existsSync(join(root, path))) continue;
      rmSync(join(root, path));
      deleted.push(path);
    }
  }
  renderAll(root, true);
  return deleted;
}

function main(argv: string[]): void {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(
      'usage: npm run bench:tables [-- --check | --list]\n' +
        '  (no flag) rewrite the marked tables of README.md and bench/README.md from the latest results file per suite\n' +
        '  --check   rewrite nothing; exit 1 if a marked table differs from what the results render\n' +
        "  --list    print each suite's latest file and the superseded files",
    );
    return;
  }
  if (argv.includes('--list')) {
    const files = readResults();
    for (const [suite, f] of [...latestPerSuite(files)].sort(([a], [b]) => a.localeCompare(b)))
      console.log(`${suite.padEnd(24)} ${f.path}`);
    for (const f of supersededFiles(files)) console.log(`superseded               ${f.path}`);
    return;
  }
  const check = argv.includes('--check');
  for (const r of renderAll(ROOT, !check)) {
    console.log(
      `${r.file}: ${r.blocks.length} block(s) [${r.blocks.join(', ')}]${r.stale ? (check ? ' OUT OF DATE' : ' rewritten') : ' up to date'}`,
    );
    if (r.stale && check) process.exitCode = 1;
  }
  if (process.exitCode === 1) console.log('run `npm run bench:tables` to render them');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
