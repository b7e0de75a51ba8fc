/** Command-line parsing for `statefn`: small, strict, with errors that name the flag and the fix. */
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { parseDurationMs } from '../config/units.js';
import { parseSnapshotsLocation, type SnapshotStoreConfig } from '../snapshot/store_config.js';

export interface StartArgs {
  command: 'start';
  app: string | undefined;
  workers: number | undefined;
  stateDir: string | undefined;
  params: unknown;
  limits: Record<string, string>;
  stopAfterMs: number | undefined;
  progress: boolean;
  snapshots: string | undefined;
  s3Endpoint: string | undefined;
  s3Region: string | undefined;
  fromSavepoint: string | undefined;
}

export interface SavepointArgs {
  command: 'savepoint';
  name: string;
  stateDir: string | undefined;
  snapshots: string | undefined;
  s3Endpoint: string | undefined;
  s3Region: string | undefined;
}

export type Args = StartArgs | SavepointArgs | { command: 'help' } | { command: 'version' };

export const USAGE = `Usage: statefn <command> [options]

Commands:
  start [app]            Run an application. [app] is a directory (module.yaml and/or
                         index.ts|index.js|app.ts|app.js), a module.yaml file, or a .ts/.js module
                         whose default export is an App or a function returning one.
                         Without [app]: the embedded fraud-detection example.
  savepoint <name>       Keep the last complete checkpoint as savepoint <name> (retained until
                         deleted); restore it with start --from-savepoint <name>.
  help                   Show this help.
  version                Print the version.

Options of start:
  --workers <n>          Worker threads (default: the number of cores).
  --state-dir <dir>      State directory (default: ./statefn-data).
  --params <json>        JSON passed to the app's factory function.
  --set <limit>=<value>  Override an engine limit (repeatable), e.g. --set ringBytes=4194304.
  --stop-after <dur>     Stop cleanly after a duration (e.g. 30s, 5min).
  --no-progress          No live progress (plain log lines only at start and stop).
  --snapshots <where>    Checkpoint uploads: a directory (default <state-dir>/snapshots; a path
                         or file:///abs/dir), s3://bucket/prefix (credentials from the standard
                         AWS chain), or off. Any other scheme: is an error.
  --s3-endpoint <url>    S3-compatible endpoint (path-style addressing), e.g. http://127.0.0.1:9000.
  --s3-region <region>   S3 region (default us-east-1).
  --from-savepoint <n>   Replace the local state with savepoint <n> (any worker count).

Ctrl-C stops cleanly (a final checkpoint, in-flight messages saved); a second Ctrl-C exits at once.
`;

function fail(msg: string): never {
  throw new StatefnError(ErrorCode.CONFIG_INVALID, `${msg}\n\n${USAGE}`);
}

export function parseArgs(argv: readonly string[]): Args {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') return { command: 'help' };
  if (cmd === 'version' || cmd === '--version' || cmd === '-v') return { command: 'version' };
  if (cmd !== 'start' && cmd !== 'savepoint') fail(`unknown command '${cmd}'`);
  const out: StartArgs = {
    command: 'start',
    app: undefined,
    workers: undefined,
    stateDir: undefined,
    params: undefined,
    limits: {},
    stopAfterMs: undefined,
    progress: true,
    snapshots: undefined,
    s3Endpoint: undefined,
    s3Region: undefined,
    fromSavepoint: undefined,
  };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const [flag, inline] =
      a.startsWith('--') && a.includes('=') && !a.startsWith('--set=')
        ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
        : [a, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = rest[++i];
      if (v === undefined) fail(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--workers': {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) fail(`--workers: expected a positive integer, got '${v}'`);
        out.workers = n;
        break;
      }
      case '--state-dir':
        out.stateDir = value();
        break;
      case '--params': {
        const v = value();
        try {
          out.params = JSON.parse(v);
        } catch (e) {
          fail(`--params: expected JSON, got '${v}' (${(e as Error).message})`);
        }
        break;
      }
      case '--set':
      case '--set=': {
        const v = a.startsWith('--set=') ? a.slice(6) : value();
        const eq = v.indexOf('=');
        if (eq <= 0) fail(`--set: expected <limit>=<value>, got '${v}'`);
        out.limits[v.slice(0, eq)] = v.slice(eq + 1);
        break;
      }
      case '--stop-after': {
        const v = value();
        try {
          out.stopAfterMs = parseDurationMs(v);
        } catch (e) {
          fail(`--stop-after: ${(e as Error).message}`);
        }
        break;
      }
      case '--no-progress':
        out.progress = false;
        break;
      case '--snapshots':
        out.snapshots = value();
        break;
      case '--s3-endpoint':
        out.s3Endpoint = value();
        break;
      case '--s3-region':
        out.s3Region = value();
        break;
      case '--from-savepoint':
        out.fromSavepoint = value();
        break;
      default:
        if (a.startsWith('-')) fail(`unknown option '${a}'`);
        if (out.app !== undefined) fail(`unexpected argument '${a}' (the app is already '${out.app}')`);
        out.app = a;
    }
  }
  if (cmd === 'savepoint') {
    if (out.app === undefined) fail('savepoint needs a name: statefn savepoint <name>');
    return {
      command: 'savepoint',
      name: out.app,
      stateDir: out.stateDir,
      snapshots: out.snapshots,
      s3Endpoint: out.s3Endpoint,
      s3Region: out.s3Region,
    };
  }
  return out;
}

/** The snapshot store the flags describe (undefined: the engine's default, a dir in the state dir). */
export function snapshotsFromArgs(a: {
  snapshots: string | undefined;
  s3Endpoint: string | undefined;
  s3Region: string | undefined;
}): false | SnapshotStoreConfig | undefined {
  if (a.snapshots === undefined) {
    if (a.s3Endpoint !== undefined) fail('--s3-endpoint needs --snapshots s3://bucket/prefix');
    return undefined;
  }
  try {
    return parseSnapshotsLocation(a.snapshots, { endpoint: a.s3Endpoint, region: a.s3Region });
  } catch (e) {
    return fail(`--snapshots: ${(e as Error).message}`);
  }
}
