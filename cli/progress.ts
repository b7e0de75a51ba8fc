/**
 * Live progress of a running engine, for `statefn start`.
 *
 * The caller feeds cumulative counters (`update`) as often as it likes; the renderer keeps a short
 * window of them, computes rates from their differences over the snapshots' own uptime (so it
 * needs no clock for rates), and draws on a timer:
 *
 * - On a TTY, a status block at the bottom of the terminal, redrawn in place every `intervalMs`
 *   (default 1 s). `log(line)` erases the block, prints the line where the block was and redraws
 *   the block under it, so log lines scroll above a block that stays whole. Everything the
 *   renderer writes for one redraw goes out in a single `write`, so the terminal never shows a
 *   half-drawn block. Lines are cut to the terminal width, because a wrapped line would take two
 *   rows and the next erase would move up too few.
 * - Otherwise (a pipe, a file, a CI log), one plain `key=value` line every `intervalMs` (default
 *   5 s), with no escape codes:
 *   `2026-11-21T17:00:00Z statefn processed=12345 rate=2000/s ingested=... alerts=3 dead=0 checkpoint=#12 4ms`
 *
 * Nothing else may write to the same terminal while a TTY block is shown (it would be drawn over
 * on the next redraw); route such output through `log`.
 */
import { ErrorCode, StatefnError } from '../shared/errors.js';

/** Cumulative counters of a running engine at one moment. */
export interface ProgressSnapshot {
  /** Time since the engine started, ms. Rates are computed over this, not over wall time. */
  uptimeMs: number;
  /** Records accepted from ingresses, in total. */
  ingested: number;
  /** Handler invocations that committed, in total. */
  processed: number;
  /** Records written to egresses, in total. */
  egressed: number;
  /** Alerts raised, in total, for apps that have such a notion (shown only when present). */
  alerts?: number;
  /** Messages sent to the dead-letter egress, in total. */
  deadLetters: number;
  workers: number;
  /** True while ingresses are paused because the engine cannot keep up. */
  backPressured: boolean;
  /**
   * The last checkpoint: its epoch, when it finished (wall-clock ms since the Unix epoch, on the
   * same clock as `ProgressOptions.now`), how long it took and whether it succeeded.
   */
  lastCheckpoint?: { epoch: number; atMs: number; durationMs: number; ok: boolean };
  /** More values to show as `key: value` (TTY) or `key=value` (plain). */
  extra?: Record<string, string | number>;
}

export interface Progress {
  /** Record the latest counters; they are drawn on the next tick (a TTY draws the first at once). */
  update(snapshot: ProgressSnapshot): void;
  /** Print a line (above the status block on a TTY). */
  log(line: string): void;
  /** Draw the final state once, stop the timer, and leave the cursor below the output. Idempotent. */
  stop(): void;
}

/** What the renderer needs of a stream: `process.stdout`/`stderr`, or any `Writable` in tests. */
export interface ProgressStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  /** Terminal width in columns, when known. */
  readonly columns?: number;
}

export interface ProgressOptions {
  stream: ProgressStream;
  /** Redraw (TTY) or line (plain) interval; default 1000 ms on a TTY, 5000 ms otherwise. */
  intervalMs?: number;
  /** Override the stream's own `isTTY`. */
  isTTY?: boolean;
  /** Wall clock for the plain lines' timestamps and the checkpoint's age (tests inject one). */
  now?: () => number;
  /** Colours on a TTY; default on unless the `NO_COLOR` environment variable is set. */
  color?: boolean;
  /** Rates are averaged over at least this long; default max(intervalMs, 2000) ms. */
  rateWindowMs?: number;
}

const INTERVAL_MS_TTY_DEFAULT = 1000;
const INTERVAL_MS_PLAIN_DEFAULT = 5000;
const INTERVAL_MS_MIN = 10;
const INTERVAL_MS_MAX = 3_600_000;
/** Snapshots kept for rates, whatever the update frequency (oldest dropped first). */
const SAMPLES_MAX = 512;

const ESC = '\x1b[';
const RESET = `${ESC}0m`;
const RED = `${ESC}31m`;
const GREEN = `${ESC}32m`;
const YELLOW = `${ESC}33m`;
const DIM = `${ESC}2m`;

interface Sample {
  uptimeMs: number;
  ingested: number;
  processed: number;
  egressed: number;
}

interface Rates {
  ingested: number | undefined;
  processed: number | undefined;
  egressed: number | undefined;
}

const numberFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function grouped(n: number): string {
  return numberFormat.format(n);
}

function formatRate(r: number | undefined, group: boolean): string {
  if (r === undefined || !Number.isFinite(r)) return '-';
  if (r < 10) return (Math.round(r * 10) / 10).toString();
  const n = Math.round(r);
  return group ? grouped(n) : n.toString();
}

function pad2(n: number): string {
  return n.toString().padStart(2, '0');
}

/** `45s`, `1m 23s`, `2h 03m 04s`, `3d 02h 03m`. */
export function formatUptime(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(total / 86_400);
  const h = Math.floor((total % 86_400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (d > 0) return `${d}d ${pad2(h)}h ${pad2(m)}m`;
  if (h > 0) return `${h}h ${pad2(m)}m ${pad2(s)}s`;
  if (m > 0) return `${m}m ${pad2(s)}s`;
  return `${s}s`;
}

/** `0.4s`, `12s`, `3m 02s`: how long ago something happened. */
function formatAge(ms: number): string {
  const clamped = Math.max(0, ms);
  if (clamped < 10_000) return `${(Math.floor(clamped / 100) / 10).toFixed(1)}s`;
  return formatUptime(clamped);
}

function formatDuration(ms: number): string {
  if (ms < 10) return `${Math.round(ms * 10) / 10}ms`;
  if (ms < 10_000) return `${Math.round(ms)}ms`;
  return `${(ms / 1000).toFixed(1)}s`;
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A value for a plain `key=value` line: quoted when it would break the line's format. */
function plainValue(v: string | number): string {
  const s = String(v);
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

/** Cut `s` to `width` characters (the status lines are plain text, one character per column). */
function cut(s: string, width: number | undefined): string {
  if (width === undefined || s.length <= width) return s;
  return width > 1 ? `${s.slice(0, width - 1)}…` : s.slice(0, width);
}

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream;
  if (typeof stream?.write !== 'function') {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, 'createProgress: options.stream must be a writable stream (e.g. process.stderr)');
  }
  const tty = options.isTTY ?? stream.isTTY === true;
  const intervalMs = options.intervalMs ?? (tty ? INTERVAL_MS_TTY_DEFAULT : INTERVAL_MS_PLAIN_DEFAULT);
  if (!(Number.isFinite(intervalMs) && intervalMs >= INTERVAL_MS_MIN && intervalMs <= INTERVAL_MS_MAX)) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `createProgress: options.intervalMs: expected a number of ms in [${INTERVAL_MS_MIN}, ${INTERVAL_MS_MAX}], got ${String(intervalMs)}`,
    );
  }
  const rateWindowMs = options.rateWindowMs ?? Math.max(intervalMs, 2000);
  if (!(Number.isFinite(rateWindowMs) && rateWindowMs > 0)) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `createProgress: options.rateWindowMs: expected a number of ms > 0, got ${String(rateWindowMs)}`,
    );
  }
  const now = options.now ?? Date.now;
  const color = tty && (options.color ?? (process.env.NO_COLOR === undefined || process.env.NO_COLOR === ''));

  let latest: ProgressSnapshot | undefined;
  /** Oldest first; the first is the base of the rates (the newest sample at least a window old). */
  const samples: Sample[] = [];
  /** True when `latest` changed since the last plain line. */
  let fresh = false;
  /** Terminal rows the status block occupies right now (0 = not drawn). */
  let drawnRows = 0;
  let stopped = false;

  function addSample(s: ProgressSnapshot): void {
    const last = samples[samples.length - 1];
    // A restarted engine (or a caller that resets its counters) starts a new series: a rate
    // across the reset would be negative or meaningless.
    if (
      last !== undefined &&
      (s.uptimeMs < last.uptimeMs || s.processed < last.processed || s.ingested < last.ingested || s.egressed < last.egressed)
    ) {
      samples.length = 0;
    }
    samples.push({ uptimeMs: s.uptimeMs, ingested: s.ingested, processed: s.processed, egressed: s.egressed });
    // Drop samples older than the window, keeping the newest one that is at least a window old
    // as the base, so the rate covers a full window once there is one.
    while (samples.length > 2 && s.uptimeMs - samples[1]!.uptimeMs >= rateWindowMs) samples.shift();
    if (samples.length > SAMPLES_MAX) samples.shift();
  }

  function rates(): Rates {
    const base = samples[0];
    const head = samples[samples.length - 1];
    if (base === undefined || head === undefined || head.uptimeMs <= base.uptimeMs) {
      return { ingested: undefined, processed: undefined, egressed: undefined };
    }
    const perSec = 1000 / (head.uptimeMs - base.uptimeMs);
    return {
      ingested: (head.ingested - base.ingested) * perSec,
      processed: (head.processed - base.processed) * perSec,
      egressed: (head.egressed - base.egressed) * perSec,
    };
  }

  function paint(code: string, s: string): string {
    return color ? `${code}${s}${RESET}` : s;
  }

  /** The status block, one string per row, already cut to the terminal width. */
  function blockRows(s: ProgressSnapshot): string[] {
    const r = rates();
    // One column spare: some terminals wrap when a row fills the last column exactly.
    const width = stream.columns !== undefined && stream.columns >= 2 ? stream.columns - 1 : undefined;
    const rows: Array<{ text: string; code?: string }> = [];
    const state = s.backPressured ? 'BACK-PRESSURED (ingress paused)' : 'running';
    rows.push({
      text: `statefn  up ${formatUptime(s.uptimeMs)}  ${s.workers} worker${s.workers === 1 ? '' : 's'}  ${state}`,
      code: s.backPressured ? YELLOW : GREEN,
    });
    const counters: Array<[string, number | undefined, number]> = [
      ['ingested', r.ingested, s.ingested],
      ['processed', r.processed, s.processed],
      ['egressed', r.egressed, s.egressed],
    ];
    const rateTexts = counters.map(([, rate]) => `${formatRate(rate, true)}/s`);
    const totalTexts = counters.map(([, , total]) => grouped(total));
    const rateWidth = Math.max(...rateTexts.map((t) => t.length));
    const totalWidth = Math.max(...totalTexts.map((t) => t.length));
    counters.forEach(([label], i) => {
      let text = `  ${label.padEnd(10)} ${rateTexts[i]!.padStart(rateWidth)}   total ${totalTexts[i]!.padStart(totalWidth)}`;
      if (label === 'egressed' && s.alerts !== undefined) text += `   alerts ${grouped(s.alerts)}`;
      rows.push({ text });
    });
    rows.push(s.deadLetters > 0 ? { text: `  dead letters ${grouped(s.deadLetters)}`, code: RED } : { text: '  dead letters 0' });
    if (s.lastCheckpoint === undefined) {
      rows.push({ text: '  last checkpoint none yet', code: DIM });
    } else {
      const c = s.lastCheckpoint;
      const ago = formatAge(now() - c.atMs);
      const text = `  last checkpoint #${c.epoch}${c.ok ? '' : '  FAILED'}  ${ago} ago  took ${formatDuration(c.durationMs)}`;
      rows.push(c.ok ? { text } : { text, code: RED });
    }
    const extra = Object.entries(s.extra ?? {});
    if (extra.length > 0) rows.push({ text: `  ${extra.map(([k, v]) => `${k}: ${typeof v === 'number' ? grouped(v) : v}`).join('   ')}` });
    // Cut before colouring, so escape codes never count against the width nor get cut in half.
    return rows.map(({ text, code }) => {
      const t = cut(text, width);
      return code === undefined ? t : paint(code, t);
    });
  }

  function plainLine(s: ProgressSnapshot): string {
    const r = rates();
    const parts = [
      `${isoSeconds(now())} statefn`,
      `processed=${s.processed}`,
      `rate=${formatRate(r.processed, false)}/s`,
      `ingested=${s.ingested}`,
      `in_rate=${formatRate(r.ingested, false)}/s`,
      `egressed=${s.egressed}`,
    ];
    if (s.alerts !== undefined) parts.push(`alerts=${s.alerts}`);
    parts.push(`dead=${s.deadLetters}`, `workers=${s.workers}`, `up=${Math.floor(s.uptimeMs / 1000)}s`);
    if (s.backPressured) parts.push('backpressured=1');
    if (s.lastCheckpoint !== undefined) {
      const c = s.lastCheckpoint;
      parts.push(`checkpoint=#${c.epoch} ${formatDuration(c.durationMs)}${c.ok ? '' : ' FAILED'}`);
    }
    for (const [k, v] of Object.entries(s.extra ?? {})) parts.push(`${k}=${plainValue(v)}`);
    return `${parts.join(' ')}\n`;
  }

  /** Escape codes that move the cursor back to the block's first row and clear to the end. */
  function eraseBlock(): string {
    if (drawnRows === 0) return '';
    const out = `${ESC}${drawnRows}A\r${ESC}J`;
    drawnRows = 0;
    return out;
  }

  /** The block's rows, ending with a newline, so the cursor rests on the row below it. */
  function drawBlock(): string {
    if (latest === undefined) return '';
    const rows = blockRows(latest);
    drawnRows = rows.length;
    return `${rows.join('\n')}\n`;
  }

  function tick(): void {
    if (latest === undefined) return;
    if (tty) {
      stream.write(eraseBlock() + drawBlock());
    } else {
      stream.write(plainLine(latest));
      fresh = false;
    }
  }

  const timer = setInterval(tick, intervalMs);
  // Progress output alone must not keep a finished process alive.
  timer.unref?.();

  return {
    update(snapshot) {
      if (stopped) return;
      const first = latest === undefined;
      latest = snapshot;
      fresh = true;
      addSample(snapshot);
      // Show the block as soon as there is something to show; after that, on the timer.
      if (tty && first) stream.write(drawBlock());
    },

    log(line) {
      const text = line.endsWith('\n') ? line : `${line}\n`;
      if (tty && !stopped && drawnRows > 0) {
        stream.write(eraseBlock() + text + drawBlock());
      } else {
        stream.write(text);
      }
    },

    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (latest === undefined) return;
      if (tty) {
        // The final totals stay on screen; the cursor is already on the row below the block.
        stream.write(eraseBlock() + drawBlock());
        drawnRows = 0;
      } else if (fresh) {
        stream.write(plainLine(latest));
        fresh = false;
      }
    },
  };
}
