/**
 * Worker thread entry point: open this worker's LMDB environment (migrating key groups from a
 * previous layout when the worker count changed), load the application, run the runtime.
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
  if (init.migrateFrom.length > 0) {
    // Start from an empty environment and copy our key groups from every old one.
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
  if (init.restoreFrom !== null)
    await restoreFromStore(store, start, end, init.restoreFrom.store, init.restoreFrom.epoch, init.restoreFrom.manifestKey);
  const rolledBack = await rollbackTo(store, start, end, init.recoverEpoch);
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
