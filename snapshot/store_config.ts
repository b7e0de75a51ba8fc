/** Where checkpoints are uploaded: a local directory (the embedded default) or S3. */
import { resolve } from 'node:path';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { LocalDirStore } from './local_dir_store.js';
import { S3Store, type S3StoreOptions } from './s3_store.js';
import type { SnapshotStore } from './snapshot_store.js';

export type SnapshotStoreConfig = { type: 'local'; dir: string } | ({ type: 's3' } & S3StoreOptions);

/** S3 settings given beside an `s3://` location (flags `--s3-endpoint`/`--s3-region`, or module.yaml keys). */
export interface S3LocationOptions {
  /** An S3-compatible endpoint URL; implies path-style addressing. */
  readonly endpoint?: string | undefined;
  /** Default `us-east-1`. */
  readonly region?: string | undefined;
}

/** The region of an S3 store when none is given. */
export const S3_REGION_DEFAULT = 'us-east-1';

/**
 * Where checkpoints are uploaded, as written on the command line or in module.yaml: `off`, an
 * `s3://bucket/prefix` URL, or a directory. The one parser of that text. Any other `scheme://`
 * is a StatefnError (CONFIG_INVALID) whose message the caller prefixes with where it was written.
 */
export function parseSnapshotsLocation(text: string, s3: S3LocationOptions = {}): false | SnapshotStoreConfig {
  if (text === 'off') return false;
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(text);
  if (m !== null) {
    const c: SnapshotStoreConfig = { type: 's3', bucket: m[1]!, prefix: m[2] ?? '', region: s3.region ?? S3_REGION_DEFAULT };
    if (s3.endpoint !== undefined) Object.assign(c, { endpoint: s3.endpoint, forcePathStyle: true });
    return c;
  }
  if (text.includes('://')) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `expected a directory, s3://bucket/prefix or off, got '${text}'`);
  }
  return { type: 'local', dir: resolve(text) };
}

export function openSnapshotStore(c: SnapshotStoreConfig): SnapshotStore {
  switch (c.type) {
    case 'local':
      return new LocalDirStore(c.dir);
    case 's3':
      return new S3Store(c);
    default:
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `snapshots.type: expected 'local' or 's3', got ${JSON.stringify((c as { type?: unknown }).type)}`,
      );
  }
}
