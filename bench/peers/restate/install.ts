/**
 * Installs the Restate peer: bench/peers is an npm project of its own (bench/peers/package.json
 * and its lockfile pin `@restatedev/restate-server`, whose optional dependency
 * `@restatedev/restate-server-<os>-<arch>` ships the server binary, and `@restatedev/restate-sdk`,
 * the TypeScript SDK the service (service.mjs) runs on), outside the root project's dependencies.
 * The first peers run (or one after the pinned versions change) runs `npm ci` there; a marker
 * file records how long it took.
 *
 * npm runs with --ignore-scripts (nothing needs building; the only install script in the tree is
 * @scarf/scarf's usage-analytics ping) and without the npm_* variables of an enclosing
 * `npm run`, so it cannot touch the root project's package.json or lockfile.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** bench/peers: the npm project that declares the Restate packages. */
export const PEERS_PROJECT_DIR = fileURLToPath(new URL('../', import.meta.url));

interface PeersPackageJson {
  dependencies: Record<string, string>;
}

function pinnedVersion(name: string): string {
  const pkg = JSON.parse(readFileSync(join(PEERS_PROJECT_DIR, 'package.json'), 'utf8')) as PeersPackageJson;
  const v = pkg.dependencies[name];
  if (v === undefined) throw new Error(`bench/peers/package.json does not depend on ${name}`);
  return v;
}

export const RESTATE_SERVER_VERSION = pinnedVersion('@restatedev/restate-server');
export const RESTATE_SDK_VERSION = pinnedVersion('@restatedev/restate-sdk');

/** Where npm installs the peers (bench/peers/node_modules). */
export const RESTATE_CACHE_DIR = join(PEERS_PROJECT_DIR, 'node_modules');
const MARKER = join(RESTATE_CACHE_DIR, '.statefn-restate-installed.json');

export interface RestateInstall {
  dir: string;
  /** The restate-server executable (the platform package's binary, run directly). */
  serverBin: string;
  /** file: URL of the SDK's ESM entry, for service.mjs. */
  sdkUrl: string;
  /** How long the npm install took (ms), in this call or, when cached, when it ran. */
  installMs: number | undefined;
  /** True when an earlier run had installed it (nothing installed now). */
  cached: boolean;
}

function serverBinPath(): string {
  const platformPkg = `@restatedev/restate-server-${os.platform()}-${os.arch()}`;
  return join(RESTATE_CACHE_DIR, ...platformPkg.split('/'), 'bin', 'restate-server');
}

function sdkEntryPath(): string {
  return join(RESTATE_CACHE_DIR, '@restatedev', 'restate-sdk', 'dist', 'index.js');
}

interface Marker {
  server: string;
  sdk: string;
  installedAt: string;
  installMs: number;
}

function readMarker(): Marker | undefined {
  try {
    return JSON.parse(readFileSync(MARKER, 'utf8')) as Marker;
  } catch {
    return undefined;
  }
}

function runNpm(args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith('npm_')) env[k] = v;
  env.SCARF_ANALYTICS = 'false';
  return new Promise((resolve, reject) => {
    const child = spawn(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer): void => {
      output += b.toString('utf8');
      if (output.length > 20_000) output = output.slice(-20_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (e) =>
      reject(new Error(`restate peer: cannot run npm (${e.message}); npm must be on PATH to install the Restate peer`)),
    );
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Installs once (or reuses the cache) and returns the paths. Throws with npm's output if npm fails. */
export async function ensureRestateInstalled(log: (line: string) => void): Promise<RestateInstall> {
  const m = readMarker();
  const serverBin = serverBinPath();
  const sdkEntry = sdkEntryPath();
  const ready = (): boolean => existsSync(serverBin) && existsSync(sdkEntry);
  if (m?.server === RESTATE_SERVER_VERSION && m.sdk === RESTATE_SDK_VERSION && ready()) {
    return { dir: RESTATE_CACHE_DIR, serverBin, sdkUrl: pathToFileURL(sdkEntry).href, installMs: m.installMs, cached: true };
  }
  log(
    `restate: installing @restatedev/restate-server@${RESTATE_SERVER_VERSION} and ` +
      `@restatedev/restate-sdk@${RESTATE_SDK_VERSION} into ${RESTATE_CACHE_DIR} (npm ci, once)`,
  );
  rmSync(MARKER, { force: true });
  const t0 = performance.now();
  const { code, output } = await runNpm(['ci', '--no-audit', '--no-fund', '--ignore-scripts'], PEERS_PROJECT_DIR);
  const installMs = Math.round(performance.now() - t0);
  if (code !== 0) {
    throw new Error(
      `restate peer: npm ci failed (exit ${String(code)}) in ${PEERS_PROJECT_DIR}:\n${output.trim().split('\n').slice(-30).join('\n')}`,
    );
  }
  if (!existsSync(serverBin)) {
    throw new Error(
      `restate peer: npm installed @restatedev/restate-server but not its binary ${serverBin} ` +
        `(platform ${os.platform()}-${os.arch()}; the server ships for linux/darwin x64/arm64 as an optional dependency)`,
    );
  }
  if (!existsSync(sdkEntry)) throw new Error(`restate peer: npm install did not produce ${sdkEntry}`);
  const marker: Marker = { server: RESTATE_SERVER_VERSION, sdk: RESTATE_SDK_VERSION, installedAt: new Date().toISOString(), installMs };
  writeFileSync(MARKER, JSON.stringify(marker, null, 2) + '\n');
  log(`restate: installed in ${(installMs / 1000).toFixed(1)} s`);
  return { dir: RESTATE_CACHE_DIR, serverBin, sdkUrl: pathToFileURL(sdkEntry).href, installMs, cached: false };
}
