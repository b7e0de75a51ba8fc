/**
 * Starts and stops the Restate peer on this machine: one restate-server (all roles, a single
 * node, a fresh temp base dir, every listener on 127.0.0.1, TCP only) and one Node process with
 * the service deployment (service.mjs), registered through the admin API.
 *
 * Only listener addresses, the node name and telemetry are configured; durability and everything
 * else stay at restate-server's defaults (the effective values are read back with
 * `--dump-config` and reported).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RestateInstall } from './install.js';
import { sleep } from './load.js';

const SERVICE_SCRIPT = fileURLToPath(new URL('./service.mjs', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const HOST = '127.0.0.1';
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface RestatePorts {
  ingress: number;
  admin: number;
  fabric: number;
  service: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

/** The restate-server config file: listeners on loopback, nothing about durability. */
function configToml(p: RestatePorts): string {
  return [
    '# statefn bench, Restate peer: listeners on loopback only; everything else at its default.',
    'node-name = "statefn-bench"',
    'listen-mode = "tcp"',
    `bind-address = "${HOST}:${p.fabric}"`,
    `advertised-address = "http://${HOST}:${p.fabric}/"`,
    'disable-telemetry = true',
    'log-disable-ansi-codes = true',
    '',
    '[ingress]',
    `bind-address = "${HOST}:${p.ingress}"`,
    `advertised-ingress-endpoint = "http://${HOST}:${p.ingress}/"`,
    '',
    '[admin]',
    `bind-address = "${HOST}:${p.admin}"`,
    `advertised-admin-endpoint = "http://${HOST}:${p.admin}/"`,
    'disable-web-ui = true',
    '',
  ].join('\n');
}

/** Environment for restate-server / the service: the parent's, minus any RESTATE_* override. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RESTATE_')) env[k] = v;
  return { ...env, ...extra };
}

/** Effective values (after defaults) of the settings that decide durability and capacity. */
const REPORTED_SETTINGS = [
  'roles',
  'default-num-partitions',
  'default-replication',
  'bifrost.default-provider',
  'bifrost.local.rocksdb-disable-wal',
  'bifrost.local.rocksdb-disable-wal-fsync',
  'log-server.rocksdb-disable-wal-fsync',
  'worker.storage.rocksdb-disable-wal',
  'worker.invoker.concurrent-invocations-limit',
  'worker.invoker.http2-streams-per-connection-limit',
  'worker.max-command-batch-size',
  'rocksdb-total-memory-size',
  'metadata-client.type',
];

/** A tiny reader of the flat `key = value` lines of `--dump-config` (sections as prefixes). */
function parseDump(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let section = '';
  let pendingKey: string | undefined;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pendingKey !== undefined) {
      pending += line;
      if (line.startsWith(']')) {
        out[pendingKey] = pending.replace(/\s+/g, '').replace(/,\]$/, ']');
        pendingKey = undefined;
      }
      continue;
    }
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      continue;
    }
    const kv = /^([A-Za-z0-9_-]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) continue;
    const key = section === '' ? kv[1]! : `${section}.${kv[1]!}`;
    if (kv[2] === '[') {
      pendingKey = key;
      pending = '[';
    } else out[key] = kv[2]!.replace(/^"|"$/g, '');
  }
  return out;
}

function effectiveSettings(serverBin: string, configPath: string, baseDir: string): Record<string, string> {
  const r = spawnSync(serverBin, ['--config-file', configPath, '--base-dir', baseDir, '--dump-config'], {
    encoding: 'utf8',
    env: cleanEnv({}),
    timeout: 30_000,
  });
  if (r.status !== 0) return { error: `--dump-config failed: ${(r.stderr || r.stdout || '').slice(0, 300)}` };
  const all = parseDump(r.stdout);
  const out: Record<string, string> = {};
  for (const k of REPORTED_SETTINGS) if (all[k] !== undefined) out[k] = all[k]!;
  return out;
}

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function httpJson(method: string, url: string, body?: unknown, timeoutMs = 10_000): Promise<{ status: number; text: string }> {
  const init: RequestInit = { method, signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await fetch(url, init);
  return { status: res.status, text: await res.text() };
}

/** CPU seconds (user + system) of a process, from /proc (Linux); undefined elsewhere. */
export function procCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined || process.platform !== 'linux') return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

export class RestateCluster {
  readonly ports: RestatePorts;
  readonly baseDir: string;
  readonly configPath: string;
  readonly serverLog: string;
  readonly serviceLog: string;
  settings: Record<string, string> = {};
  private server: ChildProcess | undefined;
  private service: ChildProcess | undefined;
  private readonly onExit = (): void => this.killNow();
  /** On SIGINT/SIGTERM/SIGHUP: kill the children, then let the signal do what it would have done. */
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    this.killNow();
    this.removeHooks();
    rmSync(this.baseDir, { recursive: true, force: true });
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };

  private constructor(
    private readonly install: RestateInstall,
    ports: RestatePorts,
    baseDir: string,
  ) {
    this.ports = ports;
    this.baseDir = baseDir;
    this.configPath = join(baseDir, 'restate.toml');
    this.serverLog = join(baseDir, 'restate-server.log');
    this.serviceLog = join(baseDir, 'service.log');
  }

  get serverPid(): number | undefined {
    return this.server?.pid;
  }
  get servicePid(): number | undefined {
    return this.service?.pid;
  }
  get ingressUrl(): string {
    return `http://${HOST}:${this.ports.ingress}`;
  }
  get adminUrl(): string {
    return `http://${HOST}:${this.ports.admin}`;
  }

  /** Starts server and service and registers the deployment; on failure stops what it started. */
  static async start(install: RestateInstall, log: (line: string) => void): Promise<RestateCluster> {
    const [ingress, admin, fabric, service] = await distinctFreePorts(4);
    const baseDir = mkdtempSync(join(os.tmpdir(), 'statefn-restate-'));
    const c = new RestateCluster(install, { ingress: ingress!, admin: admin!, fabric: fabric!, service: service! }, baseDir);
    process.once('exit', c.onExit);
    for (const sig of SIGNALS) process.once(sig, c.onSignal);
    try {
      await c.startServer(log);
      await c.startService();
      await c.register(log);
      return c;
    } catch (e) {
      await c.stop();
      throw e;
    }
  }

  private async startServer(log: (line: string) => void): Promise<void> {
    writeFileSync(this.configPath, configToml(this.ports));
    this.settings = effectiveSettings(this.install.serverBin, this.configPath, this.baseDir);
    const fd = openSync(this.serverLog, 'a');
    const args = ['--config-file', this.configPath, '--base-dir', this.baseDir, '--no-logo'];
    this.server = spawn(this.install.serverBin, args, { stdio: ['ignore', fd, fd], env: cleanEnv({}) });
    closeSync(fd);
    const t0 = performance.now();
    let exited: string | undefined;
    this.server.once('exit', (code, sig) => {
      exited = `exited (code ${String(code)}, signal ${String(sig)})`;
    });
    this.server.once('error', (e) => {
      exited = `failed to start: ${e.message}`;
    });
    for (;;) {
      if (exited !== undefined) throw new Error(`restate-server ${exited}; log ${this.serverLog}:\n${tail(this.serverLog)}`);
      if (performance.now() - t0 > 60_000)
        throw new Error(`restate-server not healthy after 60 s; log ${this.serverLog}:\n${tail(this.serverLog)}`);
      try {
        const a = await httpJson('GET', `${this.adminUrl}/health`, undefined, 2000);
        const i = await httpJson('GET', `${this.ingressUrl}/restate/health`, undefined, 2000);
        if (a.status === 200 && i.status === 200) break;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    log(
      `restate: server up in ${((performance.now() - t0) / 1000).toFixed(1)} s (ingress ${this.ports.ingress}, ` +
        `admin ${this.ports.admin}, fabric ${this.ports.fabric}, base dir ${this.baseDir})`,
    );
  }

  private async startService(): Promise<void> {
    const fd = openSync(this.serviceLog, 'a');
    // tsx: the fraud objects use the example's own scoring modules (TypeScript).
    const child = spawn(process.execPath, ['--conditions=statefn-source', '--import', 'tsx', SERVICE_SCRIPT], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', fd],
      env: cleanEnv({
        STATEFN_RESTATE_SDK_URL: this.install.sdkUrl,
        STATEFN_RESTATE_SERVICE_PORT: String(this.ports.service),
        STATEFN_RESTATE_SERVER_PID: String(this.server?.pid ?? 0),
        STATEFN_RESTATE_BASE_DIR: this.baseDir,
        RESTATE_LOGGING: 'WARN',
        NODE_ENV: 'production',
      }),
    });
    closeSync(fd);
    this.service = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`restate service did not start in 30 s; log ${this.serviceLog}:\n${tail(this.serviceLog)}`)),
        30_000,
      );
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString('utf8');
        if (/READY \d+/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`restate service exited (code ${String(code)}); log ${this.serviceLog}:\n${tail(this.serviceLog)}`));
      });
    });
    child.stdout!.resume();
  }

  private async register(log: (line: string) => void): Promise<void> {
    const uri = `http://${HOST}:${this.ports.service}`;
    const r = await httpJson('POST', `${this.adminUrl}/deployments`, { uri }, 30_000);
    if (r.status < 200 || r.status >= 300) throw new Error(`restate: registering ${uri} failed: HTTP ${r.status} ${r.text.slice(0, 500)}`);
    const names = (JSON.parse(r.text) as { services?: { name: string }[] }).services?.map((s) => s.name) ?? [];
    log(`restate: deployment ${uri} registered (${names.join(', ')})`);
    // The ingress learns the new schema asynchronously: wait for a first call to go through.
    const t0 = performance.now();
    for (;;) {
      try {
        const c = await httpJson('POST', `${this.ingressUrl}/Counter/warmup/add`, undefined, 10_000);
        if (c.status === 200) break;
        if (performance.now() - t0 > 30_000)
          throw new Error(`restate: first call to Counter/add failed: HTTP ${c.status} ${c.text.slice(0, 300)}`);
      } catch (e) {
        if (performance.now() - t0 > 30_000) throw e;
      }
      await sleep(200);
    }
  }

  private removeHooks(): void {
    process.removeListener('exit', this.onExit);
    for (const sig of SIGNALS) process.removeListener(sig, this.onSignal);
  }

  /** SIGKILL both children at once (the `exit` hook: nothing async possible there). */
  private killNow(): void {
    for (const p of [this.service, this.server]) {
      if (p?.pid !== undefined && p.exitCode === null && p.signalCode === null) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }

  private static async terminate(p: ChildProcess | undefined, graceMs: number): Promise<void> {
    if (p?.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    try {
      p.kill('SIGTERM');
    } catch {
      return;
    }
    const t = await Promise.race([gone.then(() => 'exit'), sleep(graceMs).then(() => 'timeout')]);
    if (t === 'timeout') {
      try {
        p.kill('SIGKILL');
      } catch {
        // already gone
      }
      await Promise.race([gone, sleep(5000)]);
    }
  }

  /** Stops service and server (SIGTERM, then SIGKILL after a grace period) and removes the base dir. */
  async stop(keepDir = false): Promise<void> {
    await RestateCluster.terminate(this.service, 5000);
    await RestateCluster.terminate(this.server, 15_000);
    this.removeHooks();
    if (!keepDir) rmSync(this.baseDir, { recursive: true, force: true });
  }

  /** Bytes under the base dir (the server's data). */
  dataBytes(): number | undefined {
    const r = spawnSync('du', ['-sb', this.baseDir], { encoding: 'utf8' });
    const n = Number(r.stdout?.split('\t')[0]);
    return Number.isFinite(n) ? n : undefined;
  }
}
