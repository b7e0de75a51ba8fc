/**
 * File-system conditions of the directories statefn writes (the state directory, a local
 * snapshot directory) as typed errors with stable codes: a read-only file system (EROFS), no
 * permission (EACCES, EPERM), no space (ENOSPC, EDQUOT). Each message names the directory, the
 * file and the fix; the errno error is kept as `cause`. Anything else is left to the caller.
 */
import { ErrorCode, StatefnError } from './errors.js';

/** Which directory: it decides the wording and the setting the fix names. */
export type StorageRole = 'state' | 'snapshots';

export interface StorageWhere {
  /** The directory the operator configured (the state directory, the snapshot directory). */
  readonly dir: string;
  readonly role: StorageRole;
  /** What was being done, as a verb: `write`, `read`, `list`, `delete`. */
  readonly op: string;
}

const ROLES: Record<StorageRole, { subject: string; setting: string }> = {
  state: { subject: 'the state directory', setting: 'stateDir (--state-dir)' },
  snapshots: { subject: 'the local snapshot directory', setting: 'snapshots (--snapshots)' },
};

/**
 * The typed error for `err` when it is one of the file-system conditions above, else undefined.
 * Retriable: an operator can remount, fix permissions or free space while the engine waits.
 */
export function storageError(err: unknown, where: StorageWhere): StatefnError | undefined {
  if (!(err instanceof Error)) return undefined;
  const errno = (err as NodeJS.ErrnoException).code;
  const file = (err as NodeJS.ErrnoException).path;
  const { subject, setting } = ROLES[where.role];
  const what = `${errno}: could not ${where.op} ${file ?? where.dir}`;
  const make = (code: ErrorCode, message: string): StatefnError =>
    new StatefnError(code, `${subject} ${where.dir} ${message}`, { cause: err, retriable: true });
  switch (errno) {
    case 'EROFS':
      return make(
        ErrorCode.STORAGE_READ_ONLY,
        `is on a read-only file system (${what}): remount it read-write, or point ${setting} at a directory on a ` +
          `writable file system (a file system remounted read-only after disk errors needs its disk checked first)`,
      );
    case 'EACCES':
    case 'EPERM': {
      const uid = process.getuid?.();
      const who = uid === undefined ? 'this process' : `this process (uid ${uid})`;
      return make(
        ErrorCode.STORAGE_PERMISSION_DENIED,
        `may not be used by ${who} (${what}): give it read and write access to the directory (chown or chmod), or ` +
          `point ${setting} at a directory it owns`,
      );
    }
    case 'ENOSPC':
    case 'EDQUOT':
      return make(
        ErrorCode.STORAGE_FULL,
        `is on a full file system (${what}): free space (or raise the quota), or point ${setting} at a larger file system`,
      );
    default:
      return undefined;
  }
}
