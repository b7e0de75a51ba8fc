/**
 * `npm run bench [-- --quick] [-- --only micro|macro|checkpoint|kafka]`: runs the micro benchmarks (ring,
 * codec, LMDB, cross-thread ring), the macro (end-to-end) benchmarks, the checkpoint benchmarks and
 * the Kafka benchmarks (statefn against a plain kafkajs loop; a real broker), prints one aligned table per
 * section, and writes everything with machine info and settings to
 * `bench/results/<ISO date-time>.json` (colons and dots replaced by dashes so the name is valid on
 * every file system).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runMacro, type MacroResult } from './macro.js';
import { runMicro, type MicroResult } from './micro.js';
import { runCheckpoint, type CheckpointResult } from './checkpoint_bench.js';
import { runKafka, type KafkaResult } from './kafka_bench.js';
import { runRemote, type RemoteResult } from './remote_bench.js';
import { machineInfo } from './machine.js';
import { keepLatestAndRender } from './render_tables.js';
import { checkpointTable, kafkaTable, kafkaTitle, macroTable, microTable, printTable } from './tables.js';

type Section = 'micro' | 'macro' | 'checkpoint' | 'kafka' | 'remote';
const SECTIONS: readonly Section[] = ['micro', 'macro', 'checkpoint', 'kafka', 'remote'];

interface Settings {
  quick: boolean;
  /** `--peers`: the side-by-side run with Restate and Flink StateFun (bench/peers/run_peers.ts) instead of the sections. */
  peers: boolean;
  only: Section | null;
  argv: string[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const USAGE =
  'usage: npm run bench [-- --quick] [-- --only micro|macro|checkpoint|kafka|remote] [-- --peers]\n' +
  '  --peers: statefn side by side with Restate and Flink StateFun (installs them; see bench/README.md)\n' +
  '  kafka: STATEFN_KAFKA_BROKERS=host:port[,...] uses that broker; otherwise a local one is started (needs java, and mvn the first time)';

function parseArgs(argv: string[]): Settings {
  let quick = false;
  let peers = false;
  let only: Section | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--peers') peers = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a === '--only' ? argv[++i] : a.slice('--only='.length);
      if (!SECTIONS.includes(v as Section)) throw new Error(`--only: expected ${SECTIONS.join(', ')}, got ${String(v)}\n${USAGE}`);
      only = v as Section;
    } else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return { quick, peers, only, argv };
}

function printMicro(results: MicroResult[]): void {
  printTable('micro benchmarks', microTable(results));
}

function printMacro(results: MacroResult[]): void {
  if (results.length === 0) {
    console.log('\nmacro benchmarks\n(no results)');
    return;
  }
  printTable('macro benchmarks', macroTable(results));
}

function printCheckpoint(results: CheckpointResult[]): void {
  printTable('checkpoint benchmarks', checkpointTable(results));
}

function printKafka(r: KafkaResult): void {
  printTable(kafkaTitle(r), kafkaTable(r));
  console.log(
    "ratio = statefn throughput / the kafkajs loop's with the same semantic. The kafkajs loops keep their counts in memory " +
      'only (no durable state);',
  );
  console.log(
    "statefn's state is durable (LMDB + checkpoints in the snapshot store). Exactly-once latency is bounded below by the 1 s " +
      'checkpoint/transaction interval.',
  );
  for (const s of r.systems) if ('error' in s) console.error(`kafka: ${s.name} FAILED: ${s.error}`);
}

async function main(): Promise<void> {
  const settings = parseArgs(process.argv.slice(2));
  if (settings.peers) {
    const { runPeers } = await import('./peers/run_peers.js');
    const out = await runPeers({ quick: settings.quick });
    console.log(`peers: results ${out.resultsPath}, charts ${out.htmlPath}`);
    return;
  }
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

  // ---- kafka section (bench/kafka_bench.ts) ----
  // A failure here (no Java, no broker, a timeout) is recorded and reported, not fatal for the
  // sections already measured; the exit code is 1.
  let kafka: KafkaResult | { error: string } | undefined;
  if (settings.only === null || settings.only === 'kafka') {
    try {
      const k = await runKafka({ quick: settings.quick });
      printKafka(k);
      kafka = k;
      if (k.failed.length > 0) process.exitCode = 1;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      console.error(`\nkafka benchmarks failed: ${message}`);
      kafka = { error: message };
      process.exitCode = 1;
    }
  }

  // ---- remote section (bench/remote_bench.ts): the counter as a remote function, TS SDK and the official JS SDK ----
  let remote: RemoteResult | { error: string } | undefined;
  if (settings.only === null || settings.only === 'remote') {
    try {
      const r = await runRemote({ quick: settings.quick });
      remote = r;
      if (r.failed.length > 0) process.exitCode = 1;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      console.error(`\nremote benchmarks failed: ${message}`);
      remote = { error: message };
      process.exitCode = 1;
    }
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
    kafka: kafka ?? null,
    remote: remote ?? null,
  };
  // Write then rename, so a reader never sees half a file (bench/results/*.tmp is git-ignored).
  writeFileSync(`${file}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  console.log(`\nresults written to ${file.slice(ROOT.length)}`);
  const superseded = keepLatestAndRender(ROOT);
  console.log(`README tables rendered from the latest results per suite; superseded: ${superseded.join(', ') || 'none'}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
