// A state directory or local snapshot directory that cannot be written (read-only file system,
// no permission, full) fails with a stable STATEFN_STORAGE_* code and a message naming the path
// and the fix, not a bare errno. The mapping is unit-tested with errno errors as the fs module
// makes them; EROFS for real under a read-only tmpfs mounted in a private mount namespace
// (`unshare -m`, skipped where that is not allowed); EACCES for real on a 0555 directory (as an
// unprivileged user when the tests run as root, since root ignores the mode bits).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../shared/errors.js';
import { storageError } from '../../shared/storage_errors.js';

const PROBE = new URL('../fixtures/storage_probe.ts', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** An error as node:fs makes it (errno, code, syscall, path), e.g. for EROFS on open(2). */
function errnoError(code: string, errno: number, path: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: simulated, open '${path}'`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = -errno;
  e.syscall = 'open';
  e.path = path;
  return e;
}

describe('storage errors: the mapping', () => {
  const where = { dir: '/srv/statefn/state', role: 'state' as const };

  it('EROFS is STATEFN_STORAGE_READ_ONLY naming the directory and the fix', () => {
    const e = storageError(errnoError('EROFS', 30, '/srv/statefn/state/checkpoint.json.tmp'), { ...where, op: 'write' });
    expect(e?.code).toBe(ErrorCode.STORAGE_READ_ONLY);
    expect(e?.code).toBe('STATEFN_STORAGE_READ_ONLY');
    expect(e?.message).toContain('/srv/statefn/state');
    expect(e?.message).toContain('read-only file system');
    expect(e?.message).toContain('/srv/statefn/state/checkpoint.json.tmp');
    expect(e?.message).toMatch(/remount .* read-write, or .*--state-dir/);
    expect(e?.retriable).toBe(true);
    expect(e?.cause).toBeInstanceOf(Error);
  });

  it('EACCES and EPERM are STATEFN_STORAGE_PERMISSION_DENIED; ENOSPC and EDQUOT STATEFN_STORAGE_FULL', () => {
    const snap = { dir: '/srv/snap', role: 'snapshots' as const, op: 'write' };
    for (const [code, errno] of [
      ['EACCES', 13],
      ['EPERM', 1],
    ] as const) {
      const e = storageError(errnoError(code, errno, '/srv/snap/x'), snap);
      expect(e?.code).toBe(ErrorCode.STORAGE_PERMISSION_DENIED);
      expect(e?.message).toContain('/srv/snap');
      expect(e?.message).toMatch(/--snapshots/);
    }
    for (const [code, errno] of [
      ['ENOSPC', 28],
      ['EDQUOT', 122],
    ] as const) {
      const e = storageError(errnoError(code, errno, '/srv/snap/x'), snap);
      expect(e?.code).toBe(ErrorCode.STORAGE_FULL);
      expect(e?.message).toMatch(/free space/);
    }
  });

  it('other errors are not storage conditions', () => {
    expect(storageError(errnoError('ENOENT', 2, '/x'), { dir: '/x', role: 'state', op: 'read' })).toBeUndefined();
    expect(storageError(new Error('boom'), { dir: '/x', role: 'state', op: 'read' })).toBeUndefined();
    expect(storageError('text', { dir: '/x', role: 'state', op: 'read' })).toBeUndefined();
  });
});

type Probe = { snapshot: { code: string; message: string } | null; record: { code: string; message: string } | null };

function runProbe(argv: string[], opts: { uid?: number; gid?: number } = {}): Probe {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, encoding: 'utf8', timeout: 60_000, ...opts });
  if (r.status !== 0) throw new Error(`probe exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
}

const node = [process.execPath, '--conditions=statefn-source', '--import', 'tsx', PROBE];

/** True when this process may mount a read-only tmpfs in a private mount namespace. */
function canMountReadOnly(): boolean {
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o ro tmpfs /mnt'], { encoding: 'utf8' });
  return r.status === 0;
}

describe('storage errors: real file systems', () => {
  it.skipIf(!canMountReadOnly())('a read-only file system (EROFS) under the snapshot dir and the state dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'statefn-erofs-'));
    dirs.push(dir);
    const shell = `mount -t tmpfs -o ro tmpfs '${dir}' && exec ${node.map((a) => `'${a}'`).join(' ')} '${dir}'`;
    const got = runProbe(['unshare', '-m', 'sh', '-c', shell]);
    expect(got.snapshot?.code).toBe('STATEFN_STORAGE_READ_ONLY');
    expect(got.snapshot?.message).toContain(`the local snapshot directory ${dir}`);
    expect(got.snapshot?.message).toContain('--snapshots');
    expect(got.record?.code).toBe('STATEFN_STORAGE_READ_ONLY');
    expect(got.record?.message).toContain(`the state directory ${dir}`);
    expect(got.record?.message).toContain('--state-dir');
  });

  it('a directory this process may not write (EACCES)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'statefn-eacces-'));
    dirs.push(dir);
    chmodSync(dir, 0o555);
    // Root ignores the mode bits: probe as an unprivileged user then.
    const asRoot = process.getuid?.() === 0;
    const got = runProbe([...node, dir], asRoot ? { uid: 65534, gid: 65534 } : {});
    expect(got.snapshot?.code).toBe('STATEFN_STORAGE_PERMISSION_DENIED');
    expect(got.snapshot?.message).toContain(dir);
    expect(got.record?.code).toBe('STATEFN_STORAGE_PERMISSION_DENIED');
    expect(got.record?.message).toContain(`the state directory ${dir}`);
    chmodSync(dir, 0o755);
  });
});

describe('storage errors: too little free space', () => {
  // LMDB aborts the process when a write runs out of space (seen on a full tmpfs: "corrupted size
  // vs. prev_size"), so the engine refuses to write below stateDirFreeBytesMin. The largest bound
  // (1 TiB) is more than this machine's temp directory has free.
  it('a start below stateDirFreeBytesMin fails with STATEFN_STORAGE_FULL naming the directory and the fix', async () => {
    const { Engine } = await import('../../index.js');
    const stateDir = mkdtempSync(join(tmpdir(), 'statefn-lowdisk-'));
    try {
      const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).pathname;
      const e = await Engine.start(app, { stateDir, limits: { stateDirFreeBytesMin: 1024 * 1024 * 1024 * 1024 } }).then(
        async (engine) => {
          await engine.stop();
          return undefined;
        },
        (err: unknown) => err as { code?: string; message: string },
      );
      expect(e?.code).toBe(ErrorCode.STORAGE_FULL);
      expect(e?.message).toContain(stateDir);
      expect(e?.message).toMatch(/free space on its file system, or point stateDir/);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
