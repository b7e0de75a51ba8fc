// Proves the progress renderer computes rates from cumulative counters, redraws one intact status block on a TTY with log lines above it, and prints one plain escape-free line per interval otherwise.
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createProgress, formatUptime, type ProgressSnapshot } from '../../cli/progress.js';

/** A Writable that collects what is written, optionally posing as a terminal of some width. */
class FakeStream extends Writable {
  chunks: string[] = [];
  isTTY: boolean;
  columns: number | undefined;
  constructor(opts: { isTTY?: boolean; columns?: number } = {}) {
    super();
    this.isTTY = opts.isTTY ?? false;
    this.columns = opts.columns;
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk.toString());
    cb();
  }
  get text(): string {
    return this.chunks.join('');
  }
}

/**
 * The screen a terminal would show for `output`: interprets the escape codes the renderer uses
 * (cursor up `ESC[nA`, erase to end of screen `ESC[J`, colours `ESC[...m`), `\r` and `\n`.
 * Throws on anything else, so the renderer cannot sneak in codes the test does not model.
 */
function screen(output: string): string[] {
  const rows: string[] = [''];
  let row = 0;
  let col = 0;
  for (let i = 0; i < output.length; i++) {
    const ch = output[i]!;
    if (ch === '\x1b') {
      // eslint-disable-next-line no-control-regex -- parsing the ANSI escapes the display writes is the point
      const m = /^\x1b\[(\d*(?:;\d+)*)([A-Za-z])/.exec(output.slice(i));
      if (!m) throw new Error(`bad escape at ${i}: ${JSON.stringify(output.slice(i, i + 8))}`);
      const [all, arg, cmd] = m;
      if (cmd === 'A') {
        row = Math.max(0, row - Number(arg || '1'));
      } else if (cmd === 'J') {
        rows[row] = rows[row]!.slice(0, col);
        rows.length = row + 1;
      } else if (cmd !== 'm') {
        throw new Error(`unexpected escape ${JSON.stringify(all)}`);
      }
      i += all.length - 1;
    } else if (ch === '\n') {
      row++;
      col = 0;
      if (rows.length <= row) rows.push('');
    } else if (ch === '\r') {
      col = 0;
    } else {
      const line = rows[row]!.padEnd(col);
      rows[row] = line.slice(0, col) + ch + line.slice(col + 1);
      col++;
    }
  }
  if (rows[rows.length - 1] === '') rows.pop();
  return rows;
}

function snap(over: Partial<ProgressSnapshot> = {}): ProgressSnapshot {
  return { uptimeMs: 0, ingested: 0, processed: 0, egressed: 0, deadLetters: 0, workers: 2, backPressured: false, ...over };
}

const T0 = Date.UTC(2026, 10, 21, 17, 0, 0);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('progress on a TTY', () => {
  function tty(columns = 120) {
    const stream = new FakeStream({ isTTY: true, columns });
    let now = T0;
    const progress = createProgress({ stream, color: true, now: () => now });
    return {
      stream,
      progress,
      advance: (ms: number) => {
        now += ms;
        vi.advanceTimersByTime(ms);
      },
    };
  }

  it('draws the block at the first update, then redraws it in place with rates, totals and checkpoint age', () => {
    const { stream, progress, advance } = tty();
    progress.update(snap({ uptimeMs: 1000, ingested: 1000, processed: 3000, egressed: 10, alerts: 1 }));
    const first = screen(stream.text);
    expect(first[0]).toMatch(/^statefn {2}up 1s {2}2 workers {2}running$/);
    expect(first.join('\n')).toMatch(/ingested +- *\/s +total 1,000/);

    advance(500);
    progress.update(
      snap({
        uptimeMs: 2000,
        ingested: 3000,
        processed: 9000,
        egressed: 30,
        alerts: 4,
        lastCheckpoint: { epoch: 12, atMs: T0 + 200, durationMs: 4, ok: true },
      }),
    );
    advance(500); // the 1 s tick
    const shown = screen(stream.text);
    // One block on screen, not one per redraw.
    expect(shown.filter((r) => r.startsWith('statefn ')).length).toBe(1);
    expect(shown[0]).toBe('statefn  up 2s  2 workers  running');
    expect(shown[1]).toMatch(/^ {2}ingested +2,000\/s +total 3,000$/);
    expect(shown[2]).toMatch(/^ {2}processed +6,000\/s +total 9,000$/);
    expect(shown[3]).toMatch(/^ {2}egressed +20\/s +total +30 +alerts 4$/);
    expect(shown[4]).toBe('  dead letters 0');
    expect(shown[5]).toBe('  last checkpoint #12  0.8s ago  took 4ms');
    expect(shown).toHaveLength(6);
    // The redraw moved the cursor up over the old block and cleared it, in a single write.
    const last = stream.chunks[stream.chunks.length - 1]!;
    expect(last.startsWith('\x1b[6A\r\x1b[J')).toBe(true);
    progress.stop();
  });

  it('prints log lines above the block without corrupting it', () => {
    const { stream, progress, advance } = tty();
    progress.log('starting');
    progress.update(snap({ uptimeMs: 1000, processed: 100 }));
    progress.log('worker 0 ready');
    progress.log('{"egress":"fraud/alerts","value":{"score":0.93}}\n');
    advance(1000);
    progress.update(snap({ uptimeMs: 2000, processed: 200, extra: { lag: 3, mode: 'exactly-once' } }));
    advance(1000);
    progress.log('worker 1 ready');
    const shown = screen(stream.text);
    expect(shown.slice(0, 4)).toEqual(['starting', 'worker 0 ready', '{"egress":"fraud/alerts","value":{"score":0.93}}', 'worker 1 ready']);
    expect(shown[4]).toMatch(/^statefn {2}up 2s/);
    expect(shown.slice(4).join('\n')).toMatch(/processed +100\/s +total 200/);
    expect(shown[shown.length - 1]).toBe('  lag: 3   mode: exactly-once');
    expect(shown.filter((r) => r.startsWith('statefn ')).length).toBe(1);
    progress.stop();
  });

  it('marks back-pressure, dead letters and a failed checkpoint in colour, and cuts rows to the terminal width', () => {
    const { stream, progress } = tty(40);
    progress.update(
      snap({
        uptimeMs: 65_000,
        deadLetters: 3,
        backPressured: true,
        lastCheckpoint: { epoch: 7, atMs: T0 - 15_000, durationMs: 1234, ok: false },
      }),
    );
    const text = stream.text;
    expect(text).toContain('\x1b[33mstatefn  up 1m 05s  2 workers  BACK-PR…\x1b[0m'); // yellow, cut
    expect(text).toContain('\x1b[31m  dead letters 3\x1b[0m'); // red
    const shown = screen(text);
    expect(shown[5]).toBe('  last checkpoint #7  FAILED  15s ago …');
    for (const row of shown) expect(row.length).toBeLessThanOrEqual(39);
    progress.stop();
  });

  it('stop() draws the final state once, leaves the cursor below it and ends the redraws', () => {
    const { stream, progress, advance } = tty();
    progress.update(snap({ uptimeMs: 1000, processed: 5 }));
    progress.update(snap({ uptimeMs: 2000, processed: 10 }));
    progress.stop();
    progress.stop();
    const written = stream.chunks.length;
    advance(10_000);
    progress.update(snap({ uptimeMs: 3000, processed: 99 }));
    expect(stream.chunks.length).toBe(written);
    progress.log('bye');
    const shown = screen(stream.text);
    expect(shown.slice(0, -1).join('\n')).toMatch(/processed +5\/s +total 10/);
    expect(shown[shown.length - 1]).toBe('bye');
  });

  it('without colour writes no SGR codes', () => {
    const stream = new FakeStream({ isTTY: true, columns: 100 });
    const progress = createProgress({ stream, color: false });
    progress.update(snap({ deadLetters: 1, backPressured: true }));
    progress.stop();
    // eslint-disable-next-line no-control-regex -- asserting that no ANSI colour escape is written
    expect(stream.text).not.toMatch(/\x1b\[[0-9;]*m/);
  });
});

describe('progress on a pipe or file', () => {
  function plain(intervalMs?: number) {
    const stream = new FakeStream();
    let now = T0;
    const progress = createProgress({ stream, now: () => now, ...(intervalMs === undefined ? {} : { intervalMs }) });
    return {
      stream,
      progress,
      advance: (ms: number) => {
        now += ms;
        vi.advanceTimersByTime(ms);
      },
    };
  }

  it('prints one key=value line every 5 s by default, with rates over the interval and no escape codes', () => {
    const { stream, progress, advance } = plain();
    progress.update(snap({ uptimeMs: 0 }));
    advance(2500);
    progress.update(snap({ uptimeMs: 2500, processed: 5000, ingested: 2500, egressed: 5, alerts: 1 }));
    expect(stream.text).toBe(''); // nothing before the first interval ends
    advance(2500);
    expect(stream.chunks).toHaveLength(1);
    expect(stream.text).not.toContain('\x1b');
    expect(stream.chunks[0]).toBe(
      '2026-11-21T17:00:05Z statefn processed=5000 rate=2000/s ingested=2500 in_rate=1000/s egressed=5 alerts=1 dead=0 workers=2 up=2s\n',
    );

    progress.update(
      snap({
        uptimeMs: 5000,
        processed: 10000,
        ingested: 5000,
        egressed: 15,
        alerts: 3,
        lastCheckpoint: { epoch: 12, atMs: T0, durationMs: 4, ok: true },
      }),
    );
    advance(5000);
    expect(stream.chunks).toHaveLength(2);
    expect(stream.chunks[1]).toBe(
      '2026-11-21T17:00:10Z statefn processed=10000 rate=2000/s ingested=5000 in_rate=1000/s egressed=15 alerts=3 dead=0 workers=2 up=5s checkpoint=#12 4ms\n',
    );
    progress.stop();
    expect(stream.chunks).toHaveLength(2); // nothing new since the last line
  });

  it('logs lines as they come, prints nothing before the first update, marks back-pressure and failed checkpoints, and quotes extras', () => {
    const { stream, progress, advance } = plain(1000);
    progress.log('engine starting');
    advance(3000);
    expect(stream.text).toBe('engine starting\n');
    progress.update(
      snap({
        uptimeMs: 1000,
        processed: 10,
        deadLetters: 2,
        backPressured: true,
        lastCheckpoint: { epoch: 3, atMs: T0, durationMs: 0.25, ok: false },
        extra: { mode: 'exactly once', lag: 7 },
      }),
    );
    advance(1000);
    const line = stream.chunks[1]!;
    expect(line).toMatch(/^2026-11-21T17:00:04Z statefn processed=10 rate=-\/s /);
    expect(line).toContain(' dead=2 ');
    expect(line).toContain(' backpressured=1 ');
    expect(line).toContain(' checkpoint=#3 0.3ms FAILED ');
    expect(line.trimEnd().endsWith('mode="exactly once" lag=7')).toBe(true);
    expect(line).not.toContain('alerts=');
    progress.update(snap({ uptimeMs: 1500, processed: 20 }));
    progress.stop(); // a final line for the update since the last one
    expect(stream.chunks[2]).toMatch(/ processed=20 rate=20\/s /);
  });

  it('starts a new rate series when the counters go back (an engine restart)', () => {
    const { stream, progress, advance } = plain(1000);
    progress.update(snap({ uptimeMs: 10_000, processed: 100_000 }));
    progress.update(snap({ uptimeMs: 500, processed: 50 }));
    advance(1000);
    expect(stream.chunks[0]).toContain(' rate=-/s ');
    progress.update(snap({ uptimeMs: 1500, processed: 150 }));
    advance(1000);
    expect(stream.chunks[1]).toContain(' rate=100/s ');
    progress.stop();
  });

  it('refuses an interval out of bounds', () => {
    expect(() => createProgress({ stream: new FakeStream(), intervalMs: 0 })).toThrow(/intervalMs/);
  });
});

describe('formatUptime', () => {
  it('shows the two or three largest units', () => {
    expect(formatUptime(0)).toBe('0s');
    expect(formatUptime(59_999)).toBe('59s');
    expect(formatUptime(83_000)).toBe('1m 23s');
    expect(formatUptime(2 * 3600_000 + 3 * 60_000 + 4000)).toBe('2h 03m 04s');
    expect(formatUptime(3 * 86_400_000 + 2 * 3600_000 + 3 * 60_000)).toBe('3d 02h 03m');
  });
});
