/**
 * The Restate peer of `npm run bench -- --peers`: the workloads of bench/peers/types.ts on
 * Restate 1.7.12 (restate-server from npm, TypeScript SDK 1.17.2), on this machine, over HTTP.
 *
 *   install   bench/peers/restate/install.ts: `npm ci` in bench/peers, an npm project of its
 *             own (once, a marker file), so the root project does not depend on Restate;
 *   system    bench/peers/restate/cluster.ts: one restate-server (single node, all roles, default
 *             durability, fresh temp base dir, listeners on 127.0.0.1) and one Node process serving
 *             bench/peers/restate/service.mjs (virtual objects Counter and Hop0..Hop9, HTTP/2),
 *             registered with the admin API;
 *   load      bench/peers/restate/load.ts: HTTP/1.1 keep-alive requests to Restate's ingress from
 *             this process, `POST /Counter/<key>/add` (counter-uniform, counter-zipf) and
 *             `POST /Hop0/<hash(key,0)>/step` (chain: the answer comes back once all 10 hops are done).
 *
 * Per workload: closed loop at concurrency 16, opts.httpConcurrency and 256 (quick: only
 * opts.httpConcurrency), then open loop at each of opts.openRates up to 1.5 x the best closed-loop
 * rate, plus one rate at 80% of it (quick: only the lowest of these rates). Each run: warm-up (3 s; quick
 * 1 s; closed loop: also until as many answers as clients, at most 30 s), then a measured window of
 * opts.runMs (quick: at most 3 s), then a bounded drain. The open
 * loop keeps at most 4,096 requests in flight and counts arrivals beyond that as errors (drops).
 *
 * `fraud`: the example's four functions ported to Restate (service.mjs), transactions
 * `POST /TransactionManager/t-<n>/transaction` answered once scored, plus one
 * `POST /FraudCount/<account>/confirm` per 40 transactions in the same stream (not measured).
 *
 * Standalone: node --import tsx bench/peers/restate.ts [--quick] [--workloads counter-uniform,chain]
 *   [--ms runMs] [--concurrency n] [--rates 500,2000] [--exact-rates] [--concurrencies 16,64,256]
 *   [--keys n] [--keep-data]
 */
import { fileURLToPath } from 'node:url';
import { RestateCluster, procCpuSeconds } from './restate/cluster.js';
import { ensureRestateInstalled, RESTATE_SDK_VERSION, RESTATE_SERVER_VERSION } from './restate/install.js';
import {
  hopKey,
  runClosedLoop,
  runOpenLoop,
  seededRandom,
  uniformSampler,
  zipfSampler,
  zipfTopShare,
  type LoadRunOptions,
  type LoadRunResult,
  type RequestSpec,
} from './restate/load.js';
import { DEFAULT_PEER_OPTIONS, type LoadMode, type PeerResult, type PeerRunOptions, type Workload } from './types.js';
import { createRng } from '../../connectors/generator/rng.js';
import { FRAUD_APP_DEFAULTS, makeConfirmation, makeTransaction } from '../../examples/fraud_detection/app.js';

const HOPS = 10;
const OPEN_MAX_IN_FLIGHT = 4096;
const OPEN_MAX_SOCKETS = 1024;
const SUPPORTED: readonly Workload[] = ['counter-uniform', 'counter-zipf', 'chain', 'fraud'];
/** fraud: one confirmation request per this many transactions (2.5%, the example's 50 per 2,000). */
const FRAUD_TX_PER_CONFIRMATION = 40;

const GUARANTEE_COUNTER =
  "reply after the state change is durable in Restate's log (the invocation's journal incl. its state write and result, " +
  'appended to Bifrost and fsynced per Restate defaults, single node, replication 1); survives a crash of server and service; ' +
  'exactly-once state change per request (exclusive virtual-object handler, one invocation per request)';
const GUARANTEE_CHAIN =
  'reply after all 10 hops completed; each hop is its own invocation whose state write, outgoing call and result are durable ' +
  "in Restate's log (fsync per Restate defaults) before the next step depends on them; survives a crash of server and service";
const GUARANTEE_FRAUD =
  'reply once the transaction is fully scored: the manager invocation and its calls (fraud count, merchant score, model) ' +
  "are each journaled durably in Restate's log (fsync per Restate defaults), the manager's state is cleared; " +
  'survives a crash of server and service; the 30-day expiry of a confirmation is a durable delayed call';

interface CpuSample {
  t: number;
  server: number | undefined;
  service: number | undefined;
  client: number;
}

function cpuSample(c: RestateCluster): CpuSample {
  const u = process.cpuUsage();
  return {
    t: performance.now(),
    server: procCpuSeconds(c.serverPid),
    service: procCpuSeconds(c.servicePid),
    client: (u.user + u.system) / 1e6,
  };
}

/** Cores busy per process over [a, b]. */
function cpuCores(a: CpuSample | undefined, b: CpuSample | undefined): Record<string, number> | undefined {
  if (a === undefined || b === undefined || b.t <= a.t) return undefined;
  const s = (b.t - a.t) / 1000;
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const out: Record<string, number> = { client: r2((b.client - a.client) / s) };
  if (a.server !== undefined && b.server !== undefined) out.server = r2((b.server - a.server) / s);
  if (a.service !== undefined && b.service !== undefined) out.service = r2((b.service - a.service) / s);
  return out;
}

/** Transaction ids must be fresh across the runs on one server. */
let fraudTxIndex = 0;

function requestFactory(workload: Workload, opts: PeerRunOptions, seed: number): () => RequestSpec {
  const rand = seededRandom(seed);
  if (workload === 'counter-uniform') {
    const key = uniformSampler(opts.keys, rand);
    return () => ({ path: `/Counter/${key()}/add`, body: '' });
  }
  if (workload === 'counter-zipf') {
    const key = zipfSampler(opts.keys, opts.zipfExponent, rand);
    return () => ({ path: `/Counter/${key()}/add`, body: '' });
  }
  if (workload === 'chain') {
    const key = uniformSampler(opts.keys, rand);
    return () => {
      const k = String(key());
      return { path: `/Hop0/${hopKey(k, 0, opts.keys)}/step`, body: JSON.stringify({ k, n: opts.keys }) };
    };
  }
  if (workload === 'fraud') {
    // The example's own record makers (10,000 accounts, Zipf(1.1) over 1,000 merchants,
    // confirmations on the 1% compromised accounts); 1 confirmation per 40 transactions.
    const { accounts, merchants } = FRAUD_APP_DEFAULTS;
    const txRng = createRng(seed);
    const confRng = createRng(seed + 1_000_000);
    let n = 0;
    let confirmations = 0;
    return () => {
      if (++n % (FRAUD_TX_PER_CONFIRMATION + 1) === 0) {
        const c = makeConfirmation(confirmations++, confRng, accounts, 1);
        return { path: `/FraudCount/${c.account}/confirm`, body: '', measured: false };
      }
      const t = makeTransaction(fraudTxIndex++, txRng, accounts, merchants, 1);
      return { path: `/TransactionManager/${t.id}/transaction`, body: JSON.stringify(t) };
    };
  }
  throw new Error(`restate: workload ${String(workload)} is not supported`);
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** 80% of the closed-loop max, to 2 significant digits. */
function nearMaxRate(max: number): number {
  const r = 0.8 * max;
  const p = 10 ** Math.max(0, Math.floor(Math.log10(r)) - 1);
  return Math.max(1, Math.round(r / p) * p);
}

/** Overrides for experiments (the standalone CLI); `npm run bench -- --peers` passes none. */
export interface RestateRunOverrides {
  /** Closed-loop concurrencies instead of 16, opts.httpConcurrency, 256. */
  concurrencies?: number[];
  /** Run exactly opts.openRates (no 1.5 x max filter, no 80% rate). */
  exactRates?: boolean;
}

export async function runRestate(opts: PeerRunOptions, overrides: RestateRunOverrides = {}): Promise<PeerResult[]> {
  const log = opts.log;
  const workloads = opts.workloads.filter((w) => SUPPORTED.includes(w));
  for (const w of opts.workloads) if (!SUPPORTED.includes(w)) log(`restate: ${w} skipped (unknown workload)`);
  if (workloads.length === 0) return [];

  const install = await ensureRestateInstalled(log);

  const warmupMs = opts.quick ? 1000 : 3000;
  const measureMs = opts.quick ? Math.min(opts.runMs, 3000) : opts.runMs;
  const concurrencies =
    overrides.concurrencies ?? (opts.quick ? [opts.httpConcurrency] : [...new Set([16, opts.httpConcurrency, 256])].sort((a, b) => a - b));

  const tStart = performance.now();
  const cluster = await RestateCluster.start(install, log);
  const startupMs = Math.round(performance.now() - tStart);
  const results: PeerResult[] = [];
  try {
    const serverSettings = {
      version: RESTATE_SERVER_VERSION,
      command: `restate-server --config-file <base dir>/restate.toml --base-dir <fresh temp dir> --no-logo`,
      configFile:
        `listen-mode = "tcp"; node-name; bind-address (fabric), [ingress] bind-address, [admin] bind-address on ` +
        `127.0.0.1 (free ports); disable-telemetry = true; disable-web-ui = true; log-disable-ansi-codes = true; nothing else set`,
      effective: cluster.settings,
    };
    const common = {
      keys: opts.keys,
      warmupMs,
      measureMs,
      client: 'node:http keep-alive agent in the bench process, HTTP/1.1, POST to the ingress, latency per request',
      server: serverSettings,
      service:
        `@restatedev/restate-sdk ${RESTATE_SDK_VERSION}, 1 Node ${process.version} process (tsx loader; Promise.withResolvers ` +
        `polyfilled, ` +
        'the SDK calls it and Node 20 lacks it), HTTP/2 (h2c, bidirectional stream), all object handlers exclusive, RESTATE_LOGGING=WARN',
      installMs: install.installMs,
      installCached: install.cached,
      startupMs,
    };
    let seed = 1;
    for (const workload of workloads) {
      const guarantee = workload === 'chain' ? GUARANTEE_CHAIN : workload === 'fraud' ? GUARANTEE_FRAUD : GUARANTEE_COUNTER;
      const wlSettings: Record<string, unknown> = { ...common };
      if (workload === 'counter-zipf') {
        wlSettings.zipfExponent = opts.zipfExponent;
        wlSettings.hottestKeyShare = round(zipfTopShare(opts.keys, opts.zipfExponent), 4);
      }
      if (workload === 'chain') wlSettings.hops = HOPS;
      if (workload === 'fraud') {
        delete wlSettings.keys;
        wlSettings.accounts = FRAUD_APP_DEFAULTS.accounts;
        wlSettings.merchants = FRAUD_APP_DEFAULTS.merchants;
        wlSettings.confirmations =
          `1 per ${FRAUD_TX_PER_CONFIRMATION} transactions, in the same request stream (not counted ` +
          `in throughput or latency; failures count as errors)`;
      }

      const toResult = (
        mode: LoadMode,
        r: LoadRunResult,
        extra: { concurrency?: number; offeredPerSec?: number; cpu?: Record<string, number> | undefined; notes?: string[] },
      ): PeerResult => {
        const notes = [...(extra.notes ?? [])];
        if (workload === 'chain') notes.push(`${Math.round(r.throughputPerSec * HOPS)} hop invocations/s`);
        if (workload === 'fraud') {
          notes.push(
            'throughput = scored transactions/s (each: 4 invocations, the 7 messages of the statefn example); ' +
              `MerchantScorer is exclusive per merchant (as a StateFun instance) and the hottest of the Zipf(1.1) merchants ` +
              `gets ${(100 * zipfTopShare(FRAUD_APP_DEFAULTS.merchants, 1.1)).toFixed(0)}% of the transactions`,
          );
        }
        if (r.dropped > 0) notes.push(`${r.dropped} arrivals dropped at the ${OPEN_MAX_IN_FLIGHT} in-flight cap (counted as errors)`);
        if (r.firstError !== undefined) notes.push(`first error: ${r.firstError}`);
        if (r.undrained > 0) notes.push(`${r.undrained} requests still in flight after the drain timeout`);
        const settings: Record<string, unknown> = { ...wlSettings, windowMs: r.windowMs, maxMs: round(r.maxMs, 1) };
        if (extra.concurrency !== undefined) settings.concurrency = extra.concurrency;
        if (r.warmupMs !== undefined) settings.warmupMs = r.warmupMs;
        if (mode === 'open') {
          settings.maxInFlight = OPEN_MAX_IN_FLIGHT;
          settings.maxSockets = OPEN_MAX_SOCKETS;
          if (r.sentPerSec !== undefined) settings.sentPerSec = round(r.sentPerSec, 1);
        }
        if (extra.cpu !== undefined) settings.cpuCoresInWindow = extra.cpu;
        const res: PeerResult = {
          system: 'restate',
          version: RESTATE_SERVER_VERSION,
          workload,
          path: 'http',
          mode,
          throughputPerSec: round(r.throughputPerSec, 1),
          completed: r.completed,
          errors: r.errors,
          p50Ms: round(r.p50Ms, 3),
          p99Ms: round(r.p99Ms, 3),
          p999Ms: round(r.p999Ms, 3),
          guarantee,
          settings,
        };
        if (extra.concurrency !== undefined) res.concurrency = extra.concurrency;
        if (extra.offeredPerSec !== undefined) res.offeredPerSec = extra.offeredPerSec;
        if (notes.length > 0) res.notes = notes.join('; ');
        return res;
      };

      const base = (): Omit<LoadRunOptions, 'onWindow'> => ({
        target: { host: '127.0.0.1', port: cluster.ports.ingress },
        next: requestFactory(workload, opts, seed++),
        warmupMs,
        measureMs,
        maxCompleted: 0,
        requestTimeoutMs: 60_000,
        drainTimeoutMs: 60_000,
      });
      const cpuHooks = (): { onWindow: (p: 'start' | 'end') => void; cores: () => Record<string, number> | undefined } => {
        let a: CpuSample | undefined;
        let b: CpuSample | undefined;
        return {
          onWindow: (p) => {
            if (p === 'start') a = cpuSample(cluster);
            else b = cpuSample(cluster);
          },
          cores: () => cpuCores(a, b),
        };
      };

      let maxClosed = 0;
      for (const concurrency of concurrencies) {
        const cpu = cpuHooks();
        log(
          `restate: ${workload} closed loop, concurrency ${concurrency} (warm-up >= ${warmupMs / 1000} s and ${concurrency} ` +
            `answers, then ${measureMs / 1000} s)`,
        );
        const r = await runClosedLoop({ ...base(), concurrency, maxWarmupMs: opts.quick ? 10_000 : 30_000, onWindow: cpu.onWindow });
        const res = toResult('closed', r, { concurrency, cpu: cpu.cores() });
        results.push(res);
        log(
          `restate: ${workload} closed c=${concurrency}: ${fmtRate(r.throughputPerSec)}/s, p50 ${fmtMs(r.p50Ms)} ms, ` +
            `p99 ${fmtMs(r.p99Ms)} ms, errors ${r.errors}`,
        );
        if (r.errors <= r.completed) maxClosed = Math.max(maxClosed, r.throughputPerSec);
      }

      let rates = overrides.exactRates ? [...opts.openRates] : opts.openRates.filter((x) => x <= 1.5 * maxClosed);
      const skipped = opts.openRates.filter((x) => !rates.includes(x));
      if (!overrides.exactRates && maxClosed > 0 && (!opts.quick || rates.length === 0)) {
        const near = nearMaxRate(maxClosed);
        if (!rates.includes(near)) rates.push(near);
      }
      rates = [...new Set(rates)].sort((a, b) => a - b);
      if (opts.quick && !overrides.exactRates) rates = rates.slice(0, 1);
      if (skipped.length > 0)
        log(`restate: ${workload} open loop skips ${skipped.join(', ')}/s (> 1.5 x the closed-loop max ${fmtRate(maxClosed)}/s)`);
      for (const rate of rates) {
        const cpu = cpuHooks();
        log(`restate: ${workload} open loop at ${rate}/s`);
        // fraud: the offered rate is transactions/s; confirmations come on top.
        const requestRate = workload === 'fraud' ? (rate * (FRAUD_TX_PER_CONFIRMATION + 1)) / FRAUD_TX_PER_CONFIRMATION : rate;
        const r = await runOpenLoop({
          ...base(),
          ratePerSec: requestRate,
          maxInFlight: OPEN_MAX_IN_FLIGHT,
          maxSockets: OPEN_MAX_SOCKETS,
          onWindow: cpu.onWindow,
        });
        const notes = opts.openRates.includes(rate) ? [] : [`rate = 80% of this system's best closed-loop rate (${fmtRate(maxClosed)}/s)`];
        results.push(toResult('open', r, { offeredPerSec: rate, cpu: cpu.cores(), notes }));
        log(
          `restate: ${workload} open ${rate}/s: ${fmtRate(r.throughputPerSec)}/s, p50 ${fmtMs(r.p50Ms)} ms, ` +
            `p99 ${fmtMs(r.p99Ms)} ms, errors ${r.errors}`,
        );
      }
    }
    const bytes = cluster.dataBytes();
    if (bytes !== undefined) log(`restate: server data dir ${(bytes / 1e6).toFixed(0)} MB at the end`);
  } finally {
    await cluster.stop(process.env.STATEFN_RESTATE_KEEP_DATA === '1');
    log('restate: stopped');
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Standalone

function fmtRate(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(2)} K`;
  return x.toFixed(0);
}

function fmtMs(x: number): string {
  if (!Number.isFinite(x)) return '-';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function printRestateTable(results: readonly PeerResult[], out: (line: string) => void = console.log): void {
  const header = ['workload', 'mode', 'conc/rate', 'msg/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'completed', 'errors', 'cores srv/svc/cli'];
  const rows = results.map((r) => {
    const cpu = r.settings.cpuCoresInWindow as Record<string, number> | undefined;
    return [
      r.workload,
      r.mode,
      r.mode === 'closed' ? `c=${String(r.concurrency)}` : `${String(r.offeredPerSec)}/s`,
      fmtRate(r.throughputPerSec),
      fmtMs(r.p50Ms),
      fmtMs(r.p99Ms),
      fmtMs(r.p999Ms),
      String(r.completed),
      String(r.errors),
      cpu === undefined ? '-' : `${cpu.server ?? '-'}/${cpu.service ?? '-'}/${cpu.client ?? '-'}`,
    ];
  });
  const right = [false, false, true, true, true, true, true, true, true, false];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  out(fmt(header));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) out(fmt(r));
}

function parseCli(argv: string[]): { opts: PeerRunOptions; overrides: RestateRunOverrides } {
  const overrides: RestateRunOverrides = {};
  const o: PeerRunOptions = {
    ...DEFAULT_PEER_OPTIONS,
    workloads: [...DEFAULT_PEER_OPTIONS.workloads],
    openRates: [...DEFAULT_PEER_OPTIONS.openRates],
    log: (l) => console.error(l),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a}: missing value`);
      return x;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--workloads') o.workloads = v().split(',') as Workload[];
    else if (a === '--ms') o.runMs = Number(v());
    else if (a === '--concurrency') o.httpConcurrency = Number(v());
    else if (a === '--rates') o.openRates = v().split(',').map(Number);
    else if (a === '--exact-rates') overrides.exactRates = true;
    else if (a === '--concurrencies') overrides.concurrencies = v().split(',').map(Number);
    else if (a === '--keys') o.keys = Number(v());
    else if (a === '--keep-data') process.env.STATEFN_RESTATE_KEEP_DATA = '1';
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: node --import tsx bench/peers/restate.ts [--quick] [--workloads counter-uniform,counter-zipf,chain] [--ms ' +
          'runMs] [--concurrency n] [--rates 500,2000] [--exact-rates] [--concurrencies 16,64] [--keys n] [--keep-data]',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return { opts: o, overrides };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { opts, overrides } = parseCli(process.argv.slice(2));
  const t0 = performance.now();
  runRestate(opts, overrides)
    .then((results) => {
      console.log(
        `\nRestate ${RESTATE_SERVER_VERSION} (SDK ${RESTATE_SDK_VERSION}), ${((performance.now() - t0) / 1000).toFixed(0)} ` +
          `s${opts.quick ? ', quick' : ''}`,
      );
      printRestateTable(results);
      if (process.env.STATEFN_RESTATE_JSON !== undefined) console.log(JSON.stringify(results, null, 2));
    })
    .catch((e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      process.exitCode = 1;
    });
}
