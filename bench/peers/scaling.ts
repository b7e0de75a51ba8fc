/**
 * statefn counter scaling (part of `npm run bench -- --peers`): closed-loop throughput of the
 * counter workload (uniform keys, generator ingress, checkpoints every 1 s) against
 *   - the worker count: 1, 2, 4 (100,000 keys; on a 2-core machine 4 workers oversubscribe it), and
 *   - the key count: 10^3 .. 10^7 (2 workers).
 * Quick mode: workers 1, 2 and keys 10^3, 10^5, 10^7, with shorter windows.
 *
 * From 10^6 keys every point is measured twice: with the default limits, where a worker's dirty
 * set can pass `dirtyEntriesMax` within one checkpoint interval and the engine deadlocks (see the
 * Peers section of bench/README.md), and with `stateCacheEntriesMax` = `dirtyEntriesMax` = 2^21
 * ('raised dirty bound'; memory then bounded by 2^21 decoded states per worker).
 *
 * Bounds for 10^7 keys: every run is time-bounded (warm-up + window, then a clean stop whose
 * final checkpoint writes what is dirty); memory stays bounded by the engine's limits
 * (`stateCacheEntriesMax` 500,000 decoded states per worker, `dirtyEntriesMax` 200,000 changed
 * states per worker before ingress pauses for a checkpoint). A window of 10 s at a few hundred
 * thousand messages/s touches a few million of the 10^7 keys, nearly each one for the first time:
 * the figure is the insert-heavy regime (every message a state-cache miss, a fresh LMDB key),
 * not a steady state over 10^7 existing keys, which would take 10^7 / rate seconds just to
 * populate. `keysTouchedEstimate` says how far a run got.
 *
 *   node --import tsx bench/peers/scaling.ts [--quick]
 */
import { pathToFileURL } from 'node:url';
import { DEFAULT_PEER_OPTIONS, type PeerRunOptions } from './types.js';
import { CHAIN_LIMITS, generatorCase, statefnTiming, type StatefnCaseOptions } from './statefn.js';

export interface ScalingPoint {
  workers: number;
  keys: number;
  /** Engine limits that differ from the defaults (the raised dirty bound of the large-key points). */
  limits: Record<string, number>;
  /** `default limits` or `raised dirty bound`. */
  variant: string;
  throughputPerSec: number;
  /** Closed loop: queueing at saturation. */
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** Expected distinct keys touched from engine start to the window's end (uniform keys). */
  keysTouchedEstimate: number;
  detail: Record<string, unknown>;
  notes?: string;
  error?: string;
}

export interface ScalingResult {
  settings: Record<string, unknown>;
  byWorkers: ScalingPoint[];
  byKeys: ScalingPoint[];
}

export async function runScaling(o: { quick: boolean; log: (l: string) => void; runMs?: number }): Promise<ScalingResult> {
  const opts: PeerRunOptions = {
    ...DEFAULT_PEER_OPTIONS,
    quick: o.quick,
    log: o.log,
    ...(o.runMs === undefined ? {} : { runMs: o.runMs }),
  };
  const t = statefnTiming(opts);
  const workerCounts = o.quick ? [1, 2] : [1, 2, 4];
  const keyCounts = o.quick ? [1e3, 1e5, 1e7] : [1e3, 1e4, 1e5, 1e6, 1e7];
  const point = async (workers: number, keys: number, limits: Record<string, number> = {}): Promise<ScalingPoint> => {
    const variant = Object.keys(limits).length === 0 ? 'default limits' : 'raised dirty bound';
    const c: StatefnCaseOptions = { workload: 'counter-uniform', path: 'generator', mode: 'closed', workers, limits, ...t };
    try {
      const r = await generatorCase(c, { ...opts, keys });
      const d = r.detail;
      // Records ingested from the start to the window's end, roughly: rate x (warm-up + window).
      const n = ((d.ingestedPerSec as number) * (t.warmupMs + t.measureMs)) / 1000;
      const touched = Math.round(keys * (1 - Math.exp(-n / keys)));
      o.log(
        `scaling: ${workers} workers, ${keys.toExponential(0)} keys, ${variant}: ${r.throughputPerSec.toFixed(0)} msg/s ` +
          `(p99 ${r.p99Ms.toFixed(1)} ms; ~${touched} keys touched, rss max ${String(d.rssMaxMiB)} MiB)` +
          `${r.notes === undefined ? '' : `; ${r.notes}`}`,
      );
      return {
        workers,
        keys,
        limits,
        variant,
        throughputPerSec: r.throughputPerSec,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        p999Ms: r.p999Ms,
        keysTouchedEstimate: touched,
        detail: d,
        ...(r.notes === undefined ? {} : { notes: r.notes }),
      };
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      o.log(`scaling: ${workers} workers, ${keys} keys FAILED: ${message}`);
      return {
        workers,
        keys,
        limits,
        variant,
        throughputPerSec: 0,
        p50Ms: Number.NaN,
        p99Ms: Number.NaN,
        p999Ms: Number.NaN,
        keysTouchedEstimate: 0,
        detail: {},
        error: message,
      };
    }
  };
  const byWorkers: ScalingPoint[] = [];
  for (const w of workerCounts) byWorkers.push(await point(w, DEFAULT_PEER_OPTIONS.keys));
  const byKeys: ScalingPoint[] = [];
  for (const k of keyCounts) {
    // 10^5 keys with 2 workers is also a point of the worker series: measured once more here so
    // both series come from back-to-back runs.
    byKeys.push(await point(2, k));
    // From 10^6 keys a worker's dirty set can pass dirtyEntriesMax within one checkpoint, which
    // deadlocks the engine (bench/README.md, Peers): measured again with the bound raised.
    if (k >= 1e6) byKeys.push(await point(2, k, { ...CHAIN_LIMITS }));
  }
  return {
    settings: {
      workload: 'counter-uniform, generator ingress, closed loop',
      checkpointIntervalMs: 1000,
      checkpointing: true,
      limits:
        'engine defaults (stateCacheEntriesMax 500,000 and dirtyEntriesMax 200,000 per worker, keyGroups 256); ' +
        `from 10^6 keys also with stateCacheEntriesMax = dirtyEntriesMax = ${CHAIN_LIMITS.dirtyEntriesMax} ('raised dirty bound')`,
      warmupMs: t.warmupMs,
      measureMs: t.measureMs,
      workerCounts,
      keyCounts,
      keysForWorkerSeries: DEFAULT_PEER_OPTIONS.keys,
      workersForKeySeries: 2,
    },
    byWorkers,
    byKeys,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runScaling({ quick: process.argv.includes('--quick'), log: (l) => console.log(l) }).then(
    (r) =>
      console.log(
        JSON.stringify(
          {
            settings: r.settings,
            byWorkers: r.byWorkers.map(({ detail: _d, ...p }) => p),
            byKeys: r.byKeys.map(({ detail: _d, ...p }) => p),
          },
          null,
          1,
        ),
      ),
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : e);
      process.exitCode = 1;
    },
  );
}
