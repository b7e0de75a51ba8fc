/**
 * statefn's engine-config kind, `io.statefn.engine.v1/config`: engine options (`workers`,
 * `stateDir`, snapshots, any limit of shared/limits.ts) in module.yaml. Values are converted
 * (durations to ms, sizes to bytes) and checked with the same schema as EngineOptions and `--set`
 * (config/engine_schema.ts, `resolveEngineLimits`).
 */
import type { ModuleDescriptor, ModuleReader, ModuleYamlDocument, YamlMap } from '../api/connector_kind.js';
import { StatefnError } from '../shared/errors.js';
import { LIMIT_SPECS, resolveEngineLimits, snapshotRetainMax, type LimitName } from '../shared/limits.js';
import { parseSnapshotsLocation } from '../snapshot/store_config.js';
import { LIMIT_ALIASES, canonicalLimitName, workersProblem } from './engine_schema.js';
import type { ModuleKind } from './module_kind.js';

export const ENGINE_CONFIG_KIND = 'io.statefn.engine.v1/config';

/** `io.statefn.engine.v1/config`: engine options (`workers`, `stateDir`, any limit of limits.ts). */
export interface EngineConfigDocument extends ModuleDescriptor {
  readonly kind: 'engine-config';
  /** Only the options the file sets, already converted (durations to ms, sizes to bytes) and checked. */
  readonly options: Readonly<Record<string, unknown>>;
}

/** Limits whose value is a duration or a byte size, by the unit in their name. */
function limitUnit(name: string): 'ms' | 'bytes' | 'count' {
  if (name.endsWith('Ms')) return 'ms';
  if (/Bytes/.test(name)) return 'bytes';
  return 'count';
}

function readLimit(r: ModuleReader, name: LimitName, entry: { value: Parameters<ModuleReader['int']>[0] }, path: string): number {
  const limit = LIMIT_SPECS[name];
  const unit = limitUnit(name);
  if (unit === 'ms') return r.duration(entry.value, path, limit.description, { min: 0, max: Number.MAX_SAFE_INTEGER });
  if (unit === 'bytes') return r.bytes(entry.value, path, limit.description, { min: 0, max: Number.MAX_SAFE_INTEGER });
  return r.int(entry.value, path, limit.description, { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
}

function parseEngineConfig(r: ModuleReader, spec: YamlMap): EngineConfigDocument {
  const limitNames = Object.keys(LIMIT_SPECS);
  r.onlyKeys(spec, 'spec', [
    'workers',
    'stateDir',
    'snapshots',
    's3Endpoint',
    's3Region',
    'snapshotRetain',
    'checkpointing',
    ...limitNames,
    ...Object.keys(LIMIT_ALIASES),
  ]);
  let s3Endpoint: string | undefined;
  let s3Region: string | undefined;
  let snapshotsEntry: { text: string; path: string; pos: YamlMap['pos'] } | undefined;
  const options: Record<string, unknown> = {};
  const limits: Record<string, number> = {};
  /** Where each limit was written (its key may be a former name). */
  const limitKeys = new Map<string, string>();
  for (const entry of spec.entries.values()) {
    const path = r.key('spec', entry.key);
    if (entry.key === 'workers') {
      options.workers = r.int(entry.value, path, 'worker threads', { min: 1, max: Number.MAX_SAFE_INTEGER });
    } else if (entry.key === 'stateDir') {
      options.stateDir = r.string(entry.value, path, 'the state directory');
    } else if (entry.key === 'snapshots') {
      const text = r.string(entry.value, path, "where checkpoints are uploaded: a directory, 's3://bucket/prefix', or 'off'");
      snapshotsEntry = { text, path, pos: entry.value.pos };
    } else if (entry.key === 's3Endpoint') {
      s3Endpoint = r.string(entry.value, path, 'an S3-compatible endpoint URL');
    } else if (entry.key === 's3Region') {
      s3Region = r.string(entry.value, path, 'an S3 region');
    } else if (entry.key === 'snapshotRetain') {
      options.snapshotRetain = r.int(entry.value, path, 'complete checkpoints kept in the snapshot store', {
        min: 1,
        max: snapshotRetainMax,
      });
    } else if (entry.key === 'checkpointing') {
      const v = r.string(entry.value, path, "'on' (exactly-once egress) or 'off' (egress at once)");
      if (v !== 'on' && v !== 'off') r.fail(path, entry.value.pos, `expected 'on' or 'off', got '${v}'`);
      options.checkpointing = v === 'on';
    } else {
      const name = canonicalLimitName(entry.key, 'module.yaml spec') as LimitName;
      if (limitKeys.has(name)) {
        r.fail(
          path,
          entry.keyPos,
          `${name} is set twice (as ${limitKeys.get(name)} and ${entry.key}); ${Object.keys(LIMIT_ALIASES).join(', ')} are former names`,
          {
            fix: `keep only ${name}`,
          },
        );
      }
      limitKeys.set(name, entry.key);
      limits[name] = readLimit(r, name, entry, path);
    }
  }
  // Bounds and relationships between limits live in limits.ts; re-word its errors with our location.
  let resolved;
  try {
    resolved = resolveEngineLimits(limits, 'spec');
  } catch (err) {
    if (!(err instanceof StatefnError)) throw err;
    const m = /^spec\.([A-Za-z0-9_]+): ([\s\S]*)$/.exec(err.message);
    const key = m ? (limitKeys.get(m[1]!) ?? m[1]!) : undefined;
    const entry = key !== undefined ? spec.entries.get(key) : undefined;
    const message = m ? m[2]! : err.message;
    return r.fail(key !== undefined ? `spec.${key}` : 'spec', entry?.value.pos ?? spec.pos, message, { cause: err });
  }
  if (options.workers !== undefined) {
    const problem = workersProblem(options.workers, resolved.keyGroups);
    if (problem) r.fail('spec.workers', spec.entries.get('workers')?.value.pos, problem.message, { fix: problem.fix });
  }
  if (snapshotsEntry !== undefined) {
    try {
      options.snapshots = parseSnapshotsLocation(snapshotsEntry.text, { endpoint: s3Endpoint, region: s3Region });
    } catch (err) {
      r.fail(snapshotsEntry.path, snapshotsEntry.pos, (err as Error).message, { cause: err });
    }
  }
  const snap = options.snapshots as { type: string } | false | undefined;
  if ((s3Endpoint !== undefined || s3Region !== undefined) && (snap === undefined || snap === false || snap.type !== 's3')) {
    r.fail('spec.s3Endpoint', spec.pos, 's3Endpoint and s3Region need snapshots: s3://bucket/prefix');
  }
  Object.assign(options, limits);
  return { kind: 'engine-config', source: r.source, options };
}

/** `io.statefn.engine.v1/config`: at most one per file. */
export const engineConfigKind: ModuleKind<EngineConfigDocument> = {
  kinds: [ENGINE_CONFIG_KIND],
  parse: (doc: ModuleYamlDocument, r: ModuleReader) => parseEngineConfig(r, doc.spec),
  identity: (_d, doc) => ({
    group: 'engine config',
    key: '',
    what: 'engine config',
    path: 'spec',
    pos: doc.spec.pos,
    fix: `merge the two ${ENGINE_CONFIG_KIND} documents into one`,
  }),
  build: (d, { app }) => {
    app.configure({ ...d.options });
  },
};
