// Proves the local directory snapshot store round-trips, writes atomically, verifies checksums on
// every read, names missing/corrupt objects, and lists/deletes many keys.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalDirStore } from '../../snapshot/local_dir_store.js';
import { snapshotStoreConformance } from '../fixtures/snapshot_store_conformance.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function freshStore(): Promise<LocalDirStore> {
  const d = await mkdtemp(join(tmpdir(), 'statefn-snap-'));
  dirs.push(d);
  return new LocalDirStore(join(d, 'store'));
}

snapshotStoreConformance('LocalDirStore', {
  make: freshStore,
  overwriteRaw: async (store, key, bytes) => {
    await writeFile(join((store as LocalDirStore).root, ...key.split('/')), bytes);
  },
});

describe('LocalDirStore specifics', () => {
  it('leaves no temp files after writes, and ignores stray temp files of an interrupted write', async () => {
    const store = await freshStore();
    await store.put('kg/00003/base-1', Buffer.from('x'));
    await store.put('kg/00003/base-1', Buffer.from('y'));
    expect(await readdir(join(store.root, 'kg', '00003'))).toEqual(['base-1']);
    await writeFile(join(store.root, 'kg', '00003', '.abc.tmp'), 'half written');
    expect(await store.list('kg/')).toEqual(['kg/00003/base-1']);
  });
});
