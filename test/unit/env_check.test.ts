// Proves the start-up check of a worker's LMDB environment (state/env_check.ts) tells every kind
// of damage from an intact environment, on real LMDB files in a temp dir, without opening a
// truncated file (which would SIGBUS), and that the repair decision (state/env_repair.ts) moves
// damaged environments aside, restores only when the store can, and otherwise fails changing nothing.
import { existsSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkEnv, checkEnvFiles, readLmdbMeta } from '../../state/env_check.js';
import { repairEnvs, restoreRanges, type EnvToCheck } from '../../state/env_repair.js';
import { StateStore, epochStampOp, type WriteOp } from '../../state/state_store.js';
import { EPOCH_STAMP_KEY, stateKey } from '../../state/state_keys.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { TempDirs } from '../fixtures/engine_harness.js';

const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

/** A real environment with some state, stamped `stamp` (undefined: never stamped). */
async function makeEnv(stamp: number | undefined, entries = 2000): Promise<string> {
  const dir = join(tmp.make('env'), 'worker-0');
  const store = new StateStore(dir);
  const ops: WriteOp[] = [];
  for (let i = 0; i < entries; i++) ops.push({ db: 'state', key: stateKey(i % 16, 'test/counter', `k${i}`), value: Buffer.alloc(64, i) });
  if (stamp !== undefined) ops.push(epochStampOp(stamp));
  await store.write(ops);
  await store.close();
  return dir;
}

const data = (dir: string): string => join(dir, 'data.mdb');

describe('checkEnv', () => {
  it('accepts an environment stamped with the recovered checkpoint or up to two epochs after it', async () => {
    const dir = await makeEnv(7);
    expect(await checkEnv(dir, 7)).toEqual({ ok: true, stamp: 7 });
    expect(await checkEnv(dir, 6)).toEqual({ ok: true, stamp: 7 });
    expect(await checkEnv(dir, 5)).toEqual({ ok: true, stamp: 7 });
  });

  it('rejects a stamp older than the checkpoint, or too far ahead for the undo records', async () => {
    const dir = await makeEnv(7);
    expect(await checkEnv(dir, 8)).toMatchObject({ ok: false, damage: 'stale' });
    expect(await checkEnv(dir, 4)).toMatchObject({ ok: false, damage: 'too-new' });
    expect(await checkEnv(dir, 0)).toMatchObject({ ok: false, damage: 'too-new' });
  });

  it('accepts an environment without a stamp (an earlier statefn), unverified', async () => {
    expect(await checkEnv(await makeEnv(undefined), 3)).toEqual({ ok: true, stamp: undefined });
  });

  it('the stamp read opens the environment read-only and creates nothing', async () => {
    const dir = await makeEnv(undefined);
    await checkEnv(dir, 3);
    const store = new StateStore(dir, true);
    expect(store.epochStamp()).toBeUndefined();
    await store.close();
  });

  it('a missing directory, a missing or empty data.mdb', async () => {
    const dir = await makeEnv(1);
    rmSync(data(dir));
    expect(await checkEnv(dir, 1)).toMatchObject({ ok: false, damage: 'no-data-file' });
    writeFileSync(data(dir), '');
    expect(await checkEnv(dir, 1)).toMatchObject({ ok: false, damage: 'empty', detail: 'data.mdb is 0 bytes' });
    rmSync(dir, { recursive: true });
    expect(await checkEnv(dir, 1)).toMatchObject({ ok: false, damage: 'missing' });
    writeFileSync(dir, 'x');
    expect(await checkEnv(dir, 1)).toMatchObject({ ok: false, damage: 'unreadable' });
  });

  it('a data.mdb truncated anywhere, checked from its meta pages without opening LMDB', async () => {
    const dir = await makeEnv(1, 20_000);
    const size = statSync(data(dir)).size;
    const meta = readLmdbMeta(data(dir), size);
    expect(meta).toMatchObject({ pageSize: expect.any(Number) as number });
    if ('damage' in meta) throw new Error('expected a meta page');
    // An intact file holds exactly the pages up to the last one in use.
    expect(size).toBeGreaterThanOrEqual((meta.lastPage + 1) * meta.pageSize);
    for (const to of [Math.floor(size / 2), size - meta.pageSize, size - 1, meta.pageSize + 100, 100]) {
      truncateSync(data(dir), to);
      const c = await checkEnv(dir, 1);
      expect(c, `truncated to ${to}`).toMatchObject({ ok: false, damage: 'truncated' });
    }
  });

  it('a file that is not LMDB, or whose second meta page is damaged', async () => {
    const dir = await makeEnv(1);
    const good = readFileSync(data(dir));
    const junk = Buffer.alloc(good.length);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 2654435761) >>> 24;
    writeFileSync(data(dir), junk);
    expect(checkEnvFiles(dir)).toMatchObject({ damage: 'not-lmdb' });
    const second = Buffer.from(good);
    const psize = good.readUInt32LE(48);
    second.writeUInt32LE(0x12345678, psize + 24);
    writeFileSync(data(dir), second);
    expect(checkEnvFiles(dir)).toMatchObject({ damage: 'not-lmdb', detail: expect.stringContaining('meta page 1') as string });
  });

  it('a corrupt stamp makes the environment unreadable', async () => {
    const dir = join(tmp.make('env'), 'worker-0');
    const store = new StateStore(dir);
    await store.write([{ db: 'meta', key: EPOCH_STAMP_KEY, value: Buffer.from([1, 2, 3]) }]);
    await store.close();
    expect(await checkEnv(dir, 1)).toMatchObject({
      ok: false,
      damage: 'unreadable',
      detail: expect.stringContaining('epoch stamp') as string,
    });
  });
});

describe('repairEnvs', () => {
  const env = (dir: string, w = 1): EnvToCheck => ({ dir, owner: `worker ${w}`, kgStart: 8 * w, kgEnd: 8 * w + 8 });
  const now = (): Date => new Date('2030-01-02T03:04:05.678Z');

  it('before any checkpoint, a missing environment is an empty start and a damaged one starts empty, moved aside', async () => {
    const warnings: string[] = [];
    const missing = join(tmp.make('env'), 'worker-0');
    const broken = await makeEnv(1);
    truncateSync(data(broken), 0);
    const r = await repairEnvs({
      stateDir: '/s',
      recoverEpoch: 0,
      envs: [env(missing, 0), env(broken)],
      verifyStore: undefined,
      warn: (m) => warnings.push(m),
      now,
    });
    expect(r.restore).toBe(false);
    expect(r.damaged.map((d) => d.damage)).toEqual(['empty']);
    expect(r.damaged[0]!.movedTo).toBe(`${broken}.damaged-2030-01-02T03-04-05-678Z`);
    expect(existsSync(broken)).toBe(false);
    expect(statSync(join(r.damaged[0]!.movedTo!, 'data.mdb')).size).toBe(0);
    expect(warnings).toEqual([expect.stringMatching(/worker 1's .* key groups \[8, 16\) are started empty/)]);
  });

  it('a stamp past the undo records of checkpoint 0 means the checkpoint record was lost: an error', async () => {
    const dir = await makeEnv(9);
    const e = await repairEnvs({ stateDir: '/s', recoverEpoch: 0, envs: [env(dir)], verifyStore: undefined, warn: () => {} }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(StatefnError);
    expect((e as StatefnError).code).toBe(ErrorCode.STATE_DIR_INVALID);
    expect((e as StatefnError).message).toContain('checkpoint.json');
    expect(existsSync(data(dir))).toBe(true);
  });

  it('after a checkpoint, with snapshots off: an error naming the environment and the fix, nothing moved', async () => {
    const dir = await makeEnv(3);
    truncateSync(data(dir), 4096 * 3);
    const gone = join(tmp.make('env'), 'worker-0');
    const e = await repairEnvs({
      stateDir: '/s',
      recoverEpoch: 3,
      envs: [env(gone, 0), env(dir)],
      verifyStore: undefined,
      warn: () => {},
    }).catch((x: unknown) => x);
    expect((e as StatefnError).code).toBe(ErrorCode.STATE_DIR_INVALID);
    expect((e as StatefnError).message).toContain(dir);
    expect((e as StatefnError).message).toContain(gone);
    expect((e as StatefnError).message).toMatch(/snapshots: false/);
    expect(statSync(data(dir)).size).toBe(4096 * 3);
    expect(existsSync(gone)).toBe(false);
  });

  it('after a checkpoint, a store without that checkpoint: an error with the cause, nothing moved', async () => {
    const dir = await makeEnv(2);
    const e = await repairEnvs({
      stateDir: '/s',
      recoverEpoch: 5,
      envs: [env(dir)],
      verifyStore: () => Promise.reject(new Error('no manifests/000000000005')),
      warn: () => {},
    }).catch((x: unknown) => x);
    expect((e as StatefnError).code).toBe(ErrorCode.STATE_DIR_INVALID);
    expect((e as StatefnError).message).toMatch(/older than the last complete checkpoint 5.*no manifests\/000000000005/);
    expect(existsSync(data(dir))).toBe(true);
  });

  it('after a checkpoint, with the store: damaged environments are moved aside (to asideBase when given) and restored', async () => {
    const warnings: string[] = [];
    const stale = await makeEnv(2);
    const intact = await makeEnv(5);
    const unstamped = await makeEnv(undefined);
    const old = await makeEnv(5);
    truncateSync(data(old), 0);
    const base = join(tmp.make('aside'), 'gen-0-worker-3');
    let verified = 0;
    const r = await repairEnvs({
      stateDir: '/s',
      recoverEpoch: 5,
      envs: [env(stale, 1), env(intact, 2), env(unstamped, 0), { ...env(old, 3), asideBase: base }],
      verifyStore: () => {
        verified++;
        return Promise.resolve();
      },
      warn: (m) => warnings.push(m),
      now,
    });
    expect(verified).toBe(1);
    expect(r.restore).toBe(true);
    expect(r.damaged.map((d) => [d.owner, d.damage])).toEqual([
      ['worker 1', 'stale'],
      ['worker 3', 'empty'],
    ]);
    expect(r.damaged[1]!.movedTo).toBe(`${base}.damaged-2030-01-02T03-04-05-678Z`);
    expect(readdirSync(r.damaged[1]!.movedTo!)).toContain('data.mdb');
    expect(existsSync(intact)).toBe(true);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/worker 0's .* no epoch stamp/);
    expect(warnings[1]).toMatch(/worker 1's .* older than .* key groups \[8, 16\) are restored from checkpoint 5/);
  });

  it('restoreRanges: the key groups of a worker that lie in damaged environments', () => {
    const damaged = [
      { kgStart: 10, kgEnd: 20 },
      { kgStart: 0, kgEnd: 5 },
    ];
    expect(restoreRanges(0, 16, damaged)).toEqual([
      [0, 5],
      [10, 16],
    ]);
    expect(restoreRanges(5, 10, damaged)).toEqual([]);
    expect(restoreRanges(16, 32, damaged)).toEqual([[16, 20]]);
  });
});
