// The seeded bank crash test through the HTTP ingress: a client POSTs seeded transfers with
// Idempotency-Keys to `node bin/statefn.js start test/fixtures/apps/bank_app.ts`, retrying each
// until it is acknowledged, while the harness interrupts the engine at seeded moments (SIGKILL,
// SIGKILL 2-20 ms into a clean stop, clean stops, worker-thread deaths) and restarts it on the
// same state dir. Then it checks money conservation and that every acknowledged transfer was
// applied exactly once and nothing else. `npx tsx test/crash/bank_runner.ts` (test/crash/README.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startArgs } from './start_args.js';
import { Xoshiro128 } from '../../connectors/generator/rng.js';
import {
  ACCOUNT,
  AUDIT_EGRESS,
  CANCELLED_DELAY_MS_DEFAULT,
  FINAL_EGRESS,
  HTTP_INGRESS,
  TRANSFER,
  type AuditRecord,
  type BankAppParams,
  type FinalRecord,
} from '../fixtures/apps/bank_app.js';
import { checkBank, makeTransfers, type BankCheck, type BankTransfer, type TransferIssue } from './bank_model.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const APP_REL = join('test', 'fixtures', 'apps', 'bank_app.ts');

/** The interruptions the harness applies, one per seeded moment. */
export type InterruptionKind = 'kill' | 'stop-kill' | 'clean-stop' | 'worker-death';
export const INTERRUPTION_KINDS: readonly InterruptionKind[] = ['kill', 'stop-kill', 'clean-stop', 'worker-death'];
/** How an engine incarnation (one HTTP ingress listening) ended. */
type EndKind = InterruptionKind | 'final' | 'failed';

export interface BankOptions {
  seed: number;
  /** Accounts (function instances). Default 50. */
  accounts?: number;
  /** Transfers the client sends. Default 1,500. */
  transfers?: number;
  /** Interruptions while the client sends. Default and minimum 10. */
  interruptions?: number;
  /** Kinds of interruption, spread evenly and shuffled by the seed. Default all four. */
  kinds?: readonly InterruptionKind[];
  /** Worker threads. Default 2. */
  workers?: number;
  /** Requests the client has in flight at most. Default 16. */
  concurrency?: number;
  /** Wait before each interruption, uniform in [interruptMinMs, interruptMaxMs]. Defaults 300 and 3,000 ms. */
  interruptMinMs?: number;
  interruptMaxMs?: number;
  /** Delay of the credits that are cancelled (see bank_app.ts). Default 8,000 ms. */
  cancelledDelayMs?: number;
  /** Checkout whose `bin/statefn.js` runs; default this repository (env BANK_ENGINE_ROOT). */
  engineRoot?: string;
  /** Keep the state directory even when the run passes. */
  keep?: boolean;
  /** Progress lines; default: stderr. */
  log?: (line: string) => void;
}

export interface HttpStats {
  attempts: number;
  accepted: number;
  duplicate: number;
  unavailable: number;
  connectionErrors: number;
  timeouts: number;
  /** Other statuses: status -> count. */
  other: Record<string, number>;
}

export interface BankResult {
  ok: boolean;
  seed: number;
  check: BankCheck | undefined;
  http: HttpStats;
  /** Transfer issues by the interruption kind they are attributed to (see README). */
  issuesByKind: Record<string, number>;
  /** Interruptions applied, by kind. */
  interruptionsByKind: Record<string, number>;
  acknowledged: number;
  report: string;
  stateDir: string;
}

/** A guard against a hung child or client, not an assertion on timing. */
const HANG_GUARD_MS = 120_000;
/** Longest wait for an incarnation's first acknowledgement before its interruption's seeded wait starts. */
const BUSY_WAIT_MAX_MS = 30_000;
/** Added to the longest downtime when deciding whether a cancelled credit may have been due before its cancel. */
const CANCEL_RACE_MARGIN_MS = 3000;
/** Per-request timeout of the client; the request is retried after it. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Client retry delay after a 503 or a connection error: uniform in [min, max]. */
const RETRY_MIN_MS = 20;
const RETRY_MAX_MS = 200;
/** Attempts kept per transfer for the report (all are counted). */
const ATTEMPTS_KEPT_MAX = 20;

function engineRoot(root: string | undefined): { root: string; bin: string; app: string } {
  const r = resolve(root ?? repo);
  if (r !== resolve(repo)) {
    mkdirSync(join(r, 'test', 'fixtures', 'apps'), { recursive: true });
    copyFileSync(join(repo, APP_REL), join(r, APP_REL));
  }
  return { root: r, bin: join(r, 'bin', 'statefn.js'), app: join(r, APP_REL) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves when `pred` holds (polled) or after `timeoutMs`. */
async function pollUntil(pred: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred() && Date.now() < end) await sleep(20);
}

// ---- one engine process ----

interface Incarnation {
  n: number;
  proc: number;
  port: number;
  endKind?: EndKind;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stopped: { processed: number; ingested: number } | undefined;
}

/** `node bin/statefn.js start bank_app.ts ...` with its log parsed as it comes. */
class EngineProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  stderr = '';
  /** "running with" plus "running again with" lines so far. */
  runs = 0;
  /** When the last "running ..." line arrived. */
  lastRunAt = 0;
  exit: Exit | undefined;
  private partial = '';
  private readonly waiters = new Set<() => void>();

  constructor(
    eng: { root: string; bin: string; app: string },
    readonly proc: number,
    stateDir: string,
    params: BankAppParams,
    workers: number,
    stopAfter: string | undefined,
    onListening: (port: number) => void,
  ) {
    const args = startArgs(eng.bin, eng.app, params, stateDir, workers, stopAfter);
    this.child = spawn(process.execPath, args, {
      cwd: eng.root,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, STATEFN_FAULT_INJECTION: '1' },
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      this.stderr += text;
      const lines = (this.partial + text).split('\n');
      this.partial = lines.pop()!;
      for (const l of lines) {
        const m = /http ingress '([^']+)' listening (\{.*\})/.exec(l);
        if (m && m[1] === HTTP_INGRESS) onListening((JSON.parse(m[2]!) as { port: number }).port);
        if (/ INFO running (again )?with /.test(l)) {
          this.runs++;
          this.lastRunAt = Date.now();
        }
      }
      this.wake();
    });
    this.exited = new Promise((res) => {
      this.child.on('exit', (code, signal) => {
        const m = /stopped cleanly (\{.*\})/.exec(this.stderr);
        this.exit = { code, signal, stopped: m ? (JSON.parse(m[1]!) as Exit['stopped']) : undefined };
        this.wake();
        res(this.exit);
      });
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves true once `pred` holds, false when the process exited or `timeoutMs` passed first. */
  until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((res) => {
      const check = (): void => {
        if (pred()) finish(true);
        else if (this.exit !== undefined) finish(false);
      };
      const finish = (v: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        res(v);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exit === undefined) this.child.kill(signal);
  }

  /** Wait for the exit; SIGKILL after the hang guard (reported by the caller as a hang). */
  async exitWithin(ms: number): Promise<{ exit: Exit; hung: boolean }> {
    let hung = false;
    const t = setTimeout(() => {
      hung = true;
      this.child.kill('SIGKILL');
    }, ms);
    const exit = await this.exited;
    clearTimeout(t);
    return { exit, hung };
  }
}

// ---- the client ----

interface TransferState {
  acknowledged: boolean;
  /** Incarnation of the first acknowledgement. */
  ackInc: number | undefined;
  /** Reply of the first acknowledgement: accepted or duplicate. */
  ackStatus: string | undefined;
  attemptsCount: number;
  attempts: { inc: number; outcome: string }[];
  /** A 4xx: the client gives up on it. */
  rejected: string | undefined;
}

/** Sends every transfer until acknowledged, `concurrency` at a time, paced while an engine is up. */
class BankClient {
  target: Incarnation | undefined;
  /** Transfers started per second of engine uptime; Infinity = unpaced. */
  ratePerSec: number;
  readonly states: TransferState[];
  readonly http: HttpStats = { attempts: 0, accepted: 0, duplicate: 0, unavailable: 0, connectionErrors: 0, timeouts: 0, other: {} };
  lastAckAt = 0;
  /** Acknowledgements per incarnation. */
  readonly acksByInc = new Map<number, number>();
  private next = 0;
  private started = 0;
  private uptimeMs = 0;
  private readonly ticker: NodeJS.Timeout;
  private readonly abort = new AbortController();
  readonly done: Promise<void>;

  constructor(
    private readonly transfers: readonly BankTransfer[],
    concurrency: number,
    ratePerSec: number,
  ) {
    this.ratePerSec = ratePerSec;
    this.states = transfers.map(() => ({
      acknowledged: false,
      ackInc: undefined,
      ackStatus: undefined,
      attemptsCount: 0,
      attempts: [],
      rejected: undefined,
    }));
    let last = Date.now();
    this.ticker = setInterval(() => {
      const now = Date.now();
      if (this.target !== undefined) this.uptimeMs += now - last;
      last = now;
    }, 10);
    this.done = Promise.all(Array.from({ length: concurrency }, () => this.loop())).then(() => clearInterval(this.ticker));
  }

  get acknowledged(): number {
    return this.states.filter((s) => s.acknowledged).length;
  }

  /** True when every transfer was started and none is waiting any more. */
  get finished(): boolean {
    return this.states.every((s) => s.acknowledged || s.rejected !== undefined);
  }

  get sent(): number {
    return this.next;
  }

  stop(): void {
    this.abort.abort();
  }

  private async loop(): Promise<void> {
    while (!this.abort.signal.aborted && this.next < this.transfers.length) {
      const i = this.next++;
      // Pacing: transfer number `started` may start once the engine was up long enough.
      while (!this.abort.signal.aborted && this.started >= (this.ratePerSec * this.uptimeMs) / 1000) await sleep(10);
      this.started++;
      await this.untilAcknowledged(i);
    }
  }

  private async untilAcknowledged(i: number): Promise<void> {
    const t = this.transfers[i]!;
    const st = this.states[i]!;
    const { from, ...body } = t;
    const text = JSON.stringify(body);
    while (!this.abort.signal.aborted) {
      const inc = this.target;
      if (inc === undefined) {
        await sleep(10);
        continue;
      }
      this.http.attempts++;
      st.attemptsCount++;
      const outcome = await this.attempt(inc.port, from, t.id, text);
      if (st.attempts.length < ATTEMPTS_KEPT_MAX) st.attempts.push({ inc: inc.n, outcome });
      if (outcome === 'accepted' || outcome === 'duplicate') {
        st.acknowledged = true;
        st.ackInc = inc.n;
        st.ackStatus = outcome;
        this.lastAckAt = Date.now();
        this.acksByInc.set(inc.n, (this.acksByInc.get(inc.n) ?? 0) + 1);
        return;
      }
      // A 4xx is final for the request (408 and 429 excepted: retry them like a 503).
      if (/^4\d\d/.test(outcome) && !/^(408|429) /.test(outcome)) {
        st.rejected = outcome;
        return;
      }
      await sleep(RETRY_MIN_MS + Math.random() * (RETRY_MAX_MS - RETRY_MIN_MS));
    }
  }

  /** One POST; its outcome: accepted, duplicate, 503, connection, timeout, or `<status> <body>`. */
  private async attempt(port: number, from: string, key: string, body: string): Promise<string> {
    const [ns, type] = ACCOUNT.split('/') as [string, string];
    try {
      const res = await fetch(`http://127.0.0.1:${port}/${ns}/${type}/${encodeURIComponent(from)}`, {
        method: 'POST',
        headers: { 'Content-Type': `application/vnd.${TRANSFER.typename}`, 'Idempotency-Key': key },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), this.abort.signal]),
      });
      const reply = await res.text();
      if (res.status === 202) {
        const status = (JSON.parse(reply) as { status?: string }).status;
        if (status === 'accepted') this.http.accepted++;
        else if (status === 'duplicate') this.http.duplicate++;
        return status === 'duplicate' ? 'duplicate' : 'accepted';
      }
      if (res.status === 503) {
        this.http.unavailable++;
        return '503';
      }
      this.http.other[String(res.status)] = (this.http.other[String(res.status)] ?? 0) + 1;
      return `${res.status} ${reply.slice(0, 200)}`;
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        this.http.timeouts++;
        return 'timeout';
      }
      this.http.connectionErrors++;
      return 'connection';
    }
  }
}

// ---- reading the outputs ----

function readJsonLines<T>(path: string, egress: string): T[] {
  if (!existsSync(path)) return [];
  const out: T[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((l, i) => {
    if (l.length === 0) return;
    let rec: { egress?: string; value?: T };
    try {
      rec = JSON.parse(l) as typeof rec;
    } catch {
      throw new Error(`${path}:${i + 1}: not a JSON line (a torn write?): ${l.slice(0, 200)}`);
    }
    if (rec.egress !== egress) throw new Error(`${path}:${i + 1}: a record of egress '${rec.egress}', expected '${egress}'`);
    out.push(rec.value as T);
  });
  return out;
}

function countLines(path: string): number {
  if (!existsSync(path)) return 0;
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0).length;
}

/** Kinds for `n` interruptions: `kinds` in turn, then shuffled by `rng`. */
function interruptionSchedule(n: number, kinds: readonly InterruptionKind[], rng: Xoshiro128): InterruptionKind[] {
  const out = Array.from({ length: n }, (_, k) => kinds[k % kinds.length]!);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export async function runBankTest(o: BankOptions): Promise<BankResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(`[bank] ${l}\n`));
  const seed = o.seed;
  const accounts = o.accounts ?? 50;
  const count = o.transfers ?? 1500;
  const interruptions = Math.max(10, o.interruptions ?? 10);
  const kinds = o.kinds ?? INTERRUPTION_KINDS;
  const workers = o.workers ?? 2;
  const concurrency = o.concurrency ?? 16;
  const minMs = o.interruptMinMs ?? 300;
  const maxMs = Math.max(minMs + 1, o.interruptMaxMs ?? 3000);
  const cancelledDelayMs = o.cancelledDelayMs ?? CANCELLED_DELAY_MS_DEFAULT;
  const rerun =
    `BANK_SEED=${seed} BANK_ACCOUNTS=${accounts} BANK_TRANSFERS=${count} BANK_INTERRUPTIONS=${interruptions} ` +
    `BANK_KINDS=${kinds.join(',')} BANK_WORKERS=${workers} BANK_CONCURRENCY=${concurrency} ` +
    `BANK_INTERRUPT_MIN_MS=${minMs} BANK_INTERRUPT_MAX_MS=${maxMs} BANK_CANCELLED_DELAY_MS=${cancelledDelayMs} ` +
    'npx tsx test/crash/bank_runner.ts';
  const eng = engineRoot(o.engineRoot ?? (process.env.BANK_ENGINE_ROOT || undefined));
  const stateDir = mkdtempSync(join(tmpdir(), `statefn-bank-${seed}-`));
  const auditPath = join(stateDir, 'audit.jsonl');
  const finalPath = join(stateDir, 'final.jsonl');
  const params: BankAppParams = { auditPath, finalPath, accounts, cancelledDelayMs };
  const transfers = makeTransfers(seed, count, accounts);
  // Spread the transfers over the interruption phase's engine uptime (mean wait per interruption).
  const ratePerSec = Math.max(1, count / ((interruptions * ((minMs + maxMs) / 2) * 0.8) / 1000));
  log(
    `seed=${seed} accounts=${accounts} transfers=${count} interruptions=${interruptions} kinds=${kinds.join(',')} ` +
      `workers=${workers} concurrency=${concurrency} rate=${ratePerSec.toFixed(0)}/s of uptime stateDir=${stateDir} engine=${eng.root}`,
  );

  const logs: string[] = [];
  const problems: string[] = [];
  const incarnations: Incarnation[] = [];
  const client = new BankClient(transfers, concurrency, ratePerSec);
  let procN = 0;
  let maxDowntimeMs = 0;
  const interruptionsByKind: Record<string, number> = {};

  const startEngine = (p: BankAppParams, stopAfter?: string, withClient = true): EngineProcess => {
    const proc = procN++;
    const e: EngineProcess = new EngineProcess(eng, proc, stateDir, p, workers, stopAfter, (port) => {
      // Incarnations are those the client talks to (not the drain and verify runs).
      if (!withClient) return;
      const prev = incarnations.at(-1);
      if (prev !== undefined && prev.proc === proc && prev.endKind === undefined) prev.endKind = 'failed';
      const inc: Incarnation = { n: incarnations.length, proc, port };
      incarnations.push(inc);
      client.target = inc;
    });
    void e.exited.then(() => {
      if (client.target?.proc === proc) client.target = undefined;
      const last = incarnations.at(-1);
      if (last !== undefined && last.proc === proc && last.endKind === undefined) last.endKind = 'failed';
    });
    return e;
  };
  const record = (what: string, e: EngineProcess): void => {
    logs.push(`===== ${what} (process ${e.proc}): code=${e.exit?.code} signal=${e.exit?.signal}\n${e.stderr}`);
  };
  const markEnd = (e: EngineProcess, kind: EndKind): void => {
    const last = incarnations.at(-1);
    if (last !== undefined && last.proc === e.proc && last.endKind === undefined) last.endKind = kind;
  };

  // 1. Interruptions at seeded moments while the client sends.
  const schedule = new Xoshiro128(seed, 0x7fffffff);
  const plan = interruptionSchedule(interruptions, kinds, schedule);
  let k = 0;
  let downSince: number | undefined;
  // A process still running after the last interruption (a worker death) goes on as the final run.
  let running: EngineProcess | undefined;
  while (k < interruptions && problems.length === 0) {
    const e = startEngine(params);
    if (!(await e.until(() => e.runs >= 1, HANG_GUARD_MS))) {
      e.kill('SIGKILL');
      await e.exited;
      record('start failed', e);
      problems.push(`engine process ${e.proc} never reached "running with" (code=${e.exit?.code}):\n${e.stderr.slice(-2000)}`);
      break;
    }
    if (downSince !== undefined) maxDowntimeMs = Math.max(maxDowntimeMs, e.lastRunAt - downSince);
    let ended = false;
    while (!ended && k < interruptions) {
      const wait = minMs + schedule.int(maxMs - minMs);
      const kind = plan[k]!;
      const stopKillMs = 2 + schedule.int(19);
      // The seeded wait starts once this incarnation acknowledged a transfer, so that the
      // interruption hits an engine at work however slow its start was on this machine.
      const inc = incarnations.at(-1)!;
      await pollUntil(() => (client.acksByInc.get(inc.n) ?? 0) > 0 || client.finished || e.exit !== undefined, BUSY_WAIT_MAX_MS);
      await e.until(() => false, wait);
      if (e.exit !== undefined) {
        problems.push(
          `engine process ${e.proc} exited by itself (code=${e.exit.code}, signal=${e.exit.signal}):\n${e.stderr.slice(-2000)}`,
        );
        ended = true;
        break;
      }
      k++;
      interruptionsByKind[kind] = (interruptionsByKind[kind] ?? 0) + 1;
      markEnd(e, kind);
      downSince = Date.now();
      let what = '';
      if (kind === 'worker-death') {
        const runs = e.runs;
        e.kill('SIGUSR2');
        if (!(await e.until(() => e.runs > runs, HANG_GUARD_MS))) {
          problems.push(`after a worker death, engine process ${e.proc} never logged "running again with":\n${e.stderr.slice(-2000)}`);
          e.kill('SIGKILL');
          ended = true;
        } else maxDowntimeMs = Math.max(maxDowntimeMs, e.lastRunAt - downSince);
        what = 'one worker thread killed, restored in-process';
      } else {
        ended = true;
        if (kind === 'kill') e.kill('SIGKILL');
        else {
          e.kill('SIGINT');
          if (kind === 'stop-kill') {
            await sleep(stopKillMs);
            e.kill('SIGKILL');
          }
        }
        const { exit, hung } = await e.exitWithin(HANG_GUARD_MS);
        if (hung) problems.push(`engine process ${e.proc} did not exit within ${HANG_GUARD_MS} ms after ${kind} (killed)`);
        if (kind === 'clean-stop' && (exit.code !== 0 || exit.stopped === undefined))
          problems.push(`clean stop ${k} failed (code=${exit.code}, signal=${exit.signal}):\n${e.stderr.slice(-2000)}`);
        what =
          kind === 'stop-kill'
            ? `SIGINT then SIGKILL ${stopKillMs} ms later -> ${exit.stopped ? 'had stopped cleanly' : `signal=${exit.signal}`}`
            : `${kind === 'kill' ? 'SIGKILL' : 'SIGINT'} -> code=${exit.code} signal=${exit.signal}`;
      }
      log(
        `interruption ${k}/${interruptions} (${kind}) ${wait} ms in: ${what}; ` +
          `transfers sent ${client.sent}/${count}, acknowledged ${client.acknowledged}`,
      );
    }
    if (e.exit === undefined && problems.length > 0) e.kill('SIGKILL');
    if (e.exit === undefined && problems.length === 0) {
      running = e;
      break;
    }
    await e.exited;
    record(`interruption run, process ${e.proc}`, e);
  }

  // 2. The final run: unpaced until every transfer is acknowledged, then long enough that every
  // cancelled credit would have been due, then a clean stop.
  if (problems.length === 0) {
    client.ratePerSec = Infinity;
    const e = running ?? startEngine(params);
    const finalStart = Date.now();
    if (!(await e.until(() => e.runs >= 1, HANG_GUARD_MS))) problems.push(`the final engine never started:\n${e.stderr.slice(-2000)}`);
    else {
      if (downSince !== undefined) maxDowntimeMs = Math.max(maxDowntimeMs, e.lastRunAt - downSince);
      let guard: NodeJS.Timeout | undefined;
      const allAcked = await Promise.race([
        client.done.then(() => true),
        new Promise<boolean>((r) => (guard = setTimeout(() => r(false), HANG_GUARD_MS * 2))),
      ]);
      clearTimeout(guard);
      if (!allAcked) problems.push(`the client did not finish within ${HANG_GUARD_MS * 2} ms of the final run`);
      const settle = cancelledDelayMs + 2000 - (Date.now() - Math.max(finalStart, client.lastAckAt));
      log(`final run: ${client.acknowledged}/${count} acknowledged; waiting ${Math.max(0, settle)} ms for every timer to be due`);
      if (settle > 0) await e.until(() => false, settle);
      markEnd(e, 'final');
      e.kill('SIGINT');
      const { exit, hung } = await e.exitWithin(HANG_GUARD_MS);
      if (hung || exit.code !== 0 || exit.stopped === undefined)
        problems.push(`the final run did not stop cleanly (code=${exit.code}, signal=${exit.signal}):\n${e.stderr.slice(-2000)}`);
    }
    record('final run', e);
  }
  client.stop();
  await client.done;

  // 3. Drain: clean 1 s runs until one processes nothing (everything due has run).
  let quiescent = false;
  for (let d = 0; problems.length === 0 && d < 10; d++) {
    const e = startEngine(params, '1s', false);
    await e.exitWithin(HANG_GUARD_MS);
    record(`drain ${d + 1}`, e);
    const s = e.exit?.stopped;
    if (e.exit?.code !== 0 || s === undefined) {
      problems.push(`drain run ${d + 1} did not stop cleanly (code=${e.exit?.code}):\n${e.stderr.slice(-2000)}`);
      break;
    }
    log(`drain ${d + 1}: processed ${s.processed}`);
    if (s.processed === 0 && s.ingested === 0) {
      quiescent = true;
      break;
    }
  }
  if (problems.length === 0 && !quiescent) problems.push('the engine never became quiescent in 10 drain runs');

  // 4. The final read: one bank/Verify per account, in clean runs that must process nothing else.
  if (problems.length === 0) {
    let ingested = 0;
    let processed = 0;
    for (let v = 0; v < 5 && ingested < accounts; v++) {
      const e = startEngine({ ...params, verify: true }, '2s', false);
      await e.exitWithin(HANG_GUARD_MS);
      record(`verify ${v + 1}`, e);
      const s = e.exit?.stopped;
      if (e.exit?.code !== 0 || s === undefined) {
        problems.push(`verify run ${v + 1} did not stop cleanly (code=${e.exit?.code}):\n${e.stderr.slice(-2000)}`);
        break;
      }
      ingested += s.ingested;
      processed += s.processed;
    }
    if (problems.length === 0 && (ingested !== accounts || processed !== accounts))
      problems.push(`the verify runs ingested ${ingested} and processed ${processed} messages, expected ${accounts} each (not quiescent?)`);
  }

  // 5. The check.
  let check: BankCheck | undefined;
  const issuesByKind: Record<string, number> = {};
  const details: string[] = [];
  const incKind = (n: number | undefined): string => (n === undefined ? '?' : (incarnations[n]?.endKind ?? 'running'));
  const history = (i: number): string => {
    const st = client.states[i]!;
    const shown = st.attempts.map((a) => `#${a.inc}(${incKind(a.inc)}):${a.outcome.split(' ')[0]}`).join(' ');
    return `attempts ${st.attemptsCount}: ${shown}${st.attemptsCount > st.attempts.length ? ' ...' : ''}`;
  };
  const attribute = (t: TransferIssue, i: number): string => {
    const st = client.states[i]!;
    // A loss is charged to the incarnation that acknowledged it; anything else to the first
    // incarnation that got the request (its effect was applied there, then again or in part).
    return t.kind === 'lost' ? incKind(st.ackInc) : incKind(st.attempts[0]?.inc);
  };
  const unacknowledged = client.states.filter((s) => !s.acknowledged).length;
  // A cancelled credit and its cancel are restored together; when an engine was down longer than
  // the credit's delay (plus up to a checkpoint interval before the interruption), both are due at
  // the restart and either may run first: the cancelled credit may then legitimately be applied.
  const cancelledMayRun = maxDowntimeMs + CANCEL_RACE_MARGIN_MS >= cancelledDelayMs;
  if (problems.length === 0) {
    const finals = readJsonLines<FinalRecord>(finalPath, FINAL_EGRESS);
    const audit = readJsonLines<AuditRecord>(auditPath, AUDIT_EGRESS);
    check = checkBank(transfers, client.states, accounts, finals, audit, cancelledMayRun);
    const index = new Map(transfers.map((t, i) => [t.id, i] as const));
    for (const t of check.transferIssues) {
      const i = index.get(t.id)!;
      // A duplicate of what a throwing handler mutated is not about interruptions.
      const key = t.kind === 'duplicate-after-throw' ? t.kind : `${t.kind}/${attribute(t, i)}`;
      issuesByKind[key] = (issuesByKind[key] ?? 0) + 1;
      if (details.length < 12) {
        const tr = transfers[i]!;
        details.push(`  ${t.id} ${tr.from}->${tr.to} ${tr.amount} credit=${tr.credit} failFirst=${tr.failFirst}: ${t.what}; ${history(i)}`);
      }
    }
    for (const a of check.accountIssues.slice(0, 10)) details.push(`  account ${a.account}: ${a.what}`);
    const c = check;
    if (c.moneyDelta !== 0)
      problems.push(`money not conserved: the balances add up to ${c.moneyDelta > 0 ? '+' : ''}${c.moneyDelta} vs the initial total`);
    if (c.lost > 0) problems.push(`${c.lost} acknowledged transfers not applied (or in part)`);
    if (c.duplicated > 0) problems.push(`${c.duplicated} transfers applied more than once`);
    if (c.cancelledRan > 0) problems.push(`${c.cancelledRan} cancelled credits applied`);
    if (c.partial > 0) problems.push(`${c.partial} unacknowledged transfers applied in part`);
    if (c.unexpectedEntries > 0) problems.push(`${c.unexpectedEntries} entries of unknown transfers or at the wrong account`);
    if (c.accountsMissing + c.accountsWrong > 0)
      problems.push(`${c.accountsWrong} balances differ from the model, ${c.accountsMissing} accounts missing`);
    if (c.accountsInconsistent > 0) problems.push(`${c.accountsInconsistent} accounts whose balance disagrees with their own applied list`);
    if (c.auditDuplicates + c.auditLosses + c.auditUnexpected > 0)
      problems.push(`audit trail: ${c.auditDuplicates} duplicate, ${c.auditLosses} lost, ${c.auditUnexpected} unexpected lines`);
    if (unacknowledged > 0) problems.push(`${unacknowledged} transfers never acknowledged (the client retried until the end)`);
    const deadLetters = countLines(join(stateDir, 'dead-letters.jsonl'));
    if (deadLetters > 0) problems.push(`${deadLetters} dead letters (${join(stateDir, 'dead-letters.jsonl')})`);
  }
  const rejected = client.states.filter((s) => s.rejected !== undefined);
  if (rejected.length > 0) problems.push(`${rejected.length} transfers rejected with a 4xx, e.g. ${rejected[0]!.rejected}`);

  const ok = problems.length === 0;
  const h = client.http;
  const httpLine =
    `http: ${h.attempts} attempts, 202 accepted ${h.accepted}, 202 duplicate ${h.duplicate}, 503 ${h.unavailable}, ` +
    `connection errors ${h.connectionErrors}, timeouts ${h.timeouts}${Object.keys(h.other).length > 0 ? `, other ${JSON.stringify(h.other)}` : ''}`;
  const kindsLine =
    `interruptions ${JSON.stringify(interruptionsByKind)}, ${incarnations.length} incarnations, longest downtime ${maxDowntimeMs} ms` +
    (cancelledMayRun
      ? ` (>= the cancelled credits' ${cancelledDelayMs} ms delay minus ${CANCEL_RACE_MARGIN_MS} ms: cancellation checked loosely, ` +
        `${check?.cancelledRanTolerated ?? 0} cancelled credits ran and were tolerated; raise BANK_CANCELLED_DELAY_MS for a strict check)`
      : '');
  let report: string;
  if (ok) {
    report = `PASS seed=${seed}: ${count} transfers over ${accounts} accounts, each acknowledged and applied exactly once, money conserved; ${kindsLine}; ${httpLine}`;
    if (!o.keep) rmSync(stateDir, { recursive: true, force: true });
  } else {
    writeFileSync(join(stateDir, 'runs.log'), logs.join('\n'));
    report = [
      `FAIL seed=${seed}`,
      ...problems.map((p) => `- ${p}`),
      ...(Object.keys(issuesByKind).length > 0
        ? [`transfer issues by <issue>/<interruption that ended the incarnation>: ${JSON.stringify(issuesByKind)}`]
        : []),
      ...(details.length > 0 ? ['first differences:', ...details] : []),
      kindsLine,
      httpLine,
      `state dir and every run's log (runs.log) kept in ${stateDir}`,
      `rerun: ${rerun}`,
    ].join('\n');
  }
  log(report);
  return { ok, seed, check, http: client.http, issuesByKind, interruptionsByKind, acknowledged: client.acknowledged, report, stateDir };
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`${name}: expected an integer, got '${v}'`);
  return n;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const seed = envInt('BANK_SEED') ?? Math.floor(Math.random() * 2 ** 31);
  const o: BankOptions = { seed, keep: process.env.BANK_KEEP === '1' };
  const kinds = process.env.BANK_KINDS;
  if (kinds) {
    const list = kinds.split(',');
    for (const k of list)
      if (!INTERRUPTION_KINDS.includes(k as InterruptionKind))
        throw new Error(`BANK_KINDS: '${k}' is not one of ${INTERRUPTION_KINDS.join(', ')}`);
    o.kinds = list as InterruptionKind[];
  }
  const set = <K extends keyof BankOptions>(key: K, env: string): void => {
    const v = envInt(env);
    if (v !== undefined) (o as unknown as Record<string, unknown>)[key] = v;
  };
  set('accounts', 'BANK_ACCOUNTS');
  set('transfers', 'BANK_TRANSFERS');
  set('interruptions', 'BANK_INTERRUPTIONS');
  set('workers', 'BANK_WORKERS');
  set('concurrency', 'BANK_CONCURRENCY');
  set('interruptMinMs', 'BANK_INTERRUPT_MIN_MS');
  set('interruptMaxMs', 'BANK_INTERRUPT_MAX_MS');
  set('cancelledDelayMs', 'BANK_CANCELLED_DELAY_MS');
  const r = await runBankTest(o);
  process.exitCode = r.ok ? 0 : 1;
}
