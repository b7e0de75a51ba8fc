/**
 * The HTTP load client of statefn's HTTP-ingress runs, in a child process of its own (so its CPU
 * is measured apart from the engine's and it does not share the engine's event loop).
 *
 * It speaks HTTP/1.1 directly over `net` sockets with keep-alive and pipelining: a connection
 * carries several requests in flight (the server answers them in order, which Node's http server
 * does for pipelined requests). Node's `http.request` costs tens of µs of client CPU per request
 * and allows one request per connection, which on 2 cores would make the client, not the server,
 * the limit; this client writes the requests that became due in one `write` per connection and
 * parses responses with a few string searches (a few µs per request).
 *
 *   closed loop: `concurrency` requests outstanding, spread over min(concurrency, connections)
 *     connections; each answer is replaced by a new request on its connection at once.
 *     Latency = answer - send.
 *   open loop: requests due every 1 / rate s from the start (a 1 ms timer sends what became due,
 *     round robin over the connections); at most `maxInFlight` outstanding, arrivals beyond that
 *     are dropped and counted as errors. Latency = answer - the time the request was *due*, so a
 *     stalled client or server shows up as latency (no coordinated omission).
 *
 * Throughput = 2xx answers inside the measured window / window. After the window no request is
 * sent; the client waits (bounded by `drainMs`) for the rest, then closes its connections.
 *
 * Protocol with the parent (IPC): the parent sends a {@link LoadJob}; the child sends
 * `{type: 'window', phase: 'start' | 'end'}` at the window's edges (the parent samples the
 * engine's CPU there) and `{type: 'result', result}` at the end. `{type: 'exit'}` ends the child.
 * The child also exits when its parent goes away.
 */
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Xoshiro128 } from '../../../connectors/generator/rng.js';
import { makeTransaction } from '../../../examples/fraud_detection/app.js';
import { hopKey } from './common.js';
import { COUNTER_HTTP_TYPE } from './counter.js';
import type { Workload } from '../types.js';

export interface LoadJob {
  host: string;
  port: number;
  workload: Workload;
  keys: number;
  zipfExponent: number;
  seed: number;
  mode: 'closed' | 'open';
  concurrency?: number;
  ratePerSec?: number;
  connections: number;
  warmupMs: number;
  measureMs: number;
  drainMs: number;
  /** Open loop: outstanding requests above which arrivals are dropped. */
  maxInFlight: number;
}

export interface LoadResult {
  completed: number;
  errors: number;
  dropped: number;
  windowMs: number;
  throughputPerSec: number;
  /** Requests sent per second inside the window. */
  sentPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
  undrained: number;
  /** Answers by HTTP status (all, including warm-up). */
  statuses: Record<string, number>;
  firstError?: string;
  /** The client process's CPU over the window, in cores (user + system). */
  clientCpuCores: number;
  clientEventLoopUtilization: number;
  connections: number;
  /** Outstanding requests, largest seen. */
  inFlightMax: number;
  /** ms from the job's start to the first answer (any status); null if none came. */
  firstAnswerMs: number | null;
}

type ChildMsg = { type: 'window'; phase: 'start' | 'end' } | { type: 'result'; result: LoadResult } | { type: 'error'; message: string };

// ---------------------------------------------------------------------------------------------
// Requests

/** A function returning the next request's bytes (latin1 string: all workloads are ASCII). */
function requestMaker(job: LoadJob): () => string {
  const rng = new Xoshiro128(job.seed, 7);
  const head = (path: string, type: string, body: string): string =>
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vnd.${type}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  switch (job.workload) {
    case 'counter-uniform':
    case 'counter-zipf': {
      const s = job.workload === 'counter-zipf' ? job.zipfExponent : 0;
      return () => head(`/peers/counter/${s > 0 ? rng.zipf(job.keys, s) : rng.int(job.keys)}`, COUNTER_HTTP_TYPE, '1');
    }
    case 'chain':
      return () => {
        const k = String(rng.int(job.keys));
        const v = `0|${k}`;
        // io.statefun.types/string in StateFun's wire format: field 1, length-delimited (< 128 B).
        return head(`/chain/f0/${hopKey(k, 0, job.keys)}`, 'io.statefun.types/string', `\n${String.fromCharCode(v.length)}${v}`);
      };
    case 'fraud': {
      let n = 0;
      return () => {
        const i = n++;
        const t = { ...makeTransaction(i, rng, 10_000, 1_000, 1), timestamp: Date.now() };
        return head(`/fraud/transaction-manager/${t.id}`, 'fraud.types/Transaction', JSON.stringify(t));
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The client

const now = (): number => performance.now();

interface Window {
  start: number;
  end: number;
  completed: number;
  errors: number;
  dropped: number;
  sent: number;
  firstError?: string;
}

class Conn {
  readonly sock: net.Socket;
  /** Per outstanding request, in order: the time its latency counts from. */
  private readonly times: number[] = [];
  private head = 0;
  private buf = '';
  private out = '';
  private outScheduled = false;
  closed = false;

  constructor(
    job: LoadJob,
    private readonly onAnswer: (c: Conn, status: number, from: number, body: string) => void,
    private readonly onGone: (c: Conn, outstanding: number[], why: string) => void,
  ) {
    this.sock = net.connect({ host: job.host, port: job.port });
    this.sock.setNoDelay(true);
    this.sock.on('data', (chunk: Buffer) => this.onData(chunk));
    const gone = (why: string): void => {
      if (this.closed) return;
      this.closed = true;
      const rest = this.times.slice(this.head);
      this.times.length = 0;
      this.head = 0;
      this.onGone(this, rest, why);
    };
    this.sock.on('error', (e) => gone(e.message));
    this.sock.on('close', () => gone('connection closed'));
  }

  get outstanding(): number {
    return this.times.length - this.head;
  }

  /** Queue a request; all requests queued in one turn of the event loop go out in one write. */
  send(req: string, from: number): void {
    if (this.closed) return;
    this.times.push(from);
    this.out += req;
    if (!this.outScheduled) {
      this.outScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.outScheduled = false;
    if (this.closed || this.out.length === 0) return;
    this.sock.write(this.out, 'latin1');
    this.out = '';
  }

  private onData(chunk: Buffer): void {
    const s = this.buf.length === 0 ? chunk.toString('latin1') : this.buf + chunk.toString('latin1');
    let pos = 0;
    for (;;) {
      const hEnd = s.indexOf('\r\n\r\n', pos);
      if (hEnd < 0) break;
      // "HTTP/1.1 202 Accepted": the status is at 9..12.
      const status = Number(s.slice(pos + 9, pos + 12));
      let cl = 0;
      const c = s.indexOf('Content-Length: ', pos);
      if (c >= 0 && c < hEnd) cl = parseInt(s.slice(c + 16, s.indexOf('\r\n', c)), 10);
      else {
        const lc = s.slice(pos, hEnd).toLowerCase().indexOf('content-length:');
        if (lc >= 0) cl = parseInt(s.slice(pos + lc + 15, s.indexOf('\r\n', pos + lc)).trim(), 10);
      }
      const end = hEnd + 4 + cl;
      if (end > s.length) break;
      const from = this.times[this.head++]!;
      if (this.head > 4096 && this.head * 2 > this.times.length) {
        this.times.splice(0, this.head);
        this.head = 0;
      }
      this.onAnswer(this, status, from, status >= 300 ? s.slice(hEnd + 4, end) : '');
      pos = end;
    }
    this.buf = pos === s.length ? '' : s.slice(pos);
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }
}

async function runJob(job: LoadJob, notify: (m: ChildMsg) => void): Promise<LoadResult> {
  const next = requestMaker(job);
  const hist = createHistogram();
  const statuses: Record<string, number> = {};
  const t0 = now();
  const w: Window = { start: t0 + job.warmupMs, end: t0 + job.warmupMs + job.measureMs, completed: 0, errors: 0, dropped: 0, sent: 0 };
  let stopped = false;
  let inFlight = 0;
  let inFlightMax = 0;
  let firstAnswer: number | null = null;
  let cpuA: NodeJS.CpuUsage | undefined;
  let eluA: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  let cpuCores = 0;
  let elu = 0;
  const closed = job.mode === 'closed';
  const conns: Conn[] = [];
  const issue = (c: Conn, from: number): void => {
    if (from >= w.start && from < w.end) w.sent++;
    inFlight++;
    if (inFlight > inFlightMax) inFlightMax = inFlight;
    c.send(next(), from);
  };
  const onAnswer = (c: Conn, status: number, from: number, body: string): void => {
    inFlight--;
    const t = now();
    firstAnswer ??= t - t0;
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (t >= w.start && t < w.end) {
      if (status >= 200 && status < 300) {
        w.completed++;
        hist.record(Math.max(1, Math.round((t - from) * 1000)));
      } else {
        w.errors++;
        w.firstError ??= `HTTP ${status}: ${body.slice(0, 300)}`;
      }
    }
    if (closed && !stopped && t < w.end) issue(c, t);
  };
  const onGone = (c: Conn, outstanding: number[], why: string): void => {
    inFlight -= outstanding.length;
    const t = now();
    if (t >= w.start && t < w.end) {
      w.errors += outstanding.length;
      if (outstanding.length > 0 || !stopped) w.firstError ??= `connection lost: ${why}`;
    }
    const i = conns.indexOf(c);
    if (i >= 0 && !stopped && t < w.end) {
      // Reconnect and, in the closed loop, restore the connection's share of the concurrency.
      const r = new Conn(job, onAnswer, onGone);
      conns[i] = r;
      if (closed) for (let k = 0; k < outstanding.length; k++) issue(r, now());
    }
  };

  const m = Math.max(1, closed ? Math.min(job.concurrency ?? 1, job.connections) : job.connections);
  for (let i = 0; i < m; i++) conns.push(new Conn(job, onAnswer, onGone));
  await Promise.all(
    conns.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          c.sock.once('connect', () => resolve());
          c.sock.once('error', reject);
        }),
    ),
  );

  const startWindow = setTimeout(
    () => {
      cpuA = process.cpuUsage();
      eluA = performance.eventLoopUtilization();
      notify({ type: 'window', phase: 'start' });
    },
    Math.max(0, w.start - now()),
  );
  const endWindow = new Promise<void>((resolve) =>
    setTimeout(
      () => {
        stopped = true;
        const cpu = process.cpuUsage(cpuA);
        cpuCores = (cpu.user + cpu.system) / 1000 / Math.max(1, now() - w.start);
        elu = eluA === undefined ? 0 : performance.eventLoopUtilization(eluA).utilization;
        notify({ type: 'window', phase: 'end' });
        resolve();
      },
      Math.max(0, w.end - now()),
    ),
  );

  if (closed) {
    const c = job.concurrency ?? 1;
    for (let i = 0; i < c; i++) issue(conns[i % m]!, now());
  } else {
    const rate = job.ratePerSec ?? 1;
    const interval = 1000 / rate;
    let issued = 0;
    let rr = 0;
    const tick = (): void => {
      const t = now();
      if (t >= w.end || stopped) return;
      while (t0 + issued * interval <= t) {
        const due = t0 + issued * interval;
        issued++;
        if (inFlight >= job.maxInFlight) {
          if (due >= w.start && due < w.end) {
            w.dropped++;
            w.errors++;
            w.firstError ??= `dropped: ${job.maxInFlight} requests in flight`;
          }
          continue;
        }
        let c = conns[rr++ % m]!;
        for (let k = 0; c.closed && k < m; k++) c = conns[rr++ % m]!;
        issue(c, due);
      }
      setTimeout(tick, 1);
    };
    tick();
  }
  await endWindow;
  clearTimeout(startWindow);
  const deadline = now() + job.drainMs;
  while (inFlight > 0 && now() < deadline && conns.some((c) => !c.closed && c.outstanding > 0)) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const undrained = conns.reduce((s, c) => s + (c.closed ? 0 : c.outstanding), 0);
  for (const c of conns) c.close();
  const windowMs = Math.max(1, w.end - w.start);
  const r: LoadResult = {
    completed: w.completed,
    errors: w.errors,
    dropped: w.dropped,
    windowMs: Math.round(windowMs),
    throughputPerSec: (w.completed * 1000) / windowMs,
    sentPerSec: (w.sent * 1000) / windowMs,
    p50Ms: hist.count > 0 ? hist.percentile(50) / 1000 : Number.NaN,
    p90Ms: hist.count > 0 ? hist.percentile(90) / 1000 : Number.NaN,
    p99Ms: hist.count > 0 ? hist.percentile(99) / 1000 : Number.NaN,
    p999Ms: hist.count > 0 ? hist.percentile(99.9) / 1000 : Number.NaN,
    maxMs: hist.count > 0 ? hist.max / 1000 : Number.NaN,
    meanMs: hist.count > 0 ? hist.mean / 1000 : Number.NaN,
    undrained,
    statuses,
    clientCpuCores: Math.round(cpuCores * 100) / 100,
    clientEventLoopUtilization: Math.round(elu * 100) / 100,
    connections: m,
    inFlightMax,
    firstAnswerMs: firstAnswer === null ? null : Math.round(firstAnswer),
  };
  if (w.firstError !== undefined) r.firstError = w.firstError;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Parent side

const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A running client process; `run` one job at a time. */
export class LoadClient {
  private readonly child: ChildProcess;
  private exited: Promise<void>;

  private constructor(child: ChildProcess) {
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }

  static start(): LoadClient {
    const child = spawn(process.execPath, ['--conditions=statefn-source', '--import', 'tsx', SELF, '--child'], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new LoadClient(child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Run one job; `onWindow` is called at the window's start and end. */
  run(job: LoadJob, onWindow: (phase: 'start' | 'end') => void): Promise<LoadResult> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: ChildMsg): void => {
        if (m.type === 'window') onWindow(m.phase);
        else {
          this.child.off('message', onMessage);
          this.child.off('exit', onExit);
          if (m.type === 'result') resolve(m.result);
          else reject(new Error(`http load client: ${m.message}`));
        }
      };
      const onExit = (code: number | null): void => {
        this.child.off('message', onMessage);
        reject(new Error(`http load client exited (code ${String(code)})`));
      };
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(job);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.connected) this.child.send({ type: 'exit' });
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------
// Child side

if (process.argv.includes('--child') && process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const send = (m: ChildMsg): void => {
    process.send?.(m);
  };
  process.on('message', (m: LoadJob | { type: 'exit' }) => {
    if ('type' in m) {
      process.exit(0);
    }
    runJob(m, send).then(
      (result) => send({ type: 'result', result }),
      (e: unknown) => send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
