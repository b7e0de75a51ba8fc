/**
 * What every benchmark records about the machine it ran on, and per-thread CPU: shared by
 * `bench/run.ts`, `bench/macro.ts`, `bench/remote_bench.ts` and `bench/peers/`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

function packageVersion(name: string): string | null {
  try {
    const pkg = JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? null;
  } catch {
    return null;
  }
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** CPU, memory, OS, Node, the versions of the packages that matter, the commit, the load now. */
export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  const status = git(['status', '--porcelain']);
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    totalMemoryBytes: os.totalmem(),
    totalMemoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
    node: process.version,
    packages: {
      msgpackr: packageVersion('msgpackr'),
      lmdb: packageVersion('lmdb'),
      tinybench: packageVersion('tinybench'),
      kafkajs: packageVersion('kafkajs'),
      piscina: packageVersion('piscina'),
      tsx: packageVersion('tsx'),
    },
    gitCommit: git(['rev-parse', 'HEAD']),
    gitDirty: status === null ? null : status.length > 0,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/**
 * CPU ticks (user + system, in clock ticks of 10 ms) per thread of this process, from Linux's
 * /proc/self/task/<tid>/stat; empty elsewhere. Node does not name its threads, so the main thread
 * is the one whose tid is the pid and the statefn workers are the busiest of the others (the rest
 * are V8's GC helpers, libuv's pool, lmdb's write thread and tsx's loader threads).
 */
export function threadTicks(): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), Number(f[11]) + Number(f[12]));
    }
  } catch {
    // Not Linux (or /proc hidden): no per-thread figures.
  }
  return out;
}
