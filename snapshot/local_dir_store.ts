/**
 * A snapshot store in a local directory (the embedded default). Keys map to relative paths under
 * the root. Writes are atomic and durable: write a temp file in the target directory, fsync it,
 * rename it over the target, fsync the directory (and any directory we had to create, so the new
 * entries survive a power cut too). A reader therefore sees either the old object or the new one,
 * never a torn write; a crash can leave a temp file behind, which `list` ignores (temp names start
 * with `.`, which keys may not).
 *
 * A directory that cannot be written (read-only file system, no permission, full) fails with its
 * STATEFN_STORAGE_* error naming the directory and the fix (shared/storage_errors.ts), retriable
 * like any store outage; other I/O errors are the store being unavailable.
 */
import { randomBytes } from 'node:crypto';
import { access, copyFile, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import type { StatefnError } from '../shared/errors.js';
import { storageError } from '../shared/storage_errors.js';
import {
  missingObject,
  openObject,
  sealObject,
  storeUnavailable as unavailable,
  validateKey,
  type SnapshotStore,
} from './snapshot_store.js';

export class LocalDirStore implements SnapshotStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  describe(): string {
    return `dir:${this.root}`;
  }

  private pathOf(key: string): string {
    validateKey(this.describe(), key);
    const p = join(this.root, ...key.split('/'));
    // validateKey already excludes `..` and absolute keys; this is a second line of defence.
    if (relative(this.root, p).startsWith('..')) throw new Error(`unreachable: key ${key} escapes ${this.root}`);
    return p;
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const path = this.pathOf(key);
    const dir = dirname(path);
    try {
      const firstCreated = await mkdirs(dir);
      const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(sealObject(body));
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await rename(tmp, path);
      } catch (e) {
        await unlink(tmp).catch(() => undefined);
        throw e;
      }
      await fsyncDir(dir);
      // New directories must be made durable in their parents too, from the top one created down.
      if (firstCreated !== undefined) {
        for (let d = dir; d !== dirname(firstCreated) && d.length >= this.root.length; d = dirname(d)) await fsyncDir(dirname(d));
      }
    } catch (e) {
      throw storeUnavailable(this.describe(), 'write', key, e);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    const path = this.pathOf(key);
    let sealed: Buffer;
    try {
      sealed = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw missingObject(this.describe(), key, e);
      throw storeUnavailable(this.describe(), 'read', key, e);
    }
    return openObject(this.describe(), key, sealed);
  }

  async list(prefix: string): Promise<string[]> {
    // Walk only the deepest directory that every matching key must be under.
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash < 0 ? '' : prefix.slice(0, slash);
    if (dirKey !== '') validateKey(this.describe(), dirKey);
    const start = dirKey === '' ? this.root : join(this.root, ...dirKey.split('/'));
    const out: string[] = [];
    try {
      await walk(start, dirKey, prefix, out);
    } catch (e) {
      throw storeUnavailable(this.describe(), 'list', prefix, e);
    }
    return out.sort();
  }

  async copy(from: string, to: string): Promise<void> {
    const src = this.pathOf(from);
    const path = this.pathOf(to);
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true });
      const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await copyFile(src, tmp);
        const fh = await open(tmp, 'r+');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, path);
      } catch (e) {
        await unlink(tmp).catch(() => undefined);
        throw e;
      }
      await fsyncDir(dir);
      await fsyncDir(dirname(dir));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && (e as NodeJS.ErrnoException).path === src)
        throw missingObject(this.describe(), from, e);
      throw storeUnavailable(this.describe(), 'copy', from, e);
    }
  }

  async delete(keys: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      const path = this.pathOf(key);
      try {
        await unlink(path);
        dirs.add(dirname(path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw storeUnavailable(this.describe(), 'delete', key, e);
      }
    }
    try {
      for (const d of dirs) await fsyncDir(d);
    } catch (e) {
      throw storeUnavailable(this.describe(), 'delete (sync directory)', '', e);
    }
  }
}

async function walk(dir: string, dirKey: string, prefix: string, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return;
    throw e;
  }
  for (const ent of entries) {
    if (ent.name.startsWith('.')) continue; // temp files of interrupted writes
    const key = dirKey === '' ? ent.name : `${dirKey}/${ent.name}`;
    if (ent.isDirectory()) {
      // Descend only where keys below can still match the prefix.
      if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(join(dir, ent.name), key, prefix, out);
    } else if (ent.isFile() && key.startsWith(prefix)) {
      out.push(key);
    }
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * The error to throw for a failed file operation (the store's `describe()` is `dir:<root>`): a
 * file-system condition of the directory as its STATEFN_STORAGE_* error, anything else as the
 * store being unavailable (retried).
 */
function storeUnavailable(store: string, op: string, key: string, cause: unknown): StatefnError {
  return storageError(cause, { dir: store.replace(/^dir:/, ''), role: 'snapshots', op }) ?? unavailable(store, op, key, cause);
}

/**
 * `mkdir -p`, returning the first directory created. Node reports a recursive mkdir that the file
 * system refuses (EROFS) as ENOENT; a plain mkdir of the first missing directory gives the real
 * reason, so that is what is thrown then.
 */
async function mkdirs(dir: string): Promise<string | undefined> {
  try {
    return await mkdir(dir, { recursive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    let missing = dir;
    while (dirname(missing) !== missing && !(await exists(dirname(missing)))) missing = dirname(missing);
    let created: string | undefined = missing;
    await mkdir(missing).catch((m: NodeJS.ErrnoException) => {
      if (m.code !== 'EEXIST') throw m;
      created = undefined; // made by someone else meanwhile
    });
    const more = await mkdir(dir, { recursive: true });
    return created ?? more;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
