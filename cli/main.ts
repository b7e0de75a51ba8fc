/**
 * `statefn` command line: `statefn start [app]` runs an application until Ctrl-C (or
 * --stop-after), showing live progress on a terminal and plain log lines otherwise.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../engine_defaults.js';
import { consoleLogger } from '../config/engine_options.js';
import { cliStopPollMs, progressRefreshMs } from '../shared/limits.js';
import { StatefnError } from '../shared/errors.js';
import { USAGE, parseArgs, snapshotsFromArgs, type SavepointArgs, type StartArgs } from './args.js';
import { resolve } from 'node:path';
import { ErrorCode } from '../shared/errors.js';
import { openSnapshotStore } from '../snapshot/store_config.js';
import { latestCheckpoint, writeSavepoint } from '../snapshot/checkpoint_layout.js';
import { resolveApp } from './app_resolver.js';
import { createProgress } from './progress.js';

function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version: string }).version;
    } catch {
      // try the next location (source vs. compiled layout)
    }
  }
  return 'unknown';
}

async function start(args: StartArgs): Promise<number> {
  const stateDir = args.stateDir ?? './statefn-data';
  let params = args.params;
  const app = resolveApp(args.app, params);
  if (app.isDefault && params === undefined) {
    params = { alertsPath: join(stateDir, 'alerts.jsonl') };
    app.ref.params = params;
  }
  const log = consoleLogger;
  log.info(`statefn ${packageVersion()} starting ${app.description}`, { stateDir });
  const options: Record<string, unknown> = { stateDir, limits: args.limits };
  if (args.workers !== undefined) options.workers = args.workers;
  const snapshots = snapshotsFromArgs(args);
  if (snapshots !== undefined) options.snapshots = snapshots;
  if (args.fromSavepoint !== undefined) options.fromSavepoint = args.fromSavepoint;

  // The engine restores the last complete checkpoint by itself after a worker thread died
  // (logging "restoring the last complete checkpoint" and "running again with"); it fails for
  // good only for other failures or too many restarts.
  const engine = await Engine.start(app.ref, options);
  log.info(`running with ${engine.options.workers} workers`, {
    keyGroups: engine.options.limits.keyGroups,
    stateDir: engine.options.stateDir,
  });

  const stderr = process.stderr;
  const progress = args.progress ? createProgress({ stream: stderr, isTTY: stderr.isTTY === true }) : undefined;
  const tick = setInterval(() => {
    const s = engine.stats();
    progress?.update({
      uptimeMs: s.uptimeMs,
      ingested: s.ingested,
      processed: s.processed,
      egressed: s.egressed,
      deadLetters: s.deadLetters,
      workers: s.workers,
      backPressured: s.backPressured,
      ...(app.isDefault ? { alerts: engine.egressWritten('fraud/alerts') } : {}),
      ...(s.lastCheckpoint ? { lastCheckpoint: s.lastCheckpoint } : {}),
    });
  }, progressRefreshMs);

  let stopping: Promise<number> | undefined;
  let stopAfter: NodeJS.Timeout | undefined;
  const stop = (why: string): Promise<number> => {
    if (stopping) return stopping;
    clearInterval(tick);
    progress?.stop();
    log.info(`stopping (${why}): checkpointing state and saving in-flight messages`);
    stopping = engine.stop().then(
      () => {
        const s = engine.stats();
        log.info('stopped cleanly', { processed: s.processed, ingested: s.ingested, egressed: s.egressed, deadLetters: s.deadLetters });
        return 0;
      },
      (err: unknown) => {
        log.error(`stop failed: ${(err as Error).message}`);
        return 1;
      },
    );
    return stopping;
  };
  let signals = 0;
  const onSignal = (sig: string): void => {
    signals++;
    if (signals > 1) {
      log.error(`second ${sig}: exiting without a clean stop (the next start restores the last complete checkpoint)`);
      process.exit(130);
    }
    void stop(sig);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // Fault injection for crash tests: SIGUSR2 kills one worker thread of the running engine.
  if (process.env.STATEFN_FAULT_INJECTION === '1') {
    let next = 0;
    process.on('SIGUSR2', () => {
      const w = next++ % engine.options.workers;
      log.warn(`fault injection: terminating worker ${w}`);
      void engine.terminateWorker(w);
    });
  }
  if (args.stopAfterMs !== undefined) stopAfter = setTimeout(() => void stop(`--stop-after ${args.stopAfterMs} ms`), args.stopAfterMs);

  // Either a stop (signal or --stop-after) finishes, or the engine fails for good first.
  const stopRequested = new Promise<void>((r) => {
    const wait = (): void => {
      if (stopping) r();
      else setTimeout(wait, cliStopPollMs);
    };
    wait();
  });
  const failure = await Promise.race([engine.failed().catch((e: unknown) => e as Error), stopRequested.then(() => undefined)]);
  if (failure !== undefined && stopping === undefined) {
    clearInterval(tick);
    progress?.stop();
    log.error(`engine failed: ${failure.message}`);
    if (stopAfter) clearTimeout(stopAfter);
    return 1;
  }
  const done = await stopping!;
  if (stopAfter) clearTimeout(stopAfter);
  return done;
}

/** `statefn savepoint <name>`: keep the last complete checkpoint of the snapshot store as a savepoint. */
async function savepoint(args: SavepointArgs): Promise<number> {
  const stateDir = resolve(args.stateDir ?? './statefn-data');
  const config = snapshotsFromArgs(args) ?? { type: 'local' as const, dir: join(stateDir, 'snapshots') };
  if (config === false) throw new StatefnError(ErrorCode.CONFIG_INVALID, 'savepoint needs a snapshot store; --snapshots off has none');
  const store = openSnapshotStore(config);
  const latest = await latestCheckpoint(store, { logger: consoleLogger });
  if (latest === null) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `no complete checkpoint in ${store.describe()}; run statefn start first (checkpoints are taken every checkpointIntervalMs)`,
    );
  }
  await writeSavepoint(store, args.name, latest);
  process.stdout.write(`savepoint '${args.name}' = checkpoint ${latest.epoch} in ${store.describe()}\n`);
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`statefn: ${(e as Error).message}\n`);
    return 2;
  }
  switch (args.command) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case 'savepoint':
      try {
        return await savepoint(args);
      } catch (e) {
        const code = e instanceof StatefnError ? ` [${e.code}]` : '';
        process.stderr.write(`statefn: ${(e as Error).message}${code}\n`);
        return 1;
      }
    case 'start':
      try {
        return await start(args);
      } catch (e) {
        const code = e instanceof StatefnError ? ` [${e.code}]` : '';
        process.stderr.write(`statefn: ${(e as Error).message}${code}\n`);
        return 1;
      }
  }
}
