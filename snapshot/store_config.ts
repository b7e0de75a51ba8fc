/** Where checkpoints are uploaded: a local directory (the embedded default) or S3. */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/** The accepted forms of a snapshot location, for error messages. */
export const SNAPSHOTS_FORMS =
  's3://bucket/prefix (S3), file:///abs/dir or a path with no scheme: prefix (a local directory; write ./name for a ' +
  "relative one that contains ':'), or off";

/**
 * A scheme at the start of a location (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`),
 * at least two characters so that a Windows drive letter (`C:\dir`) stays a path.
 */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]+):/;
/** Characters of an S3 bucket name (including legacy us-east-1 names with capitals and `_`). */
const BUCKET = /^[A-Za-z0-9._-]+$/;

function invalid(text: string, why: string): StatefnError {
  return new StatefnError(
    ErrorCode.CONFIG_INVALID,
    `expected a directory, s3://bucket/prefix or off, got '${text}': ${why}; accepted forms: ${SNAPSHOTS_FORMS}`,
  );
}

/**
 * Where checkpoints are uploaded, as written on the command line or in module.yaml: `off`, an
 * `s3://bucket/prefix` URL, a `file://` URL or a plain path (a directory). The one parser of that
 * text, with an allow-list of schemes: anything else that starts with `scheme:` (`ftp://...`,
 * `s3:/x`, `s3:bucket`, `s3://` without a bucket) is a StatefnError (CONFIG_INVALID) naming the
 * value and the accepted forms, whose message the caller prefixes with where it was written. A
 * location that only looks wrong must never become a local directory of that name: the engine
 * would run with checkpoints that are not where the operator thinks they are.
 */
export function parseSnapshotsLocation(text: string, s3: S3LocationOptions = {}): false | SnapshotStoreConfig {
  if (text === 'off') return false;
  if (text === '') throw invalid(text, 'the location is empty');
  const scheme = SCHEME.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined) return { type: 'local', dir: resolve(text) };
  const rest = text.slice(scheme.length + 1);
  if (scheme === 's3') {
    if (!rest.startsWith('//')) throw invalid(text, `an S3 location starts with s3:// (two slashes): write s3://bucket/prefix`);
    const slash = rest.indexOf('/', 2);
    const bucket = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    if (bucket === '') throw invalid(text, 'no bucket: write s3://bucket/prefix');
    if (!BUCKET.test(bucket)) throw invalid(text, `'${bucket}' is not an S3 bucket name (letters, digits, '.', '-', '_')`);
    const prefix = slash < 0 ? '' : rest.slice(slash + 1);
    const c: SnapshotStoreConfig = { type: 's3', bucket, prefix, region: s3.region ?? S3_REGION_DEFAULT };
    if (s3.endpoint !== undefined) Object.assign(c, { endpoint: s3.endpoint, forcePathStyle: true });
    return c;
  }
  if (scheme === 'file') {
    if (!rest.startsWith('//')) throw invalid(text, 'a file URL is file:///absolute/dir (or write the path without file:)');
    let dir: string;
    try {
      dir = fileURLToPath(new URL(text));
    } catch (e) {
      throw invalid(text, `not a local file URL (${(e as Error).message}); write file:///absolute/dir`);
    }
    return { type: 'local', dir };
  }
  throw invalid(text, `the scheme '${scheme}:' is not supported`);
}

/**
 * EngineOptions.snapshots (or module.yaml's already parsed form) checked like the text form:
 * false, a location string, `{ type: 'local', dir }` whose `dir` follows the same allow-list, or
 * `{ type: 's3', bucket, prefix?, ... }` with a bucket name. `where` names the option in messages.
 */
export function checkSnapshotStoreConfig(value: unknown, where: string): false | SnapshotStoreConfig {
  const fail = (path: string, message: string): never => {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}${path}: ${message}`);
  };
  if (value === false) return false;
  if (typeof value === 'string') {
    try {
      return parseSnapshotsLocation(value);
    } catch (e) {
      return fail('', (e as Error).message);
    }
  }
  if (typeof value !== 'object' || value === null) {
    return fail('', `expected false, { type: 'local', dir } or { type: 's3', bucket, prefix? }, got ${JSON.stringify(value)}`);
  }
  const c = value as Record<string, unknown>;
  if (c.type === 'local') {
    if (typeof c.dir !== 'string') return fail('.dir', `expected a directory, got ${JSON.stringify(c.dir)}`);
    let parsed;
    try {
      parsed = parseSnapshotsLocation(c.dir);
    } catch (e) {
      return fail('.dir', (e as Error).message);
    }
    if (parsed === false || parsed.type !== 'local') {
      return fail(
        '.dir',
        `expected a directory, got '${c.dir}'; for S3 give { type: 's3', bucket, prefix }, to turn snapshots off give false`,
      );
    }
    return { ...c, type: 'local', dir: parsed.dir };
  }
  if (c.type === 's3') {
    if (typeof c.bucket !== 'string' || !BUCKET.test(c.bucket)) {
      return fail('.bucket', `expected an S3 bucket name (letters, digits, '.', '-', '_'), got ${JSON.stringify(c.bucket)}`);
    }
    if (c.prefix !== undefined && typeof c.prefix !== 'string')
      return fail('.prefix', `expected a key prefix, got ${JSON.stringify(c.prefix)}`);
    return c as SnapshotStoreConfig;
  }
  return fail('.type', `expected 'local' or 's3', got ${JSON.stringify(c.type)}`);
}

/** Where snapshots go, for the log line at start: `s3://b/p (endpoint ...)`, `local directory /x`, `off`. */
export function describeSnapshotStore(c: false | SnapshotStoreConfig): string {
  if (c === false) return 'off';
  if (c.type === 'local') return `local directory ${c.dir}`;
  const url = `s3://${c.bucket}${c.prefix ? `/${c.prefix}` : ''}`;
  return c.endpoint !== undefined ? `${url} (endpoint ${c.endpoint})` : `${url} (AWS, region ${c.region ?? S3_REGION_DEFAULT})`;
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
