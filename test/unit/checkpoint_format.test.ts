// Proves the pure pieces of the checkpoint layout: manifests are validated field by field with
// typed errors, retention decides from the listing as documented, packs split into sorted runs,
// compaction picks the longest chains, and state keys reject corrupt input with typed errors.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, InvariantError, StatefnError } from '../../shared/errors.js';
import { isLayoutObject, manifestKey } from '../../snapshot/checkpoint_keys.js';
import { chooseCompactions, writeCheckpoint } from '../../snapshot/checkpoint_writer.js';
import { encodeObject } from '../../snapshot/checkpoint_objects.js';
import { latestCheckpoint } from '../../snapshot/checkpoint_layout.js';
import { LocalDirStore } from '../../snapshot/local_dir_store.js';
import { chainKeys, packOf, validateManifest, type CheckpointManifest } from '../../snapshot/manifest.js';
import { planPacks, type KeyGroupChanges } from '../../snapshot/pack.js';
import { retentionVerdict } from '../../snapshot/retention.js';
import { SnapshotError, type SnapshotStore } from '../../snapshot/snapshot_store.js';
import { ckptKey, parseStateKey, parseUndoKey, stateKey, undoKey } from '../../state/state_keys.js';

const fakeStore = { describe: () => 'test:store' } as SnapshotStore;

function manifest(over: Partial<CheckpointManifest> = {}): CheckpointManifest {
  return {
    format: 1,
    epoch: 7,
    tag: 'ab12cd34',
    keyGroups: 4,
    chains: [[3, 5], [], [7], [5, 7]],
    tags: { '3': '0000aaaa', '5': '0000bbbb', '7': 'ab12cd34' },
    inflight: 'inflight/000000000007-ab12cd34',
    meta: {},
    packs: { '7': { splits: [3], own: [2] } },
    ...over,
  };
}

function malformedReason(m: unknown): string | undefined {
  try {
    validateManifest(fakeStore, 'manifests/000000000007', m);
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(SnapshotError);
    expect((e as SnapshotError).reason).toBe('malformed');
    expect((e as SnapshotError).key).toBe('manifests/000000000007');
    return (e as SnapshotError).message;
  }
}

describe('manifest validation', () => {
  it('accepts a well-formed manifest and manifests without packs', () => {
    expect(malformedReason(manifest())).toBeUndefined();
    const { packs: _packs, ...plain } = manifest();
    expect(malformedReason(plain)).toBeUndefined();
    expect(malformedReason(manifest({ inflight: null, savepoint: 'sp-1' }))).toBeUndefined();
  });

  it('rejects each bad field with a malformed SnapshotError', () => {
    expect(malformedReason(null)).toMatch(/not a manifest/);
    expect(malformedReason(manifest({ format: 2 as 1 }))).toMatch(/unknown format 2/);
    expect(malformedReason(manifest({ epoch: -1 }))).toMatch(/bad epoch/);
    expect(malformedReason(manifest({ tag: '../x' }))).toMatch(/bad tag/);
    expect(malformedReason(manifest({ keyGroups: 0 }))).toMatch(/bad keyGroups/);
    expect(malformedReason(manifest({ chains: [[3]] }))).toMatch(/chains do not cover/);
    expect(malformedReason(manifest({ chains: [[3], [4], [], []] }))).toMatch(/chain epoch 4 has no tag/);
    expect(malformedReason(manifest({ chains: [[5, 3], [], [], []] }))).toMatch(/out of order/);
    expect(malformedReason(manifest({ epoch: 6, chains: [[7], [], [], []] }))).toMatch(/after the checkpoint/);
    expect(malformedReason(manifest({ tags: { '3': 'ZZ', '5': '0000bbbb', '7': 'ab12cd34' } }))).toMatch(/bad tag of epoch 3/);
    expect(malformedReason(manifest({ inflight: '../../etc/passwd' }))).toMatch(/bad inflight/);
    expect(malformedReason(manifest({ meta: null as unknown as Record<string, unknown> }))).toMatch(/bad meta/);
    expect(malformedReason(manifest({ packs: { '9': { splits: [], own: [] } } }))).toMatch(/packed epoch 9 has no tag/);
    expect(malformedReason(manifest({ packs: { '7': { splits: [4], own: [] } } }))).toMatch(/names key group 4/);
    expect(malformedReason(manifest({ packs: { '7': { splits: [2, 1], own: [] } } }))).toMatch(/not ascending/);
  });

  it('names the objects of a chain, packs included, with the layout prefix', () => {
    const m = manifest();
    expect(packOf(m.packs!['7'], 0)).toBe(0);
    expect(packOf(m.packs!['7'], 2)).toBeUndefined();
    expect(packOf(m.packs!['7'], 3)).toBe(1);
    expect(chainKeys(m, 3, { prefix: '/p/' })).toEqual([
      'p/kg/00003/base-000000000005-0000bbbb',
      'p/packs/delta-000000000007-ab12cd34-001',
    ]);
    expect(chainKeys(m, 2)).toEqual(['kg/00002/base-000000000007-ab12cd34']);
    for (const k of [...chainKeys(m, 0), ...chainKeys(m, 3), m.inflight!]) expect(isLayoutObject(k)).toBe(true);
    expect(isLayoutObject(manifestKey(7))).toBe(false);
    expect(() => chainKeys(m, 4)).toThrow(InvariantError);
  });
});

describe('retention decision', () => {
  it('follows the listing newest first, anchored at the current checkpoint', () => {
    expect(retentionVerdict(9, 7, 0, 3)).toBe('abandoned');
    expect(retentionVerdict(7, 7, 0, 3)).toBe('current');
    expect(retentionVerdict(6, 7, 0, 3)).toBe('stale-listing');
    expect(retentionVerdict(6, 7, 1, 3)).toBe('candidate');
    expect(retentionVerdict(4, 7, 3, 3)).toBe('expired');
    // Without a current checkpoint, the newest `retain` readable manifests are kept.
    expect(retentionVerdict(9, undefined, 0, 2)).toBe('candidate');
    expect(retentionVerdict(8, undefined, 2, 2)).toBe('expired');
  });
});

describe('pack planning and compaction choice', () => {
  const part = (bytes: number): KeyGroupChanges => ({ puts: [[Buffer.alloc(1), Buffer.alloc(bytes)]], deletes: [] });

  it('splits changed key groups into sorted runs of about the byte bound', () => {
    const parts = new Map([
      [5, part(100)],
      [1, part(100)],
      [3, part(100)],
      [9, part(100)],
    ]);
    const plan = planPacks([5, 1, 3, 9], parts, [7, 2], 250);
    // Each part is estimated at 125 bytes (entry, put and value): two fit in 250.
    expect(plan).toEqual({
      index: { splits: [5], own: [2, 7] },
      runs: [
        [1, 3],
        [5, 9],
      ],
    });
    expect(planPacks([], parts, [], 250)).toBeUndefined();
    // One run when everything fits; a key group larger than the bound gets a pack of its own.
    expect(planPacks([1, 3], parts, [], 1 << 20)!.runs).toEqual([[1, 3]]);
    expect(planPacks([1, 3], parts, [], 1)!.runs).toEqual([[1], [3]]);
  });

  it('compacts the longest chains over the bound first, at most the given number', () => {
    const chains = [
      [1, 2, 3, 4],
      [1, 2],
      [1, 2, 3, 4, 5],
      [1, 2, 3],
    ];
    expect([...chooseCompactions(chains, new Map(), 2, 8)].sort()).toEqual([0, 2]);
    expect([...chooseCompactions(chains, new Map([[3, 1]]), 2, 8)].sort()).toEqual([0, 2, 3]);
    expect([...chooseCompactions(chains, new Map([[3, 1]]), 2, 1)]).toEqual([2]);
  });
});

describe('checkpoint objects on disk', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('falls back past a manifest that verifies but is malformed', async () => {
    const d = await mkdtemp(join(tmpdir(), 'statefn-ckpt-fmt-'));
    dirs.push(d);
    const store = new LocalDirStore(d);
    const parts = new Map<number, KeyGroupChanges>([[0, { puts: [[Buffer.from('k'), Buffer.from('v')]], deletes: [] }]]);
    const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const first = await writeCheckpoint(
      store,
      { epoch: 1, keyGroups: 2, parts, inflight: new Map(), meta: {}, previous: null },
      { logger },
    );
    await store.put(manifestKey(2), encodeObject({ ...first.manifest, epoch: 2, chains: [[9]] }));
    const latest = await latestCheckpoint(store, { logger });
    expect(latest?.epoch).toBe(1);
  });
});

describe('state keys', () => {
  it('round-trip and reject corrupt keys with a typed error', () => {
    const k = stateKey(3, 'ns/fn', 'id-1');
    expect(parseStateKey(k)).toEqual({ kg: 3, fnType: 'ns/fn', id: 'id-1' });
    const u = undoKey(3, 12, 'timers', Buffer.from('x'));
    expect(parseUndoKey(u)).toEqual({ kg: 3, epoch: 12, db: 'timers', key: Buffer.from('x') });
    const bad = (f: () => unknown): StatefnError => {
      try {
        f();
      } catch (e) {
        return e as StatefnError;
      }
      throw new Error('expected a throw');
    };
    expect(bad(() => parseStateKey(Buffer.from([0, 3, 65, 66]))).code).toBe(ErrorCode.STATE_INVALID);
    const wrongDb = Buffer.from(u);
    wrongDb[6] = 9;
    expect(bad(() => parseUndoKey(wrongDb)).code).toBe(ErrorCode.STATE_INVALID);
    expect(bad(() => parseUndoKey(Buffer.from([0, 1]))).code).toBe(ErrorCode.STATE_INVALID);
    expect(() => stateKey(0, 'a\0b', 'x')).toThrow(InvariantError);
    expect(() => ckptKey(0, -1, 0)).toThrow(InvariantError);
  });
});
