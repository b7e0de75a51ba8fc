/**
 * Child process of bench/checkpoint_bench.ts (recovery after SIGKILL). Starts an Engine with
 * bench/apps/checkpoint_app.ts on `--state-dir` and prints one line per milestone on stdout:
 *
 *   running <engineStartMs> <processUptimeMs>   Engine.start resolved
 *   checkpoint <epoch>                          (load) K keys loaded and a checkpoint completed
 *   changed <epoch>                             (load) the extra changes were handled
 *
 *   node --import tsx bench/checkpoint_child.ts --state-dir d --mode load|recover
 *        [--keys K] [--changes C] [--workers n]
 *
 * `load` then idles until killed (the parent SIGKILLs it); `recover` stops cleanly and exits.
 */
import { performance } from 'node:perf_hooks';
import { Engine } from '../index.js';
import type { MemoryIngress } from '../connectors/memory/memory_ingress.js';
import type { RoutedMessage } from '../api/connector_api.js';
import { increment } from './apps/checkpoint_app.js';

const APP = new URL('./apps/checkpoint_app.ts', import.meta.url).href;
const KEY_GROUPS = 256;
const CHUNK = 65_536;

export interface LoadableEngine {
  engine: Engine;
  ingress: MemoryIngress<RoutedMessage>;
}

/** Push records made by `make(j)` for j in [0, n), in chunks, and wait until all were handled. */
export async function pushAndSettle(
  engine: Engine,
  ingress: MemoryIngress<RoutedMessage>,
  n: number,
  make: (j: number) => RoutedMessage,
): Promise<void> {
  for (let j = 0; j < n; j += CHUNK) {
    const end = Math.min(n, j + CHUNK);
    const batch: RoutedMessage[] = new Array<RoutedMessage>(end - j);
    for (let x = j; x < end; x++) batch[x - j] = make(x);
    ingress.pushAll(batch);
    await ingress.drained();
  }
  for (;;) {
    const s = engine.stats();
    if (s.processed >= s.ingested) break;
    if (s.failures !== 0 || s.deadLetters !== 0) throw new Error(`load: ${s.failures} failures, ${s.deadLetters} dead letters`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Uniform random key indices in [0, keys) from a small deterministic LCG (same for every run). */
export function randomKeys(keys: number, seed = 12345): (j: number) => RoutedMessage {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return increment(Math.floor((x / 2 ** 32) * keys));
  };
}

export async function startCheckpointApp(stateDir: string, workers: number, extra: Record<string, unknown> = {}): Promise<LoadableEngine> {
  const quiet = {
    info: () => {},
    warn: (m: string) => console.error(`child warning: ${m}`),
    error: (m: string) => console.error(`child error: ${m}`),
  };
  const engine = await Engine.start(
    { module: APP },
    {
      stateDir,
      workers,
      logger: quiet,
      ...extra,
      // Checkpoints only when forced: a fixed set of changes then falls into one epoch.
      limits: { keyGroups: KEY_GROUPS, checkpointIntervalMs: 3_600_000 },
    },
  );
  const ingress = engine.app.ingresses[0]!.connector as unknown as MemoryIngress<RoutedMessage>;
  return { engine, ingress };
}

async function main(): Promise<void> {
  const a = process.argv.slice(2);
  const arg = (name: string, def?: string): string => {
    const i = a.indexOf(name);
    const v = i >= 0 ? a[i + 1] : def;
    if (v === undefined) throw new Error(`${name} is required`);
    return v;
  };
  const stateDir = arg('--state-dir');
  const mode = arg('--mode');
  const keys = Number(arg('--keys', '100000'));
  const changes = Number(arg('--changes', '10000'));
  const workers = Number(arg('--workers', '2'));
  const t0 = performance.now();
  const { engine, ingress } = await startCheckpointApp(stateDir, workers);
  console.log(`running ${(performance.now() - t0).toFixed(1)} ${performance.now().toFixed(1)}`);
  if (mode === 'recover') {
    await engine.stop();
    return;
  }
  await pushAndSettle(engine, ingress, keys, increment);
  console.log(`checkpoint ${await engine.checkpoint()}`);
  await pushAndSettle(engine, ingress, changes, randomKeys(keys));
  console.log(`changed ${engine.stats().processed}`);
  setInterval(() => {}, 1 << 30);
}

if (process.argv[1]?.endsWith('checkpoint_child.ts')) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  });
}
