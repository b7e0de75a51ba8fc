/**
 * Summarise V8 `.cpuprofile` files (from `node --cpu-prof`): per profile (one per thread), the
 * top functions by self time, and which thread it was (main, a statefn worker, or a loader).
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/macro.ts --scenario counter --workers 2
 *   node --import tsx bench/profile_summary.ts /tmp/prof [top=25]
 *
 * Worker threads inherit `--cpu-prof` from the process's execArgv and write their own profile
 * when they exit (also after `worker.terminate()`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function shortUrl(url: string): string {
  const i = url.indexOf('/work/main/');
  if (i >= 0) return url.slice(i + '/work/main/'.length);
  const n = url.lastIndexOf('node_modules/');
  if (n >= 0) return url.slice(n + 'node_modules/'.length);
  return url.replace(/^node:/, '');
}

export function summarise(file: string, top: number): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const byFn = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let isWorker = false;
  let isMain = false;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const cf = n.callFrame;
    const name = cf.functionName || '(anonymous)';
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      if (name === '(idle)') idle += us;
    }
    if (cf.url.includes('workers/worker_runtime')) isWorker = true;
    if (cf.url.includes('runtime/engine.ts')) isMain = true;
    total += us;
    const key = cf.url ? `${name}  ${shortUrl(cf.url)}:${cf.lineNumber + 1}` : name;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
  const kind = isWorker ? 'statefn worker' : isMain ? 'main thread' : 'other (loader/hooks thread)';
  const busy = total - idle;
  const lines = [`${basename(file)}: ${kind}; ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms not idle`];
  const rows = [...byFn.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [k, us] of rows) {
    lines.push(`  ${(us / 1000).toFixed(0).padStart(6)} ms  ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${k}`);
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? '/tmp/prof';
  const top = Number(process.argv[3] ?? 25);
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.cpuprofile'))
    .sort()) {
    console.log(summarise(join(dir, f), top));
    console.log();
  }
}
