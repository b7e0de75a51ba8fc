/**
 * The state directory: which LMDB environments hold the state and for which worker layout.
 *
 *   <stateDir>/layout.json                  { version, keyGroups, workers, generation }
 *   <stateDir>/state/gen-<g>/worker-<i>/    LMDB environment of worker i in layout generation g
 *   <stateDir>/LOCK                         pid of the running engine
 *
 * Changing the worker count starts a new generation: each new worker copies its key groups from
 * all environments of the old one; only when every worker is ready is layout.json switched and
 * the old generation removed. A crash in between leaves layout.json on the old generation, which
 * is still intact, and the next start redoes the migration.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  readdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { assert, ErrorCode, StatefnError } from '../shared/errors.js';
import { storageError } from '../shared/storage_errors.js';

/** The content of layout.json: which worker layout the state directory holds. */
export interface Layout {
  version: 1;
  keyGroups: number;
  workers: number;
  generation: number;
  /**
   * Identifies this state's history of checkpoints: kept across restarts and rescaling, new
   * whenever the state is created or replaced (fresh directory, restore from the snapshot store,
   * savepoint), since checkpoint numbers then start over or go back. Exactly-once sinks that
   * remember a committed checkpoint number outside the state directory (the Kafka egress) tie it
   * to this id.
   */
  lineage?: string;
}

export function readLayout(stateDir: string): Layout | undefined {
  const file = join(stateDir, 'layout.json');
  if (!existsSync(file)) return undefined;
  let v: Partial<Layout>;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as Partial<Layout>;
  } catch (e) {
    throw new StatefnError(
      ErrorCode.STATE_DIR_INVALID,
      `${file} is not valid JSON (${(e as Error).message}); restore it or move the state directory away`,
    );
  }
  if (
    v.version !== 1 ||
    !Number.isInteger(v.keyGroups) ||
    !Number.isInteger(v.workers) ||
    !Number.isInteger(v.generation) ||
    (v.lineage !== undefined && typeof v.lineage !== 'string')
  ) {
    throw new StatefnError(
      ErrorCode.STATE_DIR_INVALID,
      `${file} is not a statefn layout (expected {version: 1, keyGroups, workers, generation})`,
    );
  }
  if (v.keyGroups! < 1 || v.workers! < 1 || v.generation! < 0) {
    throw new StatefnError(
      ErrorCode.STATE_DIR_INVALID,
      `${file} is corrupt (keyGroups ${v.keyGroups}, workers ${v.workers}, generation ${v.generation}); restore it or ` +
        `move the state directory away`,
    );
  }
  return v as Layout;
}

/** Replace layout.json atomically and durably (write and fsync a temp file, rename it over, fsync the directory). */
export function writeLayout(stateDir: string, layout: Layout): void {
  assert(
    layout.version === 1 && Number.isInteger(layout.keyGroups) && layout.keyGroups >= 1,
    () => `layout to write has keyGroups ${layout.keyGroups}`,
  );
  assert(
    Number.isInteger(layout.workers) && layout.workers >= 1 && Number.isInteger(layout.generation) && layout.generation >= 0,
    () => `layout to write has workers ${layout.workers}, generation ${layout.generation}`,
  );
  const file = join(stateDir, 'layout.json');
  try {
    // Durable before it is relied on: fsync the file, rename it over, fsync the directory.
    const fd = openSync(`${file}.tmp`, 'w');
    try {
      writeFileSync(fd, JSON.stringify(layout, null, 2));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(`${file}.tmp`, file);
    const dir = openSync(stateDir, 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch (e) {
    throw storageError(e, { dir: stateDir, role: 'state', op: 'write' }) ?? e;
  }
}

/** The LMDB environment directory of worker `worker` in layout generation `generation`. */
export function envDir(stateDir: string, generation: number, worker: number): string {
  return join(stateDir, 'state', `gen-${generation}`, `worker-${worker}`);
}

/** Remove every generation directory except `keep`. */
export function removeOtherGenerations(stateDir: string, keep: number): void {
  const root = join(stateDir, 'state');
  if (!existsSync(root)) return;
  for (const d of readdirSync(root)) {
    if (d !== `gen-${keep}`) rmSync(join(root, d), { recursive: true, force: true });
  }
}

/** Remove the local state (LMDB environments, layout, checkpoint record), keeping everything else. */
export function clearLocalState(stateDir: string): void {
  rmSync(join(stateDir, 'state'), { recursive: true, force: true });
  rmSync(join(stateDir, 'layout.json'), { force: true });
  rmSync(join(stateDir, 'checkpoint.json'), { force: true });
}

/** Take the state directory's lock, or explain who holds it. */
export function lockStateDir(stateDir: string): () => void {
  try {
    return takeLock(stateDir);
  } catch (e) {
    // A read-only, unwritable or full state directory is the first thing a start finds out.
    throw storageError(e, { dir: stateDir, role: 'state', op: 'lock' }) ?? e;
  }
}

function takeLock(stateDir: string): () => void {
  mkdirSync(stateDir, { recursive: true });
  const file = join(stateDir, 'LOCK');
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new StatefnError(
        ErrorCode.STATE_DIR_INVALID,
        `state directory ${stateDir} is in use by process ${pid}; stop it or use another --state-dir`,
      );
    }
  }
  writeFileSync(file, String(process.pid));
  return () => rmSync(file, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
