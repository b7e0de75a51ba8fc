/**
 * Worker thread entry point: open this worker's LMDB environment (migrating key groups from a
 * previous layout when the worker count changed, restoring key groups from the snapshot store
 * when the main thread says so), load the application, run the runtime. The main thread has
 * checked the environments against the recovered checkpoint before (state/env_repair.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { rmSync } from 'node:fs';
import { ManualClock, systemClock, type Clock } from '../shared/clock.js';
import { keyGroupRange } from '../shared/key_group.js';
import { loadApp } from '../api/load_app.js';
import { StateStore } from '../state/state_store.js';
import { rollbackTo, restoreFromStore } from './recovery.js';
import type { WorkerInit } from '../config/worker_init.js';
import { WorkerRuntime } from './worker_runtime.js';

const init = workerData as WorkerInit;

async function main(): Promise<void> {
  const app = await loadApp(init.app);
  const clock: Clock = init.clock === null ? systemClock : new ManualClock(init.clock);
  if (init.migrateFrom.length > 0 || init.restoreFrom !== null) {
    // Start from an empty environment and copy our key groups from every old one, or restore
    // them: what an interrupted migration or restore left here must not mix in. (A damaged or
    // replaced environment was moved aside by the main thread already.)
    rmSync(init.stateDir, { recursive: true, force: true });
  }
  const store = new StateStore(init.stateDir);
  if (init.migrateFrom.length > 0) {
    const { start, end } = keyGroupRange(init.index, init.workers, init.keyGroups);
    // Copies every database by key group, undo records and recorded messages included, so the
    // rollback below works on the new layout as it would have on the old one.
    for (const dir of init.migrateFrom) {
      const old = new StateStore(dir, true);
      await store.copyFrom(old, start, end);
      await old.close();
    }
  }
  const { start, end } = keyGroupRange(init.index, init.workers, init.keyGroups);
  const from = init.restoreFrom;
  if (from !== null) {
    for (const [a, b] of from.keyGroups ?? [[start, end]]) await restoreFromStore(store, a, b, from.store, from.epoch, from.manifestKey);
  }
  const rolledBack = await rollbackTo(store, start, end, init.recoverEpoch);
  // On disk before the worker is ready: once every worker is, the main thread switches layout.json
  // to a new generation and removes the old one (rescaling), and checkpoint R's record may already
  // name this environment's content.
  await store.sync();
  const runtime = new WorkerRuntime(init, app, store, clock, (code) => {
    parentPort?.postMessage({ type: 'exit', code });
  });
  // Atomics.waitAsync does not keep a thread's event loop alive: without a referenced handle the
  // worker would exit while it waits on its doorbell. The runtime ends the thread explicitly.
  const keepAlive = setInterval(() => {}, 1 << 30);
  void keepAlive;
  parentPort?.postMessage({ type: 'ready', rolledBack });
  runtime.start(init.recoverEpoch);
}

main().catch((e: unknown) => {
  // Surface startup failures through the 'error' event with the original message.
  setImmediate(() => {
    throw e;
  });
});
