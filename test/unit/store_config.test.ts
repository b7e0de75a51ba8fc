// Snapshot locations are validated against a scheme allow-list, the same way for the
// `--snapshots` flag, module.yaml's engine config and EngineOptions.snapshots: `s3://bucket/prefix`,
// `file://` or a plain path, or `off`; anything else that looks like a URL (`ftp://`, `s3:/x`,
// `s3:bucket`, `s3://` with no bucket) is a CONFIG_INVALID error naming the setting, the value and
// the accepted forms, instead of silently becoming a local directory of that name.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { snapshotsFromArgs } from '../../cli/args.js';
import { parseModuleYaml } from '../../config/index.js';
import { resolveOptions } from '../../config/engine_options.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { describeSnapshotStore, parseSnapshotsLocation } from '../../snapshot/store_config.js';

/** The StatefnError `f` throws (fails the test when it throws nothing or something else). */
function thrown(f: () => unknown): StatefnError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(StatefnError);
    return e as StatefnError;
  }
  throw new Error('expected an error, got none');
}

const MALFORMED = [
  's3:/bucket/x',
  's3:bucket',
  's3:bucket/x',
  's3://',
  's3:///x',
  's3://bucket with space/x',
  'ftp://host/x',
  'http://127.0.0.1:9000/bucket',
  'gs://bucket/x',
  'azure:container',
  'file:relative/dir',
  'file://otherhost/x',
];

const yamlWith = (v: string): string => `kind: io.statefn.engine.v1/config\nspec:\n  snapshots: '${v}'\n`;

describe('snapshot locations: the scheme allow-list', () => {
  it('accepts s3://bucket/prefix, file://, plain absolute and relative paths, and off', () => {
    expect(parseSnapshotsLocation('off')).toBe(false);
    expect(parseSnapshotsLocation('s3://my-bucket/apps/fraud')).toEqual({
      type: 's3',
      bucket: 'my-bucket',
      prefix: 'apps/fraud',
      region: 'us-east-1',
    });
    expect(parseSnapshotsLocation('s3://b')).toMatchObject({ type: 's3', bucket: 'b', prefix: '' });
    expect(parseSnapshotsLocation('S3://b/p')).toMatchObject({ type: 's3', bucket: 'b', prefix: 'p' });
    expect(parseSnapshotsLocation('file:///var/statefn/snap')).toEqual({ type: 'local', dir: '/var/statefn/snap' });
    expect(parseSnapshotsLocation('file://localhost/var/snap')).toEqual({ type: 'local', dir: '/var/snap' });
    expect(parseSnapshotsLocation('/var/statefn/snap')).toEqual({ type: 'local', dir: '/var/statefn/snap' });
    expect(parseSnapshotsLocation('snap/dir')).toEqual({ type: 'local', dir: resolve('snap/dir') });
    // A colon later in a path is no scheme.
    expect(parseSnapshotsLocation('./backup:2024')).toEqual({ type: 'local', dir: resolve('backup:2024') });
    expect(parseSnapshotsLocation('/data/a:b')).toEqual({ type: 'local', dir: '/data/a:b' });
  });

  it.each(MALFORMED)('rejects %s with CONFIG_INVALID naming the value and the accepted forms', (v) => {
    const e = thrown(() => parseSnapshotsLocation(v));
    expect(e.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(e.message).toContain(`got '${v}'`);
    expect(e.message).toContain('s3://bucket/prefix');
    expect(e.message).toContain('file:///');
  });

  it('says what is wrong with an s3: location', () => {
    expect(thrown(() => parseSnapshotsLocation('s3:/bucket/x')).message).toMatch(/write s3:\/\/bucket\/prefix/);
    expect(thrown(() => parseSnapshotsLocation('s3://')).message).toMatch(/no bucket/);
    expect(thrown(() => parseSnapshotsLocation('ftp://h/x')).message).toMatch(/scheme 'ftp:' is not supported/);
  });

  it('--snapshots names the flag', () => {
    for (const v of ['s3:/bucket/x', 'ftp://h/x', 's3://']) {
      const e = thrown(() => snapshotsFromArgs({ snapshots: v, s3Endpoint: undefined, s3Region: undefined }));
      expect(e.code).toBe(ErrorCode.CONFIG_INVALID);
      expect(e.message).toContain(`--snapshots: expected a directory, s3://bucket/prefix or off, got '${v}'`);
    }
  });

  it('module.yaml names spec.snapshots', () => {
    for (const v of ['s3:/bucket/x', 'ftp://h/x', 's3:bucket']) {
      const e = thrown(() => parseModuleYaml(yamlWith(v), 'module.yaml', {}));
      expect(e.code).toBe(ErrorCode.CONFIG_INVALID);
      expect(e.message).toContain('spec.snapshots');
      expect(e.message).toContain(`got '${v}'`);
    }
    const [doc] = parseModuleYaml(yamlWith('file:///srv/snap'), 'module.yaml', {});
    expect((doc as unknown as { options: { snapshots: unknown } }).options.snapshots).toEqual({ type: 'local', dir: '/srv/snap' });
  });

  it('EngineOptions.snapshots is checked too, naming options.snapshots', () => {
    const dir = (d: string) => resolveOptions({}, { workers: 1, snapshots: { type: 'local', dir: d } }).snapshots;
    expect(dir('/srv/snap')).toEqual({ type: 'local', dir: '/srv/snap' });
    expect(dir('rel/snap')).toEqual({ type: 'local', dir: resolve('rel/snap') });
    expect(dir('file:///srv/snap')).toEqual({ type: 'local', dir: '/srv/snap' });
    for (const d of ['s3:/bucket/x', 'ftp://h/x', 's3://b/p']) {
      const e = thrown(() => dir(d));
      expect(e.code).toBe(ErrorCode.CONFIG_INVALID);
      expect(e.message).toContain('options.snapshots.dir');
      expect(e.message).toContain(`'${d}'`);
    }
    const s3 = (o: Record<string, unknown>) => () => resolveOptions({}, { workers: 1, snapshots: { type: 's3', ...o } as never });
    expect(s3({ bucket: 'b', prefix: 'p' })()).toMatchObject({ snapshots: { type: 's3', bucket: 'b', prefix: 'p' } });
    expect(thrown(s3({ bucket: '' })).message).toContain('options.snapshots.bucket');
    expect(thrown(s3({ bucket: 's3://b' })).message).toContain('options.snapshots.bucket');
    expect(thrown(s3({ bucket: 'b', prefix: 7 })).message).toContain('options.snapshots.prefix');
    const other = thrown(() => resolveOptions({}, { workers: 1, snapshots: { type: 'gcs', dir: '/x' } as never }));
    expect(other.message).toContain('options.snapshots.type');
    const text = thrown(() => resolveOptions({}, { workers: 1, snapshots: 's3:/bucket/x' as never }));
    expect(text.message).toContain("options.snapshots: expected a directory, s3://bucket/prefix or off, got 's3:/bucket/x'");
    // The location string itself is accepted where it is valid (module.yaml's form).
    expect(resolveOptions({}, { workers: 1, snapshots: 's3://b/p' as never }).snapshots).toMatchObject({ type: 's3', bucket: 'b' });
  });

  it('describes where snapshots go, for the start log line', () => {
    expect(describeSnapshotStore(false)).toBe('off');
    expect(describeSnapshotStore({ type: 'local', dir: '/srv/snap' })).toBe('local directory /srv/snap');
    expect(describeSnapshotStore({ type: 's3', bucket: 'b', prefix: 'p', endpoint: 'http://h:9000' })).toBe(
      's3://b/p (endpoint http://h:9000)',
    );
    expect(describeSnapshotStore({ type: 's3', bucket: 'b', region: 'eu-west-1' })).toBe('s3://b (AWS, region eu-west-1)');
  });
});
