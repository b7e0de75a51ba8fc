// The recovery plan decides, without I/O, what an engine run starts from: these are the cases
// Engine.start distinguishes (fresh start, local state, empty disk with a snapshot store, a
// savepoint, rescaling, and the requests it rejects). Also the restart policy after a worker died.
import { describe, expect, it } from 'vitest';
import { planRecovery, wantsLatestFromStore, type RecoveryInput, type StoreCheckpoint } from '../../engine/recovery_plan.js';
import { WorkerRestartPolicy } from '../../engine/worker_pool.js';
import type { CheckpointRecord } from '../../engine/checkpoint_record.js';
import type { CheckpointManifest } from '../../snapshot/checkpoint_layout.js';
import type { Layout } from '../../state/state_layout.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';

function input(over: Partial<RecoveryInput> = {}): RecoveryInput {
  return {
    stateDir: '/state',
    workers: 2,
    keyGroupsAsked: undefined,
    keyGroupsResolved: 256,
    localLayout: undefined,
    localRecord: undefined,
    fromStore: null,
    newLineage: () => 'new-lineage',
    ...over,
  };
}

const layout = (over: Partial<Layout> = {}): Layout => ({
  version: 1,
  keyGroups: 128,
  workers: 2,
  generation: 3,
  lineage: 'old-lineage',
  ...over,
});
const record = (epoch: number): CheckpointRecord => ({
  version: 1,
  epoch,
  positions: { in: epoch * 10 },
  completedAt: 'then',
  clean: true,
});
function storeCheckpoint(epoch: number, keyGroups: number, savepoint?: string): StoreCheckpoint {
  const manifest = { epoch, keyGroups, meta: { positions: { in: epoch * 100 } } } as unknown as CheckpointManifest;
  return {
    manifest,
    manifestKey: savepoint === undefined ? `checkpoints/${epoch}` : `savepoints/${savepoint}`,
    ...(savepoint === undefined ? {} : { savepoint }),
  };
}

function configError(f: () => unknown): StatefnError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(StatefnError);
    expect((e as StatefnError).code).toBe(ErrorCode.CONFIG_INVALID);
    return e as StatefnError;
  }
  throw new Error('expected a CONFIG_INVALID error');
}

describe('recovery plan', () => {
  it('fresh start: generation 0, a new lineage, the resolved key groups, nothing recovered', () => {
    const p = planRecovery(input());
    expect(p).toEqual({
      keyGroups: 256,
      layout: { version: 1, keyGroups: 256, workers: 2, generation: 0, lineage: 'new-lineage' },
      migrateFrom: undefined,
      recovered: undefined,
      restoreFrom: undefined,
      epoch: 0,
    });
    expect(wantsLatestFromStore(undefined, undefined, true)).toBe(true);
    expect(wantsLatestFromStore(undefined, undefined, false)).toBe(false);
  });

  it('local state: keeps its key groups, generation and lineage, and resumes from the local checkpoint record', () => {
    const p = planRecovery(input({ localLayout: layout(), localRecord: record(7) }));
    expect(p.keyGroups).toBe(128);
    expect(p.layout).toEqual(layout());
    expect(p.migrateFrom).toBeUndefined();
    expect(p.recovered).toEqual(record(7));
    expect(p.restoreFrom).toBeUndefined();
    expect(p.epoch).toBe(7);
    expect(wantsLatestFromStore(layout(), record(7), true)).toBe(false);
    // A checkpoint record alone (no layout) also means the local state is not empty.
    expect(wantsLatestFromStore(undefined, record(7), true)).toBe(false);
  });

  it('local state of an older version without a lineage gets one', () => {
    const { lineage: _, ...old } = layout();
    expect(planRecovery(input({ localLayout: old })).layout.lineage).toBe('new-lineage');
  });

  it('empty disk and a snapshot store: restores its latest checkpoint, with its key groups and positions, in a new lineage', () => {
    const p = planRecovery(input({ fromStore: storeCheckpoint(42, 64) }));
    expect(p.keyGroups).toBe(64);
    expect(p.layout).toEqual({ version: 1, keyGroups: 64, workers: 2, generation: 0, lineage: 'new-lineage' });
    expect(p.restoreFrom).toEqual({ epoch: 42, manifestKey: 'checkpoints/42', manifest: storeCheckpoint(42, 64).manifest });
    expect(p.recovered).toEqual({
      version: 1,
      epoch: 42,
      positions: { in: 4200 },
      completedAt: 'restored from the snapshot store',
      clean: false,
    });
    expect(p.epoch).toBe(42);
  });

  it('savepoint: restored from its own key in the store (the local state was cleared first)', () => {
    const p = planRecovery(input({ fromStore: storeCheckpoint(9, 32, 'before-upgrade'), keyGroupsAsked: 32 }));
    expect(p.restoreFrom?.manifestKey).toBe('savepoints/before-upgrade');
    expect(p.keyGroups).toBe(32);
    expect(p.epoch).toBe(9);
    expect(p.layout.lineage).toBe('new-lineage');
  });

  it('rejects a change of keyGroups asked for an existing state, and accepts the same value', () => {
    const e = configError(() => planRecovery(input({ localLayout: layout(), keyGroupsAsked: 512, keyGroupsResolved: 512 })));
    expect(e.message).toContain('keyGroups is 128 for the state in /state and cannot change (asked for 512)');
    expect(planRecovery(input({ localLayout: layout(), keyGroupsAsked: 128, keyGroupsResolved: 128 })).keyGroups).toBe(128);
    // Not asked explicitly (a default or app option that differs): the state's value wins.
    expect(planRecovery(input({ localLayout: layout(), keyGroupsResolved: 512 })).keyGroups).toBe(128);
  });

  it('rejects more workers than key groups (of the state, or of the store checkpoint)', () => {
    expect(configError(() => planRecovery(input({ workers: 4, localLayout: layout({ keyGroups: 2, workers: 2 }) }))).message).toContain(
      'workers (4) must be at most keyGroups (2)',
    );
    expect(configError(() => planRecovery(input({ workers: 4, fromStore: storeCheckpoint(1, 3) }))).message).toContain(
      'workers (4) must be at most keyGroups (3)',
    );
  });

  it('rescale: another worker count bumps the generation, keeps the lineage, and migrates from the old layout', () => {
    const p = planRecovery(input({ workers: 3, localLayout: layout(), localRecord: record(5) }));
    expect(p.layout).toEqual({ version: 1, keyGroups: 128, workers: 3, generation: 4, lineage: 'old-lineage' });
    expect(p.migrateFrom).toEqual(layout());
    expect(p.epoch).toBe(5);
  });
});

describe('recovery plan: a lost checkpoint record', () => {
  const manifest = (epoch: number, lineage?: string): CheckpointManifest =>
    ({
      epoch,
      keyGroups: 128,
      meta: { positions: { in: epoch * 100 }, ...(lineage === undefined ? {} : { lineage }) },
    }) as unknown as CheckpointManifest;

  it("local state without checkpoint.json resumes from the store's newest verified checkpoint, and records it", () => {
    const p = planRecovery(input({ localLayout: layout(), latestForMissingRecord: manifest(11, 'old-lineage') }));
    expect(p.epoch).toBe(11);
    expect(p.recovered?.positions).toEqual({ in: 1100 });
    expect(p.recordFromStore).toBe('record-missing');
    // Local state goes on (rolled back to 11), in its own lineage; nothing is restored from the store.
    expect(p.restoreFrom).toBeUndefined();
    expect(p.layout.lineage).toBe('old-lineage');
  });

  it('manifests without a lineage (older versions) are accepted; another lineage is an error naming the fix', () => {
    expect(planRecovery(input({ localLayout: layout(), latestForMissingRecord: manifest(4) })).epoch).toBe(4);
    expect(() => planRecovery(input({ localLayout: layout(), latestForMissingRecord: manifest(4, 'other') }))).toThrow(
      /checkpoint.json is missing.*another state history.*restore checkpoint.json from a backup/,
    );
  });

  it('no checkpoint in the store: starts from checkpoint 0 (a state that never completed one); a present record wins', () => {
    expect(planRecovery(input({ localLayout: layout(), latestForMissingRecord: null })).epoch).toBe(0);
    const p = planRecovery(input({ localLayout: layout(), localRecord: record(5) }));
    expect(p.epoch).toBe(5);
    expect(p.recordFromStore).toBeUndefined();
  });

  it('a restore from the store is recorded locally before the run goes on', () => {
    expect(planRecovery(input({ fromStore: storeCheckpoint(9, 64) })).recordFromStore).toBe('restored');
  });
});

describe('worker restart policy', () => {
  const died = new StatefnError(ErrorCode.WORKER_DIED, 'worker 0 died');

  it('restarts after a worker died, a bounded number of times, with growing capped delays', () => {
    const policy = new WorkerRestartPolicy(3, { baseMs: 100, maxMs: 250, jitter: 0 });
    expect(policy.next(died)).toEqual({ restart: 1, delayMs: 100 });
    expect(policy.next(died)).toEqual({ restart: 2, delayMs: 200 });
    expect(policy.next(died)).toEqual({ restart: 3, delayMs: 250 });
    expect(policy.next(died)).toBeUndefined();
  });

  it('never restarts after another failure', () => {
    const policy = new WorkerRestartPolicy(10);
    expect(policy.next(new StatefnError(ErrorCode.FRAME_MALFORMED, 'bad frame'))).toBeUndefined();
    expect(policy.next(new Error('plain'))).toBeUndefined();
    expect(policy.next(died)?.restart).toBe(1);
  });

  it('workerRestartsMax 0 fails at the first death', () => {
    expect(new WorkerRestartPolicy(0).next(died)).toBeUndefined();
  });
});
