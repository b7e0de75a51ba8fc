/**
 * The local record of the last complete checkpoint: `<stateDir>/checkpoint.json`. Written only
 * after every worker's part of the epoch is durable, atomically (temp file, fsync, rename, fsync
 * of the directory): its presence with epoch n is what makes checkpoint n complete. Recovery
 * rolls every worker back to it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { storageError } from '../shared/storage_errors.js';

export interface CheckpointRecord {
  version: 1;
  epoch: number;
  /** Ingress positions the epoch covers, by ingress id. */
  positions: Record<string, unknown>;
  completedAt: string;
  /** True when written by a clean stop. */
  clean: boolean;
}

export function checkpointFile(stateDir: string): string {
  return join(stateDir, 'checkpoint.json');
}

export function readCheckpointRecord(stateDir: string): CheckpointRecord | undefined {
  const file = checkpointFile(stateDir);
  if (!existsSync(file)) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const why = `${file} cannot be read (${(e as Error).message}); it names the last complete checkpoint`;
    throw storageError(e, { dir: stateDir, role: 'state', op: 'read' }) ?? new StatefnError(ErrorCode.STATE_DIR_INVALID, why, { cause: e });
  }
  let v: Partial<CheckpointRecord>;
  try {
    v = JSON.parse(text) as Partial<CheckpointRecord>;
  } catch (e) {
    throw new StatefnError(
      ErrorCode.STATE_DIR_INVALID,
      `${file} is not valid JSON (${(e as Error).message}); it names the last complete checkpoint: restore it from a ` +
        `backup, or move the state directory away to start empty`,
    );
  }
  if (v.version !== 1 || !Number.isInteger(v.epoch) || typeof v.positions !== 'object' || v.positions === null) {
    throw new StatefnError(
      ErrorCode.STATE_DIR_INVALID,
      `${file} is not a statefn checkpoint record (expected {version: 1, epoch, positions})`,
    );
  }
  return v as CheckpointRecord;
}

/**
 * Write the record atomically and durably. A state directory that cannot be written (read-only
 * file system, no permission, full) throws its STATEFN_STORAGE_* error naming the directory and
 * the fix.
 */
export async function writeCheckpointRecord(stateDir: string, record: CheckpointRecord): Promise<void> {
  const file = checkpointFile(stateDir);
  const tmp = `${file}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(record, null, 2));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    const dir = await open(dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (e) {
    throw storageError(e, { dir: stateDir, role: 'state', op: 'write' }) ?? e;
  }
}
