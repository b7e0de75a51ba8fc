// Proves the incremental checkpoint format on a real S3-compatible server: delta sizes follow the
// change not the state, compaction folds chains, retention keeps only referenced objects and
// savepoints, corrupt or missing objects fall back to the previous checkpoint, and restores over
// any key-group split give exactly the state.
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chainKeys,
  collectGarbage,
  deleteSavepoint,
  latestCheckpoint,
  listSavepoints,
  manifestKey,
  readInflight,
  readSavepoint,
  referencedKeys,
  restoreKeyGroups,
  writeCheckpoint,
  writeSavepoint,
  type CheckpointManifest,
  type KeyGroupChanges,
  type WriteOptions,
} from '../../snapshot/checkpoint_layout.js';
import type { S3Store } from '../../snapshot/s3_store.js';
import { SnapshotError } from '../../snapshot/snapshot_store.js';
import { kgOfKey, stateKey } from '../../state/state_keys.js';
import { freshBucket, rawS3Client, s3StoreFor } from '../fixtures/s3_test_env.js';
import type { Logger } from '../../api/connector_api.js';

const KG = 16;
const raw = rawS3Client();
let bucket = '';
const stores: S3Store[] = [];
let n = 0;
beforeAll(async () => {
  bucket = await freshBucket(raw, 'ckpt');
});
afterAll(() => {
  for (const s of stores) s.destroy();
  raw.destroy();
});

function freshStore(): S3Store {
  const s = s3StoreFor(bucket, `t${n++}`);
  stores.push(s);
  return s;
}

class WarnLog implements Logger {
  readonly warnings: string[] = [];
  info(): void {}
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.warnings.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  }
  error(msg: string): void {
    throw new Error(`unexpected error log: ${msg}`);
  }
}

/** The expected full state: latin1(key) -> value. Changes are applied to it and recorded per key group. */
class Model {
  readonly state = new Map<string, Buffer>();
  private parts = new Map<number, KeyGroupChanges>();

  private part(kg: number): KeyGroupChanges {
    let p = this.parts.get(kg);
    if (p === undefined) this.parts.set(kg, (p = { puts: [], deletes: [] }));
    return p;
  }
  put(id: number, value: string): void {
    const key = stateKey(id % KG, 'test/counter', `id-${id}`);
    this.state.set(key.toString('latin1'), Buffer.from(value));
    this.part(id % KG).puts.push([key, Buffer.from(value)]);
  }
  del(id: number): void {
    const key = stateKey(id % KG, 'test/counter', `id-${id}`);
    this.state.delete(key.toString('latin1'));
    this.part(id % KG).deletes.push(key);
  }
  /** The changes since the last take. */
  take(): Map<number, KeyGroupChanges> {
    const p = this.parts;
    this.parts = new Map();
    return p;
  }
  copy(): Map<string, Buffer> {
    return new Map(this.state);
  }
}

async function restoreAll(store: S3Store, m: CheckpointManifest, splits: number[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (let i = 0; i + 1 < splits.length; i++) {
    const lo = splits[i]!;
    const hi = splits[i + 1]!;
    await restoreKeyGroups(store, m, lo, hi, (k, v) => {
      const kg = kgOfKey(k);
      expect(kg >= lo && kg < hi).toBe(true);
      const s = Buffer.from(k).toString('latin1');
      expect(out.has(s)).toBe(false); // never twice, across the whole union
      out.set(s, Buffer.from(v));
    });
  }
  return out;
}

function expectSameState(got: Map<string, Buffer>, want: Map<string, Buffer>): void {
  expect(got.size).toBe(want.size);
  for (const [k, v] of want) expect(got.get(k)?.toString()).toBe(v.toString());
}

/** Object keys of the layout's data (not manifests or savepoints). */
const isDataObject = (k: string): boolean => k.startsWith('kg/') || k.startsWith('packs/') || k.startsWith('inflight/');

// Every test runs with the deltas packed (the default: one object for a whole small checkpoint),
// packed into many small packs (key groups split across packs), and one object per key group.
describe.each([
  { mode: 'packed deltas', packBytesMax: undefined },
  { mode: 'small packs', packBytesMax: 1500 },
  { mode: 'one object per key group', packBytesMax: 0 },
])('checkpoint layout ($mode)', ({ packBytesMax }) => {
  const perKeyGroup = packBytesMax === 0;
  async function checkpoint(
    store: S3Store,
    model: Model,
    epoch: number,
    opts: WriteOptions,
    meta: Record<string, unknown> = {},
    inflight = new Map<number, Uint8Array[]>(),
  ) {
    return writeCheckpoint(
      store,
      { epoch, keyGroups: KG, parts: model.take(), inflight, meta },
      { ...opts, ...(packBytesMax === undefined ? {} : { packBytesMax }) },
    );
  }

  it('writes deltas proportional to the change: 10^4 keys, then 100 changed keys', async () => {
    const store = freshStore();
    const model = new Model();
    for (let id = 0; id < 10_000; id++) model.put(id, `value-${id}-${'x'.repeat(20)}`);
    const first = await checkpoint(store, model, 1, {}, { offsets: { 'in/0': 10_000 } });
    const firstData = first.written.filter((w) => isDataObject(w.key));
    const baseBytes = firstData.reduce((s, w) => s + w.bytes, 0);
    expect(baseBytes).toBeGreaterThan(10_000 * 40); // each entry is ~20 B key + ~35 B value
    if (perKeyGroup) expect(firstData.filter((w) => w.key.includes('/base-'))).toHaveLength(KG);
    // Packed: an empty key group starts with a packed delta; ~600 KB fit one default pack.
    else if (packBytesMax === undefined)
      expect(firstData.map((w) => w.key)).toEqual([expect.stringMatching(/^packs\/delta-000000000001-[0-9a-f]{8}-000$/)]);
    else expect(firstData.length).toBeGreaterThan(KG / 2); // 1500-byte packs: about one per key group

    for (let i = 0; i < 90; i++) model.put(i * 97, `changed-${i}`); // 90 updates
    for (let i = 0; i < 10; i++) model.del(5_000 + i); // 10 deletes
    const second = await checkpoint(store, model, 2, {}, { offsets: { 'in/0': 10_100 } });
    const deltas = second.written.filter((w) => isDataObject(w.key));
    expect(second.written.filter((w) => w.key.includes('/base-'))).toHaveLength(0);
    const deltaBytes = deltas.reduce((s, w) => s + w.bytes, 0);
    // 100 changes of at most ~45 B each plus a few bytes of framing per object and key group.
    expect(deltaBytes).toBeLessThan(100 * 45 + deltas.length * 32 + KG * 8);
    expect(deltaBytes * 50).toBeLessThan(baseBytes);
    // The sizes reported are what the store holds (the body; the store adds a 36 B header).
    for (const w of deltas) expect((await store.get(w.key)).byteLength).toBe(w.bytes);
    // Unchanged key groups wrote nothing; packed, the whole checkpoint is one object (4,500 B fit 3 small packs).
    const changedKgs = new Set([...Array(90).keys()].map((i) => (i * 97) % KG).concat([...Array(10).keys()].map((i) => (5_000 + i) % KG)));
    if (perKeyGroup) expect(deltas).toHaveLength(changedKgs.size);
    else if (packBytesMax === undefined) expect(deltas).toHaveLength(1);
    else expect(deltas.length).toBeLessThanOrEqual(4);
    const m2 = second.manifest;
    for (let kg = 0; kg < KG; kg++) expect(m2.chains[kg]).toEqual(changedKgs.has(kg) ? [1, 2] : [1]);

    const latest = await latestCheckpoint(store, { logger: new WarnLog() });
    expect(latest?.epoch).toBe(2);
    expect(latest?.meta).toEqual({ offsets: { 'in/0': 10_100 } });
    expectSameState(await restoreAll(store, latest!, [0, KG]), model.state);
  });

  it('folds long chains into a new base, a bounded number of key groups per checkpoint', async () => {
    const store = freshStore();
    const model = new Model();
    const opts: WriteOptions = { compactAfterDeltas: 3, compactKeyGroupsPerCheckpointMax: 1 };
    // Key groups 0 and 1 change in every epoch; key group 2 only once.
    let epoch = 0;
    const step = async () => {
      epoch++;
      model.put(epoch * KG, `e${epoch}`); // kg 0: a new key each time
      model.put(1, `e${epoch}`); // kg 1: the same key overwritten
      if (epoch === 1) model.put(2, 'once');
      if (epoch === 3) model.del(0);
      return checkpoint(store, model, epoch, opts);
    };
    for (let i = 0; i < 4; i++) {
      const r = await step();
      expect(r.compacted).toEqual([]);
    }
    // After epoch 4: chains of kg 0 and 1 are base + 3 deltas. Epoch 5 would make 4 deltas.
    const r5 = await step();
    expect(r5.compacted).toHaveLength(1);
    const r6 = await step();
    expect(r6.compacted).toHaveLength(1);
    expect(new Set([...r5.compacted, ...r6.compacted])).toEqual(new Set([0, 1]));
    const m = r6.manifest;
    const folded = r5.compacted[0]!;
    // The key group folded at 5 got one more delta at 6; the other was folded at 6.
    expect(m.chains[folded]).toEqual([5, 6]);
    expect(m.chains[r6.compacted[0]!]).toEqual([6]);
    expect(m.chains[2]).toEqual([1]);
    expect(chainKeys(m, r6.compacted[0]!)[0]).toMatch(/kg\/0000[01]\/base-000000000006-[0-9a-f]{8}$/);
    expectSameState(await restoreAll(store, m, [0, KG]), model.state);
  });

  it('retention keeps the last K checkpoints and savepoints, and deletes every unreferenced object', async () => {
    const store = freshStore();
    const model = new Model();
    const log = new WarnLog();
    const opts: WriteOptions = { retain: 2, compactAfterDeltas: 2, sweepEveryCheckpoints: 0, logger: log };
    let saved: Map<string, Buffer> | undefined;
    for (let epoch = 1; epoch <= 8; epoch++) {
      for (let i = 0; i < 20; i++) model.put((epoch * 7 + i) % 50, `v${epoch}-${i}`);
      if (epoch % 3 === 0) model.del(epoch);
      const inflight = new Map([[epoch % KG, [Buffer.from(`msg-${epoch}`)]]]);
      const r = await checkpoint(store, model, epoch, opts, { epoch }, inflight);
      expect(r.gcError).toBeUndefined();
      if (epoch === 2) {
        await writeSavepoint(store, 'before-upgrade', r.manifest);
        saved = model.copy();
      }
    }
    expect(await listSavepoints(store)).toEqual(['before-upgrade']);
    const m7 = await latestCheckpoint(store, { beforeEpoch: 8 });
    const m8 = await latestCheckpoint(store);
    expect([m7?.epoch, m8?.epoch]).toEqual([7, 8]);
    const sp = await readSavepoint(store, 'before-upgrade');
    expect(sp.epoch).toBe(2);

    const all = await store.list('');
    const manifests = all.filter((k) => k.startsWith('manifests/'));
    expect(manifests).toEqual([manifestKey(7), manifestKey(8)]);
    const referenced = new Set([...referencedKeys(m7!), ...referencedKeys(m8!), ...referencedKeys(sp)]);
    const objects = all.filter(isDataObject);
    expect(new Set(objects)).toEqual(referenced);

    // The savepoint still restores exactly the state of epoch 2, with its in-flight message.
    expectSameState(await restoreAll(store, sp, [0, KG]), saved!);
    const msgs: string[] = [];
    await readInflight(store, sp, 0, KG, (kg, m) => msgs.push(`${kg}:${Buffer.from(m).toString()}`));
    expect(msgs).toEqual(['2:msg-2']);

    // An orphan of a crashed attempt, and the savepoint dropped: the sweep leaves only 7 and 8's objects.
    await store.put('kg/00003/delta-000000000005-deadbeef', Buffer.from('orphan'));
    await store.put('packs/delta-000000000005-deadbeef-000', Buffer.from('orphan'));
    await deleteSavepoint(store, 'before-upgrade');
    await collectGarbage(store, { retain: 2, sweep: true, logger: log });
    const after = (await store.list('')).filter((k) => !k.startsWith('manifests/'));
    expect(new Set(after)).toEqual(new Set([...referencedKeys(m7!), ...referencedKeys(m8!)]));
    expectSameState(await restoreAll(store, m8!, [0, KG]), model.state);
    expect(log.warnings).toEqual([]);
  });

  it('falls back to the previous checkpoint when the newest manifest or one of its objects is corrupt or missing', async () => {
    const store = freshStore();
    const model = new Model();
    const states: Map<string, Buffer>[] = [];
    const manifests: CheckpointManifest[] = [];
    for (let epoch = 1; epoch <= 4; epoch++) {
      for (let i = 0; i < 10; i++) model.put(epoch * 100 + i, `v${epoch}`);
      manifests.push((await checkpoint(store, model, epoch, { retain: 10 })).manifest);
      states.push(model.copy());
    }
    const rawKey = (k: string) => `${store.prefix}/${k}`;

    // 1. The newest manifest is corrupt (overwritten with bytes that are not a sealed object).
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: rawKey(manifestKey(4)), Body: 'not a manifest' }));
    let log = new WarnLog();
    let latest = await latestCheckpoint(store, { logger: log });
    expect(latest?.epoch).toBe(3);
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toContain(manifestKey(4));
    expect(log.warnings[0]).toContain('corrupt');

    // 2. A delta that only checkpoint 3 references is corrupt (bad bytes): fall back to 2.
    const delta3 = referencedKeys(manifests[2]!).find((k) => k.includes('delta-000000000003'))!;
    expect(delta3).toBeDefined();
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: rawKey(delta3), Body: Buffer.alloc(80, 7) }));
    log = new WarnLog();
    latest = await latestCheckpoint(store, { logger: log });
    expect(latest?.epoch).toBe(2);
    expect(log.warnings.some((w) => w.includes(delta3) && w.includes('corrupt'))).toBe(true);
    expectSameState(await restoreAll(store, latest!, [0, KG]), states[1]!);
    // Restoring the damaged checkpoint directly is an error naming the object.
    const err = await restoreAll(store, manifests[2]!, [0, KG]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SnapshotError);
    expect((err as SnapshotError).key).toBe(delta3);

    // 3. An object of checkpoint 2 is missing: fall back to 1.
    const delta2 = referencedKeys(manifests[1]!).find((k) => k.includes('delta-000000000002'))!;
    await store.delete([delta2]);
    log = new WarnLog();
    latest = await latestCheckpoint(store, { logger: log });
    expect(latest?.epoch).toBe(1);
    expect(log.warnings.some((w) => w.includes(delta2) && w.includes('missing'))).toBe(true);
    expectSameState(await restoreAll(store, latest!, [0, KG]), states[0]!);

    // 4. Regression (retention once kept the abandoned manifest 3 and deleted the new 2): the next
    // checkpoint builds on the restored one. The abandoned timeline (3, 4) is moved to quarantine,
    // never deleted (an operator may repair it), and the objects it names stay: manifest 4 is
    // unreadable, so retention deletes no object at all while it is quarantined.
    log = new WarnLog();
    const r = await writeCheckpoint(
      store,
      { epoch: 2, keyGroups: KG, parts: new Map(), inflight: new Map(), meta: {}, previous: latest },
      { retain: 1, sweepEveryCheckpoints: 1, logger: log },
    );
    expect(r.gcError).toBeUndefined();
    expect(log.warnings.filter((w) => w.includes('moved to') && w.includes('epochs 4, 3'))).toHaveLength(1);
    expect(await store.list('manifests/')).toEqual([manifestKey(2)]);
    const quarantined = await store.list('quarantine/');
    expect(quarantined.map((k) => k.replace(/^quarantine\/[^/]+\//, ''))).toEqual([manifestKey(3), manifestKey(4)]);
    const objects = new Set([...(await store.list('kg/')), ...(await store.list('packs/'))]);
    // (delta2, which manifest 3 also names, was deleted in step 3)
    for (const k of referencedKeys(manifests[2]!)) expect(objects.has(k)).toBe(k !== delta2);
    expectSameState(await restoreAll(store, (await latestCheckpoint(store))!, [0, KG]), states[0]!);
    // Repair: the corrupt manifest 4 is deleted from quarantine, manifest 3 stays quarantined; the
    // next retention keeps what 3 names and deletes only the garbage of the abandoned timeline.
    await store.delete(quarantined.filter((k) => k.endsWith(manifestKey(4))));
    const r2 = await writeCheckpoint(
      store,
      { epoch: 3, keyGroups: KG, parts: new Map(), inflight: new Map(), meta: {}, previous: r.manifest },
      { retain: 1, sweepEveryCheckpoints: 1, logger: new WarnLog() },
    );
    expect(r2.gcError).toBeUndefined();
    const kept = new Set([...(await store.list('kg/')), ...(await store.list('packs/'))]);
    expect(kept).toEqual(new Set([...referencedKeys(r2.manifest), ...referencedKeys(manifests[2]!).filter((k) => k !== delta2)]));
  });

  it('restores exactly the union of state and in-flight messages over any key-group split (rescaling)', async () => {
    const store = freshStore();
    const model = new Model();
    for (let id = 0; id < 2_000; id++) model.put(id, `a${id}`);
    await checkpoint(store, model, 1, {});
    for (let id = 0; id < 2_000; id += 3) model.put(id, `b${id}`);
    for (let id = 1; id < 2_000; id += 7) model.del(id);
    const inflight = new Map<number, Uint8Array[]>();
    for (let kg = 0; kg < KG; kg += 3) inflight.set(kg, [Buffer.from(`m${kg}-1`), Buffer.from(`m${kg}-2`)]);
    const { manifest } = await checkpoint(store, model, 2, {}, {}, inflight);

    for (const splits of [
      [0, KG],
      [0, 8, KG],
      [0, 5, 11, KG],
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
    ]) {
      expectSameState(await restoreAll(store, manifest, splits), model.state);
      const msgs: string[] = [];
      for (let i = 0; i + 1 < splits.length; i++) {
        await readInflight(store, manifest, splits[i]!, splits[i + 1]!, (kg, m) => {
          expect(kg >= splits[i]! && kg < splits[i + 1]!).toBe(true);
          msgs.push(Buffer.from(m).toString());
        });
      }
      expect(msgs).toEqual([...inflight.values()].flat().map((m) => Buffer.from(m).toString()));
    }
  });
});
