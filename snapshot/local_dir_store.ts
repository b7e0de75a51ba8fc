/**
 * A snapshot store in a local directory (the embedded default). Keys map to relative paths under
 * the root. Writes are atomic and durable: write a temp file in the target directory, fsync it,
 * rename it over the target, fsync the directory (and any directory we had to create, so the new
 * entries survive a power cut too). A reader therefore sees either the old object or the new one,
 * never a torn write; a crash can leave a temp file behind, which `list` ignores (temp names start
 * with `.`, which keys may not).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { missingObject, openObject, sealObject, storeUnavailable, validateKey, type SnapshotStore } from './snapshot_store.js';

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
      const firstCreated = await mkdir(dir, { recursive: true });
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
