/** Where checkpoints are uploaded: a local directory (the embedded default) or S3. */
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { LocalDirStore } from './local_dir_store.js';
import { S3Store, type S3StoreOptions } from './s3_store.js';
import type { SnapshotStore } from './snapshot_store.js';

export type SnapshotStoreConfig =
  | { type: 'local'; dir: string }
  | ({ type: 's3' } & S3StoreOptions);

export function openSnapshotStore(c: SnapshotStoreConfig): SnapshotStore {
  switch (c.type) {
    case 'local':
      return new LocalDirStore(c.dir);
    case 's3':
      return new S3Store(c);
    default:
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `snapshots.type: expected 'local' or 's3', got ${JSON.stringify((c as { type?: unknown }).type)}`);
  }
}
