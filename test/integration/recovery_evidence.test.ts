// Proves recovery keeps what it does not use (issue 12, item 4): a lost checkpoint.json is
// recovered from the snapshot store's newest verified checkpoint instead of "checkpoint 0", and
// manifests newer than the recovered checkpoint are moved to quarantine, never deleted, with the
// objects they name, so an operator can repair the store.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { LocalDirStore } from '../../snapshot/local_dir_store.js';
import { listManifestEpochs, readManifest, referencedKeys } from '../../snapshot/manifest.js';
import { manifestKey } from '../../snapshot/checkpoint_keys.js';
import { clearLocalState } from '../../state/state_layout.js';
import { MemoryLogger, TempDirs, egressOf, ingressOf, jsonRecords, orFail } from '../fixtures/engine_harness.js';

const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).pathname;
const tmp = new TempDirs();
afterAll(() => tmp.removeAll());

const KEYS = 50;

async function start(stateDir: string): Promise<{ engine: Engine; logger: MemoryLogger }> {
  const logger = new MemoryLogger();
  const engine = await Engine.start(app, { stateDir, workers: 2, logger, limits: { keyGroups: 32, checkpointIntervalMs: 60_000 } });
  return { engine, logger };
}

/** One message to every key; resolves with the counts they reported (released once durable). */
async function round(engine: Engine): Promise<Map<string, number>> {
  const out = egressOf(engine, 'test/out');
  out.clear();
  const input = ingressOf(engine, 'test/in');
  for (let k = 0; k < KEYS; k++) input.push({ to: { typename: 'test/counter', id: `k${k}` }, message: Message.of(Types.long, k) });
  // Egress is released by the checkpoint covering it: take checkpoints until every count is out.
  let released = false;
  const done = out.waitFor(KEYS, 30_000).then(() => (released = true));
  while (!released) await orFail(engine, Promise.race([engine.checkpoint(), done]));
  return new Map(jsonRecords<{ id: string; count: number }>(out).map((r) => [r.id, r.count]));
}

function expectAll(counts: Map<string, number>, n: number): void {
  expect(counts.size).toBe(KEYS);
  expect([...counts.values()].filter((c) => c !== n)).toEqual([]);
}

describe('recovery keeps the evidence', () => {
  it('a missing checkpoint.json is recovered from the newest verified checkpoint in the store', async () => {
    const dir = tmp.make('lost-record');
    let { engine } = await start(dir);
    for (let r = 1; r <= 4; r++) expectAll(await round(engine), r);
    await engine.stop();
    rmSync(join(dir, 'checkpoint.json'));

    const second = await start(dir);
    engine = second.engine;
    const logger = second.logger;
    expect(logger.lines.some((l) => l.level === 'warn' && /checkpoint\.json is missing/.test(l.msg))).toBe(true);
    // Every acknowledged increment survived: the next one makes 5 everywhere.
    expectAll(await round(engine), 5);
    await engine.stop();
    // ...and the record exists again, so a crash now would not need the store.
    expect(existsSync(join(dir, 'checkpoint.json'))).toBe(true);
  });

  it('falling back past a damaged checkpoint quarantines it instead of deleting it', async () => {
    const dir = tmp.make('quarantine');
    let { engine } = await start(dir);
    for (let r = 1; r <= 3; r++) expectAll(await round(engine), r);
    await engine.stop();

    const store = new LocalDirStore(join(dir, 'snapshots'));
    const epochs = await listManifestEpochs(store, {});
    const newest = epochs[0]!;
    // Lose one object written by the newest checkpoint that wrote any (the final one of a clean
    // stop may have changed nothing): it and every later checkpoint become unusable. An operator
    // could put it back from a backup.
    let lost: string | undefined;
    let lostEpoch = 0;
    for (const e of epochs) {
      const own = referencedKeys(await readManifest(store, manifestKey(e))).filter((k) => k.includes(`-${String(e).padStart(12, '0')}-`));
      if (own.length > 0) {
        lost = own[0]!;
        lostEpoch = e;
        break;
      }
    }
    expect(lost).toBeDefined();
    await store.delete([lost!]);
    clearLocalState(dir); // a new machine: only the snapshot store is left

    const second = await start(dir);
    engine = second.engine;
    const logger = second.logger;
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes(`checkpoint ${lostEpoch} is unusable`))).toBe(true);
    const counts = await round(engine); // the first checkpoint of this run quarantines first
    expect(Math.min(...counts.values())).toBeGreaterThanOrEqual(2);
    await engine.stop(); // a clean stop runs retention

    const quarantine = await store.list('quarantine/');
    for (const e of epochs.filter((x) => x >= lostEpoch)) expect(quarantine.filter((k) => k.endsWith(manifestKey(e)))).toHaveLength(1);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('moved to quarantine/'))).toBe(true);
    // Repairable: each quarantined manifest reads back, and every object it names but the lost one is still there.
    const present = new Set([...(await store.list('kg/')), ...(await store.list('packs/')), ...(await store.list('inflight/'))]);
    for (const k of quarantine) {
      const m = await readManifest(store, k);
      expect(referencedKeys(m).filter((r) => !present.has(r) && r !== lost)).toEqual([]);
    }
    expect(newest).toBeGreaterThanOrEqual(lostEpoch);
  });
});
