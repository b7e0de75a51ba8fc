/**
 * The shared vocabulary of `npm run bench -- --peers`: the workloads every system runs, how a
 * run is driven, and the shape of one measured result. Each peer module (statefn, Restate, Flink
 * StateFun) exports `run<Peer>(opts: PeerRunOptions): Promise<PeerResult[]>`.
 */

/**
 * - `counter-uniform` / `counter-zipf`: one message increments the state of one of `keys`
 *   (100,000) keys, uniformly or Zipf-skewed (exponent `zipfExponent`, 1.0).
 * - `chain`: a message hops through 10 functions, each on a different key (hop i goes to
 *   function i at key hash(key, i)), then leaves (egress / response).
 * - `fraud`: statefn's fraud-detection example (examples/fraud_detection).
 */
export type Workload = 'counter-uniform' | 'counter-zipf' | 'chain' | 'fraud';

/**
 * How load enters: `generator` (statefn's generator ingress), `http` (each message is an HTTP
 * request to the system's ingress, answered once the effect is durable: Restate's ingress,
 * statefn's HTTP ingress with durable replies), `harness` (Flink StateFun harness: an in-JVM source).
 */
export type LoadPath = 'generator' | 'http' | 'harness';

/** `closed`: as fast as the system takes it (fixed concurrency for HTTP); `open`: a fixed offered rate. */
export type LoadMode = 'closed' | 'open';

export interface PeerRunOptions {
  quick: boolean;
  /** Keys of the counter workloads (default 100,000). */
  keys: number;
  zipfExponent: number;
  /** Open-loop rates to offer, messages/s; each system may skip rates far above its closed-loop max. */
  openRates: number[];
  /** Concurrency of the closed-loop HTTP client. */
  httpConcurrency: number;
  /** Upper bound of one measured run (each run also stops by count). */
  runMs: number;
  workloads: Workload[];
  log: (line: string) => void;
}

export interface PeerResult {
  system: 'statefn' | 'restate' | 'flink-statefun';
  version: string;
  workload: Workload;
  path: LoadPath;
  mode: LoadMode;
  /** Open loop: the offered rate; closed loop: the HTTP concurrency, or undefined. */
  offeredPerSec?: number;
  concurrency?: number;
  /** Completed messages per second over the measured window. */
  throughputPerSec: number;
  completed: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** What a completed message means here: when is it durable, what survives a crash. */
  guarantee: string;
  /** Exact settings (checkpoint interval, workers, parallelism, ...). */
  settings: Record<string, unknown>;
  notes?: string;
}

export const DEFAULT_PEER_OPTIONS: Omit<PeerRunOptions, 'log'> = {
  quick: false,
  keys: 100_000,
  zipfExponent: 1.0,
  openRates: [500, 2_000, 10_000, 50_000, 200_000],
  httpConcurrency: 64,
  runMs: 20_000,
  workloads: ['counter-uniform', 'counter-zipf', 'chain', 'fraud'],
};

/** Percentile of sorted latencies (ms). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
