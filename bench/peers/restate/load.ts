/**
 * HTTP load generator of the Restate peer: closed loop (fixed concurrency) and open loop (fixed
 * offered rate, bounded in-flight) against one HTTP/1.1 endpoint over keep-alive connections
 * (node:http, no extra dependency), plus the key samplers (uniform, Zipf) and the chain's key hash
 * (the same FNV-1a as `service.mjs`).
 *
 * Measurement: every run has a warm-up (not measured) and a measured window. Throughput = requests
 * that completed successfully inside the window / window length. The closed loop's warm-up also
 * waits for as many answers as it has clients (steady state), see runClosedLoop. Latency of a request =
 * completion - send time (closed loop) or completion - the time it was *due* (open loop, so a
 * stalled client or a full in-flight cap shows up as latency, not as silently fewer requests);
 * only requests completing inside the window count. After the window the generator stops sending
 * and waits (bounded) for what is still in flight, so the next run starts on an idle system.
 */
import http from 'node:http';
import { percentile } from '../types.js';

// ---------------------------------------------------------------------------------------------
// Random numbers and keys

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform key index in [0, n). */
export function uniformSampler(n: number, rand: () => number): () => number {
  return () => Math.floor(rand() * n) % n;
}

/**
 * Zipf over ranks 0..n-1 with P(rank r) ∝ 1 / (r + 1)^s (inverse CDF by binary search over a
 * precomputed table). Rank 0 is the hottest key: with n = 100,000 and s = 1.0 it gets 8.3% of
 * the requests.
 */
export function zipfSampler(n: number, s: number, rand: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let r = 0; r < n; r++) {
    sum += 1 / Math.pow(r + 1, s);
    cdf[r] = sum;
  }
  for (let r = 0; r < n; r++) cdf[r] = cdf[r]! / sum;
  return () => {
    const u = rand();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** Share of the requests the hottest key gets under zipfSampler(n, s). */
export function zipfTopShare(n: number, s: number): number {
  let sum = 0;
  for (let r = 0; r < n; r++) sum += 1 / Math.pow(r + 1, s);
  return 1 / sum;
}

export { fnv1a, hopKey } from '../chain_keys.js';

// ---------------------------------------------------------------------------------------------
// Runs

export interface HttpTarget {
  host: string;
  port: number;
}

/** One request: path (with the key) and JSON body (may be empty). */
export interface RequestSpec {
  path: string;
  body: string;
  /**
   * false: background traffic (the fraud workload's confirmations): sent and checked (a failure
   * counts as an error) but left out of `completed`, throughput and latency.
   */
  measured?: boolean;
}

export interface LoadRunOptions {
  target: HttpTarget;
  next: () => RequestSpec;
  warmupMs: number;
  measureMs: number;
  /** Stop the window early after this many completions (0: no limit). */
  maxCompleted: number;
  /** Per-request timeout (counted as an error). */
  requestTimeoutMs: number;
  /** Upper bound of the wait for in-flight requests after the window. */
  drainTimeoutMs: number;
  /** Called when the measured window starts and when it is over (for CPU sampling). */
  onWindow?: (phase: 'start' | 'end') => void;
}

export interface LoadRunResult {
  completed: number;
  errors: number;
  /** Open loop: arrivals dropped because the in-flight cap was reached (also counted in errors). */
  dropped: number;
  windowMs: number;
  throughputPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Requests still in flight when the drain timed out (0 when drained). */
  undrained: number;
  firstError?: string;
  /** Open loop: requests actually sent per second in the window (offered minus drops). */
  sentPerSec?: number;
  /** Closed loop: how long the warm-up actually took (ms). */
  warmupMs?: number;
}

interface Window {
  start: number;
  end: number;
  completed: number;
  errors: number;
  dropped: number;
  sent: number;
  latencies: number[];
  firstError?: string;
}

const now = (): number => performance.now();

/** Fires o.onWindow at the window's start and end; returns a cancel function. */
function windowHooks(o: LoadRunOptions, w: Window): () => void {
  if (o.onWindow === undefined) return () => {};
  const cb = o.onWindow;
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    clearTimeout(t2);
    cb('end');
  };
  const t1 = setTimeout(() => cb('start'), Math.max(0, w.start - now()));
  const t2 = setTimeout(end, Math.max(0, w.end - now()));
  return () => {
    clearTimeout(t1);
    end();
  };
}

/** POST one request; resolves with an error string or undefined on a 2xx answer. */
function post(agent: http.Agent, t: HttpTarget, spec: RequestSpec, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (err: string | undefined): void => {
      if (done) return;
      done = true;
      resolve(err);
    };
    const req = http.request(
      {
        agent,
        host: t.host,
        port: t.port,
        method: 'POST',
        path: spec.path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(spec.body) },
        timeout: timeoutMs,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          res.on('data', () => {});
          res.on('end', () => finish(undefined));
          res.on('error', (e) => finish(`response: ${e.message}`));
        } else {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            if (text.length < 500) text += c;
          });
          res.on('end', () => finish(`HTTP ${status}: ${text.slice(0, 300)}`));
          res.on('error', () => finish(`HTTP ${status}`));
        }
      },
    );
    req.on('timeout', () => {
      req.destroy(new Error(`timeout after ${timeoutMs} ms`));
    });
    req.on('error', (e) => finish(e.message));
    req.end(spec.body);
  });
}

function summarize(w: Window, undrained: number, extra: Partial<LoadRunResult> = {}): LoadRunResult {
  const windowMs = Math.max(1, w.end - w.start);
  const sorted = w.latencies.sort((a, b) => a - b);
  const r: LoadRunResult = {
    completed: w.completed,
    errors: w.errors,
    dropped: w.dropped,
    windowMs: Math.round(windowMs),
    throughputPerSec: (w.completed * 1000) / windowMs,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    maxMs: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!,
    undrained,
    ...extra,
  };
  if (w.firstError !== undefined) r.firstError = w.firstError;
  return r;
}

async function drain(inflight: Set<Promise<void>>, timeoutMs: number): Promise<number> {
  const deadline = now() + timeoutMs;
  while (inflight.size > 0 && now() < deadline) {
    await Promise.race([Promise.all([...inflight]), sleep(Math.min(250, Math.max(1, deadline - now())))]);
  }
  return inflight.size;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Closed loop: `concurrency` clients, each sends its next request when the previous one answered.
 * The window starts once the warm-up time is over *and* as many requests as there are clients
 * have completed since the start (so a slow system, whose first answers take seconds, is measured
 * in its steady state rather than while it fills up), but at the latest after `maxWarmupMs`.
 */
export async function runClosedLoop(o: LoadRunOptions & { concurrency: number; maxWarmupMs?: number }): Promise<LoadRunResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency });
  const t0 = now();
  const w: Window = {
    start: Number.POSITIVE_INFINITY,
    end: Number.POSITIVE_INFINITY,
    completed: 0,
    errors: 0,
    dropped: 0,
    sent: 0,
    latencies: [],
  };
  let stop = false;
  let warmCompleted = 0;
  let ended = false;
  const inflight = new Set<Promise<void>>();
  const endWindow = (at: number): void => {
    if (ended) return;
    ended = true;
    w.end = Math.min(w.end, at);
    stop = true;
    clearTimeout(endTimer);
    if (Number.isFinite(w.start)) o.onWindow?.('end');
  };
  let endTimer: ReturnType<typeof setTimeout> | undefined;
  const startWindow = (): void => {
    if (Number.isFinite(w.start) || ended) return;
    w.start = now();
    w.end = w.start + o.measureMs;
    clearTimeout(capTimer);
    o.onWindow?.('start');
    endTimer = setTimeout(() => endWindow(w.end), o.measureMs);
  };
  const maybeStart = (): void => {
    if (!Number.isFinite(w.start) && now() - t0 >= o.warmupMs && warmCompleted >= o.concurrency) startWindow();
  };
  const warmTimer = setTimeout(maybeStart, o.warmupMs);
  const capTimer = setTimeout(startWindow, Math.max(o.warmupMs, o.maxWarmupMs ?? 30_000));
  const client = async (): Promise<void> => {
    while (!stop) {
      const spec = o.next();
      const sent = now();
      const err = await post(agent, o.target, spec, o.requestTimeoutMs);
      const end = now();
      if (end >= w.end) {
        endWindow(w.end);
        break;
      }
      if (end < w.start) {
        // Warm-up.
        if (err === undefined) warmCompleted++;
        maybeStart();
        if (err !== undefined) await sleep(5);
        continue;
      }
      if (err === undefined) {
        if (spec.measured === false) continue;
        w.completed++;
        w.latencies.push(end - sent);
        if (o.maxCompleted > 0 && w.completed >= o.maxCompleted) endWindow(end);
      } else {
        w.errors++;
        w.firstError ??= err;
        if (w.errors > 100 && w.errors > w.completed)
          endWindow(end); // a broken system: stop hammering it
        else await sleep(5);
      }
    }
  };
  for (let i = 0; i < o.concurrency; i++) {
    const p: Promise<void> = client().finally(() => inflight.delete(p));
    inflight.add(p);
  }
  const undrained = await drain(
    inflight,
    Math.max(o.warmupMs, o.maxWarmupMs ?? 30_000) + o.measureMs + o.drainTimeoutMs + o.requestTimeoutMs,
  );
  clearTimeout(warmTimer);
  clearTimeout(capTimer);
  endWindow(now());
  agent.destroy();
  if (!Number.isFinite(w.start)) w.start = w.end;
  return summarize(w, undrained, { warmupMs: Math.round(w.start - t0) });
}

/**
 * Open loop: requests due every 1000 / rate ms from the start (a 2 ms scheduler tick sends
 * whatever became due); at most `maxInFlight` outstanding, arrivals beyond that are dropped and
 * counted as errors.
 */
export async function runOpenLoop(
  o: LoadRunOptions & { ratePerSec: number; maxInFlight: number; maxSockets: number },
): Promise<LoadRunResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.maxSockets, maxFreeSockets: o.maxSockets });
  const t0 = now();
  const w: Window = {
    start: t0 + o.warmupMs,
    end: t0 + o.warmupMs + o.measureMs,
    completed: 0,
    errors: 0,
    dropped: 0,
    sent: 0,
    latencies: [],
  };
  const interval = 1000 / o.ratePerSec;
  const inflight = new Set<Promise<void>>();
  let issued = 0;
  const endHooks = windowHooks(o, w);
  const one = async (due: number): Promise<void> => {
    const spec = o.next();
    const err = await post(agent, o.target, spec, o.requestTimeoutMs);
    const end = now();
    if (end < w.start || end >= w.end) return;
    if (err === undefined) {
      if (spec.measured === false) return;
      w.completed++;
      w.latencies.push(end - due);
    } else {
      w.errors++;
      w.firstError ??= err;
    }
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const t = now();
      if (t >= w.end) {
        resolve();
        return;
      }
      while (t0 + issued * interval <= t) {
        const due = t0 + issued * interval;
        issued++;
        const inWindow = due >= w.start && due < w.end;
        if (inflight.size >= o.maxInFlight) {
          if (inWindow) {
            w.dropped++;
            w.errors++;
            w.firstError ??= `dropped: ${o.maxInFlight} requests in flight`;
          }
          continue;
        }
        if (inWindow) w.sent++;
        const p: Promise<void> = one(due).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      setTimeout(tick, 2);
    };
    tick();
  });
  endHooks();
  const undrained = await drain(inflight, o.drainTimeoutMs);
  agent.destroy();
  return summarize(w, undrained, { sentPerSec: (w.sent * 1000) / Math.max(1, w.end - w.start) });
}
