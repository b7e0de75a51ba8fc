// Proves the shared module.yaml reader (config/yaml_reader.ts, yaml_tree.ts) every kind uses:
// positions as file:line:col, the path of a value, did-you-mean hints, typed field readers and
// their STATEFN_* error codes, independent of any connector.
import { describe, expect, it } from 'vitest';
import type { ModuleReader, ModuleYamlDocument } from '../../api/connector_kind.js';
import type { ConnectorKind } from '../../api/connector_kind.js';
import { didYouMean, moduleKindNames, parseModuleYaml } from '../../config/index.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';

const FILE = 'probe/module.yaml';

/** A kind that hands its document and reader to `probe`, to exercise the reader directly. */
function probeKind(probe: (doc: ModuleYamlDocument, r: ModuleReader) => void): ConnectorKind {
  return {
    kinds: ['test.probe.v1/egress'],
    role: 'egress',
    parse(doc, r) {
      probe(doc, r);
      return { kind: 'probe', source: r.source, id: 'test/probe' };
    },
    build() {},
  };
}

function read(spec: string, probe: (doc: ModuleYamlDocument, r: ModuleReader) => void, env: Record<string, string> = {}): void {
  parseModuleYaml(`kind: test.probe.v1/egress\nspec:\n${spec}`, FILE, env, [probeKind(probe)]);
}

function failure(spec: string, probe: (doc: ModuleYamlDocument, r: ModuleReader) => void): StatefnError {
  try {
    read(spec, probe);
  } catch (e) {
    expect(e).toBeInstanceOf(StatefnError);
    return e as StatefnError;
  }
  throw new Error('expected the reader to fail');
}

describe('the module.yaml reader', () => {
  it('reads typed fields: strings, integers, numbers, durations, sizes, enums, type names, properties', () => {
    read(
      '  name: hello\n  n: "42"\n  ratio: 0.5\n  timeout: 2min\n  size: 4mb\n  mode: fast\n' +
        '  target: a.b/c\n  props:\n    - x.y: 1\n    - z: true\n',
      (doc, r) => {
        const get = (k: string) => doc.spec.entries.get(k)!.value;
        expect(r.string(get('name'), 'spec.name', 'a name')).toBe('hello');
        expect(r.int(get('n'), 'spec.n', 'a count', { min: 0, max: 100 })).toBe(42);
        expect(r.number(get('ratio'), 'spec.ratio', 'a ratio', { min: 0, max: 1 })).toBe(0.5);
        expect(r.duration(get('timeout'), 'spec.timeout', 'a timeout', { min: 0, max: 3_600_000 })).toBe(120_000);
        expect(r.bytes(get('size'), 'spec.size', 'a size', { min: 0, max: 1 << 30 })).toBe(4 * 1024 * 1024);
        expect(r.oneOf(get('mode'), 'spec.mode', 'a mode', ['fast', 'slow'])).toBe('fast');
        expect(r.typeName(get('target'), 'spec.target', 'a type')).toBe('a.b/c');
        expect(r.properties(get('props'), 'spec.props')).toEqual({ 'x.y': '1', z: 'true' });
        expect(doc.source).toEqual({ file: FILE, document: 1, line: 1 });
      },
    );
  });

  it('interpolates ${VAR} and ${VAR:-default} before the readers see the value', () => {
    read(
      '  a: ${HOST}:${PORT:-9092}\n',
      (doc, r) => {
        expect(r.string(doc.spec.entries.get('a')!.value, 'spec.a', 'an address')).toBe('broker:9092');
      },
      { HOST: 'broker' },
    );
  });

  it('words a failure with file:line:col, document, path, expectation and what was found', () => {
    const e = failure('  list:\n    - ok\n    - 17\n', (doc, r) => {
      r.list(doc.spec.entries.get('list')!.value, 'spec.list', 'names', 1).forEach((n, i) =>
        r.typeName(n, r.index('spec.list', i), 'a name'),
      );
    });
    expect(e.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(e.message).toContain(`${FILE}:4:7: document #1 (test.probe.v1/egress, line 1), at spec.list[0]`);
    expect(e.message).toContain('expected a type name \'namespace/name\' (a name), got "ok"');
  });

  it('names the interpolated text when an interpolated value is wrong', () => {
    const e = failure('  n: ${N:-many}\n', (doc, r) => r.int(doc.spec.entries.get('n')!.value, 'spec.n', 'a count', { min: 0, max: 9 }));
    expect(e.message).toContain('got "many" (interpolated from "${N:-many}")');
  });

  it('suggests the nearest key and the nearest enum value', () => {
    const key = failure('  tragets: []\n', (doc, r) => r.onlyKeys(doc.spec, 'spec', ['targets', 'id']));
    expect(key.message).toContain(`${FILE}:3:3`);
    expect(key.message).toContain("unknown key 'tragets'; allowed keys here are: targets, id. Fix: did you mean 'targets'?");
    const value = failure('  mode: fsat\n', (doc, r) =>
      r.oneOf(doc.spec.entries.get('mode')!.value, 'spec.mode', 'a mode', ['fast', 'slow']),
    );
    expect(value.message).toContain("did you mean 'fast'?");
  });

  it('builds paths for plain and unusual keys', () => {
    read('  a: 1\n', (_doc, r) => {
      expect(r.key('spec', 'topics')).toBe('spec.topics');
      expect(r.key('spec.properties', 'bootstrap.servers')).toBe('spec.properties["bootstrap.servers"]');
      expect(r.index('spec.topics', 3)).toBe('spec.topics[3]');
    });
  });

  it('checks bounds of every numeric reader', () => {
    expect(
      failure('  n: 11\n', (doc, r) => r.int(doc.spec.entries.get('n')!.value, 'spec.n', 'a count', { min: 0, max: 10 })).message,
    ).toContain('expected an integer in [0, 10] (a count), got 11');
    expect(
      failure('  d: 2h\n', (doc, r) => r.duration(doc.spec.entries.get('d')!.value, 'spec.d', 'a wait', { min: 0, max: 1000 })).message,
    ).toContain('expected a duration between 0ms and 1000ms');
    expect(
      failure('  b: 2kb\n', (doc, r) => r.bytes(doc.spec.entries.get('b')!.value, 'spec.b', 'a size', { min: 0, max: 1000 })).message,
    ).toContain('expected a byte size between 0 and 1000 bytes');
  });

  it('lets a kind choose the error code of its failure', () => {
    const e = failure('  a: 1\n', (_doc, r) =>
      r.fail('spec.a', undefined, 'not yet', { code: ErrorCode.MODULE_KIND_UNSUPPORTED, fix: 'remove it' }),
    );
    expect(e.code).toBe(ErrorCode.MODULE_KIND_UNSUPPORTED);
    expect(e.message).toBe(`${FILE}: document #1 (test.probe.v1/egress, line 1), at spec.a: not yet. Fix: remove it`);
  });

  it('did-you-mean accepts only near misses', () => {
    expect(didYouMean('ingres', ['ingress', 'egress'])).toBe('ingress');
    expect(didYouMean('something-else', ['ingress', 'egress'])).toBeUndefined();
  });

  it('lists registered kinds: endpoints first, connector kinds, the engine config last; a kind registered twice is an error', () => {
    const kind = probeKind(() => {});
    expect(moduleKindNames([kind])).toEqual([
      'io.statefun.endpoints.v1/http',
      'io.statefun.endpoints.v2/http',
      'test.probe.v1/egress',
      'io.statefn.engine.v1/config',
    ]);
    expect(() => moduleKindNames([kind, kind])).toThrow("module kind 'test.probe.v1/egress' is registered twice");
  });
});

describe('one schema for module.yaml, EngineOptions and --set', () => {
  it('accepts the former limit name flushIntervalMs as checkpointIntervalMs, everywhere', async () => {
    const { resolveOptions } = await import('../../config/engine_options.js');
    const [doc] = parseModuleYaml('kind: io.statefn.engine.v1/config\nspec:\n  flushIntervalMs: 2s\n', FILE, {});
    expect((doc as unknown as { options: unknown }).options).toEqual({ checkpointIntervalMs: 2000 });
    expect(resolveOptions({}, { limits: { flushIntervalMs: 300 } }).limits.checkpointIntervalMs).toBe(300);
    // `--set flushIntervalMs=300` arrives as a string under limits.
    expect(resolveOptions({}, { limits: { flushIntervalMs: '300' } as never }).limits.checkpointIntervalMs).toBe(300);
    expect(() =>
      parseModuleYaml('kind: io.statefn.engine.v1/config\nspec:\n  flushIntervalMs: 2s\n  checkpointIntervalMs: 1s\n', FILE, {}),
    ).toThrow('checkpointIntervalMs is set twice');
  });

  it('bounds workers the same way in module.yaml and EngineOptions', async () => {
    const { resolveOptions } = await import('../../config/engine_options.js');
    const yaml = (w: number, kg: number) => () =>
      parseModuleYaml(`kind: io.statefn.engine.v1/config\nspec:\n  workers: ${w}\n  keyGroups: ${kg}\n`, FILE, {});
    expect(yaml(300, 256)).toThrow('300 workers but only 256 key groups');
    expect(() => resolveOptions({}, { workers: 300 })).toThrow('300 workers but only 256 key groups');
    expect(yaml(300, 1024)).toThrow('expected an integer in [1, 256]');
    expect(() => resolveOptions({}, { workers: 300, limits: { keyGroups: 1024 } })).toThrow('expected an integer in [1, 256]');
  });

  it('parses s3:// locations with one parser for the flags and module.yaml', async () => {
    const { snapshotsFromArgs } = await import('../../cli/args.js');
    const fromFlags = snapshotsFromArgs({ snapshots: 's3://b/p', s3Endpoint: 'http://h:9000', s3Region: undefined });
    const [doc] = parseModuleYaml(
      'kind: io.statefn.engine.v1/config\nspec:\n  snapshots: s3://b/p\n  s3Endpoint: http://h:9000\n',
      FILE,
      {},
    );
    expect((doc as unknown as { options: { snapshots: unknown } }).options.snapshots).toEqual(fromFlags);
    expect(() => snapshotsFromArgs({ snapshots: 'gs://b', s3Endpoint: undefined, s3Region: undefined })).toThrow(
      "--snapshots: expected a directory, s3://bucket/prefix or off, got 'gs://b'",
    );
    expect(() => parseModuleYaml('kind: io.statefn.engine.v1/config\nspec:\n  snapshots: gs://b\n', FILE, {})).toThrow(
      "at spec.snapshots: expected a directory, s3://bucket/prefix or off, got 'gs://b'",
    );
  });
});
