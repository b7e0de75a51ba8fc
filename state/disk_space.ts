/**
 * Free space of the state directory. LMDB does not survive a write that runs out of space (the
 * process aborts inside the native library, seen as "corrupted size vs. prev_size"), so the
 * engine writes a checkpoint (and a clean stop's final one) only while the state directory has at
 * least `stateDirFreeBytesMin` free; below it the write waits (or the stop skips it) with a
 * STATEFN_STORAGE_FULL error naming the directory and the fix.
 */
import { statfsSync } from 'node:fs';
import { ErrorCode, StatefnError } from '../shared/errors.js';

const MiB = 1024 * 1024;

/** The error to report when `dir` has less than `minBytes` free, else undefined (also when it cannot be measured). */
export function lowDiskError(dir: string, minBytes: number): StatefnError | undefined {
  if (minBytes <= 0) return undefined;
  let free: number;
  try {
    const st = statfsSync(dir);
    free = st.bavail * st.bsize;
  } catch {
    return undefined; // not measurable here: the write itself reports what goes wrong
  }
  if (free >= minBytes) return undefined;
  return new StatefnError(
    ErrorCode.STORAGE_FULL,
    `the state directory ${dir} has ${(free / MiB).toFixed(1)} MiB free, less than stateDirFreeBytesMin ` +
      `(${(minBytes / MiB).toFixed(1)} MiB): checkpoints wait, so durable replies wait too; free space on its file ` +
      `system, or point stateDir (--state-dir) at a larger one`,
    { retriable: true },
  );
}
