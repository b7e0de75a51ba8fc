// Vitest global setup: starts one real S3-compatible HTTP server (moto) on 127.0.0.1 for the whole test run.
/**
 * The server is moto's standalone server from PyPI, installed once into a virtualenv cached under
 * node_modules/.cache/statefn-moto (about 25 s the first time, then reused). It listens on a free
 * port of 127.0.0.1 and is stopped when the run ends. Tests read the endpoint with
 * `inject('s3Endpoint')`.
 *
 * `STATEFN_S3_ENDPOINT=http://host:port` uses that server instead and starts nothing (the tests
 * then need credentials it accepts, from `STATEFN_S3_ACCESS_KEY_ID`/`STATEFN_S3_SECRET_ACCESS_KEY`
 * or the standard AWS chain).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Base URL of the S3-compatible server for this test run. */
    s3Endpoint: string;
  }
}

const MOTO_SPEC = 'moto[server]==5.2.5';
const CACHE_DIR = fileURLToPath(new URL('../../node_modules/.cache/statefn-moto', import.meta.url));
const INSTALL_TIMEOUT_MS = 300_000;
const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const INSTALL_HINT = 'install Python 3 with venv and pip, e.g. `apt-get install -y python3 python3-venv python3-pip`';

let server: ChildProcess | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.STATEFN_S3_ENDPOINT;
  if (given !== undefined && given !== '') {
    project.provide('s3Endpoint', given);
    return async () => {};
  }
  const python = ensureMoto();
  const port = await freePort();
  const stderr: string[] = [];
  const child = spawn(python, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  server = child;
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    // Keep only the start of the log: enough to explain a failed start, bounded for a long run.
    if (stderr.join('').length < 20_000) stderr.push(d);
  });
  try {
    await waitForPort(port, child, stderr);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  project.provide('s3Endpoint', endpoint);
  return async () => {
    await stop(child);
    server = undefined;
  };
}

/** The virtualenv's python with moto importable; installs it on first use. */
function ensureMoto(): string {
  const venvPython = join(CACHE_DIR, 'bin', 'python');
  const marker = join(CACHE_DIR, `.installed-${MOTO_SPEC.replace(/[^A-Za-z0-9.=]/g, '_')}`);
  if (existsSync(marker) && existsSync(venvPython)) return venvPython;

  const sys = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  if (sys.error !== undefined || sys.status !== 0) {
    throw new Error(`the S3 test server needs python3, which was not found (${sys.error?.message ?? sys.stderr}); ${INSTALL_HINT}`);
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  const run = (cmd: string, args: string[], what: string): void => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS });
    if (r.error !== undefined || r.status !== 0) {
      const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n');
      throw new Error(
        `the S3 test server could not be installed: ${what} failed (${r.error?.message ?? `exit ${r.status}`}); ${INSTALL_HINT}\n${out}`,
      );
    }
  };
  if (!existsSync(venvPython)) run('python3', ['-m', 'venv', CACHE_DIR], `python3 -m venv ${CACHE_DIR}`);
  const started = Date.now();
  run(venvPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', MOTO_SPEC], `pip install '${MOTO_SPEC}'`);
  writeFileSync(marker, `installed in ${Date.now() - started} ms\n`);
  return venvPython;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}

/** Resolve when the port accepts connections; reject on exit of the child or after the timeout. */
function waitForPort(port: number, child: ChildProcess, stderr: string[]): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  return new Promise((res, rej) => {
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      child.off('exit', onExit);
      if (err) rej(err);
      else res();
    };
    const onExit = (code: number | null, signal: string | null): void =>
      finish(
        new Error(`the S3 test server (moto) exited during startup (code ${code}, signal ${signal}); its stderr:\n${stderr.join('')}`),
      );
    child.on('exit', onExit);
    const attempt = (): void => {
      if (done) return;
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        finish();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline) {
          finish(
            new Error(
              `the S3 test server (moto) did not listen on 127.0.0.1:${port} within ${STARTUP_TIMEOUT_MS} ms; ` +
                `its stderr:\n${stderr.join('')}`,
            ),
          );
        } else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    child.kill('SIGTERM');
  });
}

// If the run is interrupted before teardown, do not leave the server behind.
process.once('exit', () => server?.kill('SIGKILL'));
