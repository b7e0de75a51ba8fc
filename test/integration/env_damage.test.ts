// Proves a worker's damaged LMDB environment never starts empty and never kills the process: after
// a clean stop or a SIGKILL, an environment that is missing, has a 0-byte or half-truncated
// data.mdb, or is an older copy, is moved aside and its key groups restored from the snapshot
// store (every counter keeps its checkpointed value, a WARN names the worker); with snapshots off
// the start fails with STATEFN_STATE_DIR_INVALID and deletes nothing. Also: every environment
// carries the epoch of the checkpoint it wrote, equal to the checkpoint record's.
// (The power loss the sync before each ACK guards against cannot be simulated here.)
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { StateStore } from '../../state/state_store.js';
import { envDir } from '../../state/state_layout.js';
import type { ChildArgs, ChildResult } from '../fixtures/env_damage_child.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf, orFail } from '../fixtures/engine_harness.js';

const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

const repo = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = join(repo, 'test', 'fixtures', 'env_damage_child.ts');
const WORKERS = 2;
const KEY_GROUPS = 16;
const COUNTERS = 40;
/** The worker whose environment the tests damage. */
const VICTIM = 1;

interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  result: ChildResult | undefined;
  output: string;
}

/** Run the child engine; with `kill`, SIGKILL it once it holds (a crash, no clean stop). */
function runChild(args: Omit<ChildArgs, 'keyGroups' | 'counters' | 'workers'> & { workers?: number }, kill = false): Promise<ChildOutcome> {
  const full: ChildArgs = { workers: WORKERS, keyGroups: KEY_GROUPS, counters: COUNTERS, ...args, hold: kill };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=statefn-source', '--import', 'tsx', CHILD, JSON.stringify(full)], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child engine hung; its output:\n${output}`));
    }, 90_000);
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (kill && output.includes('HOLDING')) child.kill('SIGKILL');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      const line = output.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({ code, signal, result: line === undefined ? undefined : (JSON.parse(line.slice(7)) as ChildResult), output });
    });
  });
}

const dataFile = (stateDir: string, w: number): string => join(envDir(stateDir, 0, w), 'data.mdb');

const DAMAGES: Record<string, (stateDir: string) => void> = {
  'directory deleted': (s) => rmSync(envDir(s, 0, VICTIM), { recursive: true, force: true }),
  'data.mdb of 0 bytes': (s) => truncateSync(dataFile(s, VICTIM), 0),
  'data.mdb truncated to half': (s) => truncateSync(dataFile(s, VICTIM), Math.floor(statSync(dataFile(s, VICTIM)).size / 2)),
};

function expectCounts(o: ChildOutcome, expected: number): void {
  expect(o.signal, o.output).toBeNull();
  expect(o.code, o.output).toBe(0);
  const counts = o.result!.counts!;
  for (let i = 0; i < COUNTERS; i++) expect(counts[`k${i}`], `k${i}\n${o.output}`).toBe(expected);
}

function expectRestoreWarning(o: ChildOutcome, reason: RegExp): void {
  const w = o.result!.warnings.filter((m) => m.includes(`worker ${VICTIM}`) && /key groups \[\d+, \d+\)/.test(m));
  expect(w.length, o.result!.warnings.join('\n')).toBeGreaterThan(0);
  expect(w.join('\n')).toMatch(reason);
  expect(w.join('\n')).toMatch(/restored from checkpoint \d+/);
}

const REASONS: Record<string, RegExp> = {
  'directory deleted': /missing/,
  'data.mdb of 0 bytes': /0 bytes/,
  'data.mdb truncated to half': /truncated/,
};

describe('a damaged worker environment is restored from the snapshot store', () => {
  for (const stop of ['clean stop', 'SIGKILL'] as const) {
    for (const [name, damage] of Object.entries(DAMAGES)) {
      it(`${name}, after a ${stop}: every counter keeps its checkpointed value, with a WARN`, async () => {
        const stateDir = tmp.make('envdmg');
        const fill = await runChild({ stateDir, rounds: 3 }, stop === 'SIGKILL');
        if (stop === 'SIGKILL') expect(fill.signal).toBe('SIGKILL');
        else expect(fill.code, fill.output).toBe(0);
        damage(stateDir);
        const check = await runChild({ stateDir, rounds: 1 });
        expectCounts(check, 4);
        expectRestoreWarning(check, REASONS[name]!);
        // The damaged environment was moved aside (beside state/, which a rescale removes), not deleted.
        if (name !== 'directory deleted') {
          expect(readdir(stateDir).some((d) => d.startsWith(`gen-0-worker-${VICTIM}.damaged-`))).toBe(true);
        }
        if (name === 'data.mdb truncated to half') {
          // The restored environment is a normal one from now on: a further restart uses it silently.
          const again = await runChild({ stateDir, rounds: 1 });
          expectCounts(again, 5);
          expect(again.result!.warnings.filter((m) => m.includes('damaged'))).toEqual([]);
        }
      }, 180_000);
    }
  }

  it('an older copy of the environment (3 checkpoints behind) is restored, not used', async () => {
    const stateDir = tmp.make('envdmg');
    expectCounts(await runChild({ stateDir, rounds: 2 }), 2);
    const copy = join(tmp.make('envcopy'), 'worker');
    cpSync(envDir(stateDir, 0, VICTIM), copy, { recursive: true });
    const later = await runChild({ stateDir, rounds: 3, checkpoints: 3 });
    expectCounts(later, 5);
    rmSync(envDir(stateDir, 0, VICTIM), { recursive: true });
    cpSync(copy, envDir(stateDir, 0, VICTIM), { recursive: true });
    const check = await runChild({ stateDir, rounds: 1 });
    expectCounts(check, 6);
    expectRestoreWarning(check, /older than/);
  }, 180_000);

  it('rescaling from a damaged environment restores its key groups from the store instead of migrating them', async () => {
    const stateDir = tmp.make('envdmg');
    expectCounts(await runChild({ stateDir, rounds: 3 }), 3);
    DAMAGES['data.mdb truncated to half']!(stateDir);
    const check = await runChild({ stateDir, rounds: 1, workers: 3 });
    expectCounts(check, 4);
    expectRestoreWarning(check, /truncated/);
    // Kept outside the old generation's directory, which the rescale removes.
    expect(readdir(stateDir).some((d) => d.startsWith(`gen-0-worker-${VICTIM}.damaged-`))).toBe(true);
    expect(existsSync(join(stateDir, 'state', 'gen-0'))).toBe(false);
  }, 180_000);
});

describe('a damaged worker environment with snapshots off', () => {
  for (const [name, damage] of Object.entries(DAMAGES)) {
    it(`${name}: a clear error naming the directory, a non-zero exit, nothing deleted`, async () => {
      const stateDir = tmp.make('envdmg');
      expect((await runChild({ stateDir, rounds: 2, snapshots: false })).code).toBe(0);
      damage(stateDir);
      const victimFiles = snapshotFiles(envDir(stateDir, 0, VICTIM));
      const otherFiles = snapshotFiles(envDir(stateDir, 0, 0));
      const record = readFileSync(join(stateDir, 'checkpoint.json'), 'utf8');
      for (let attempt = 0; attempt < 2; attempt++) {
        // The second attempt proves the first one did not leave an empty environment behind.
        const o = await runChild({ stateDir, rounds: 1, snapshots: false });
        expect(o.signal, o.output).toBeNull();
        expect(o.code, o.output).toBe(1);
        expect(o.result?.error?.code, o.output).toBe('STATEFN_STATE_DIR_INVALID');
        expect(o.result!.error!.message).toContain(envDir(stateDir, 0, VICTIM));
        expect(o.result!.error!.message).toMatch(/snapshots/);
        expect(snapshotFiles(envDir(stateDir, 0, VICTIM))).toEqual(victimFiles);
        expect(snapshotFiles(envDir(stateDir, 0, 0))).toEqual(otherFiles);
        expect(readFileSync(join(stateDir, 'checkpoint.json'), 'utf8')).toBe(record);
      }
    }, 180_000);
  }
});

describe('the epoch stamp', () => {
  it("equals the checkpoint record's epoch in every environment after a checkpoint and after a stop", async () => {
    const stateDir = tmp.make('stamp');
    const logger = new MemoryLogger();
    const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
    const engine = await Engine.start(app, {
      stateDir,
      workers: WORKERS,
      logger,
      limits: { keyGroups: KEY_GROUPS, checkpointIntervalMs: 60_000 },
    });
    const input = ingressOf(engine, 'test/in');
    const out = egressOf(engine, 'test/out');
    input.pushAll(
      Array.from({ length: COUNTERS }, (_, i) => ({ to: { typename: 'test/counter', id: `k${i}` }, message: Message.of(Types.long, i) })),
    );
    // Checkpoints on demand only (a one-minute interval): the counts are released by one of them.
    let epoch = 0;
    for (let i = 0; i < 100 && out.records.length < COUNTERS; i++) epoch = await orFail(engine, engine.checkpoint());
    expect(out.records.length).toBe(COUNTERS);
    const recorded = (): number => (JSON.parse(readFileSync(join(stateDir, 'checkpoint.json'), 'utf8')) as { epoch: number }).epoch;
    expect(recorded()).toBe(epoch);
    // No checkpoint runs meanwhile: every worker's stamp is the recorded epoch.
    for (let w = 0; w < WORKERS; w++) expect(await StateStore.readEpochStamp(envDir(stateDir, 0, w))).toBe(epoch);
    await engine.stop();
    expect(recorded()).toBeGreaterThan(epoch);
    for (let w = 0; w < WORKERS; w++) expect(await StateStore.readEpochStamp(envDir(stateDir, 0, w))).toBe(recorded());
  });
});

function readdir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Name and size of every file in `dir` (undefined when it does not exist). */
function snapshotFiles(dir: string): Record<string, number> | undefined {
  if (!existsSync(dir)) return undefined;
  const out: Record<string, number> = {};
  for (const f of readdir(dir)) if (f !== 'lock.mdb') out[f] = statSync(join(dir, f)).size;
  return out;
}
