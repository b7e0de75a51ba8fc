// Proves a state that became empty is not read back from LMDB while the checkpoint deleting it is
// being written (regression: the cache entry was dropped before the delete committed, so a message
// handled in that window saw the old values again). Drives one WorkerRuntime step by step in this
// thread, so the window is hit deterministically.
import { afterAll, describe, expect, it } from 'vitest';
import { allocateDoorbells, Doorbells } from '../../shared/doorbell.js';
import { ControlOp, FrameKind, EGRESS_FIELDS, createCodec } from '../../shared/frames.js';
import { defaultLimits } from '../../shared/limits.js';
import { loadApp } from '../../api/load_app.js';
import { InLink, OutLink } from '../../shared/link.js';
import { Message } from '../../api/message.js';
import { allocateRing } from '../../shared/ring_buffer.js';
import { StatsBlock } from '../../shared/stats_block.js';
import { systemClock } from '../../shared/clock.js';
import { StateStore } from '../../state/state_store.js';
import { WorkerRuntime } from '../../workers/worker_runtime.js';
import type { WorkerInit } from '../../config/worker_init.js';
import { CMD, SNAPSHOT, VALUES, type Cmd, type Snapshot } from '../fixtures/apps/state_app.js';
import { TempDirs } from '../fixtures/engine_harness.js';

const dirs = new TempDirs();
afterAll(() => dirs.removeAll());

describe('checkpoint window', () => {
  it('a value deleted just before a checkpoint stays deleted for messages handled while the checkpoint is written', async () => {
    const appRef = { module: new URL('../fixtures/apps/state_app.ts', import.meta.url).href };
    const app = await loadApp(appRef);
    const limits = { ...defaultLimits(), checkpointIntervalMs: 3_600_000 };
    // Thread 0 is the worker, thread 1 plays the main thread.
    const rings = [
      [null, allocateRing(limits.ringBytes)],
      [allocateRing(limits.ringBytes), null],
    ];
    const doorbells = allocateDoorbells(2);
    const stats = StatsBlock.allocate(2);
    const stateDir = dirs.make('checkpoint-window');
    const init: WorkerInit = {
      index: 0,
      workers: 1,
      keyGroups: 16,
      limits,
      rings,
      doorbells,
      stats,
      app: appRef,
      egressIds: [...app.egresses.keys()],
      remoteEndpoints: [],
      stateDir,
      migrateFrom: [],
      clock: null,
      recoverEpoch: 0,
      restoreFrom: null,
    };
    const store = new StateStore(stateDir);
    const rt = new WorkerRuntime(init, app, store, systemClock, () => {});
    const toWorker = new OutLink(
      rings[1]![0]!,
      createCodec(),
      new Doorbells(doorbells),
      0,
      limits.frameBytesMax,
      limits.batchMessagesMax,
      () => {
        throw new Error('oversize');
      },
    );
    const fromWorker = new InLink(rings[0]![1]!, createCodec(), 0, 'worker');
    // One step of the worker's loop, synchronously (the runtime's own scheduling is not used).
    const step = (): void => (rt as unknown as { loop(): void }).loop();
    const snapshots: Snapshot[] = [];
    let acked = 0;
    const collect = (): void => {
      for (const f of fromWorker.read(1024, (e) => {
        throw e;
      })) {
        if (f[0] === FrameKind.EGRESS) {
          for (let i = 1; i < f.length; i += EGRESS_FIELDS)
            snapshots.push(new Message(f[i + 1] as string, f[i + 2] as Uint8Array).as(SNAPSHOT));
        } else if (f[0] === FrameKind.CONTROL && f[1] === ControlOp.ACK) acked = f[2] as number;
      }
    };
    const send = (cmd: Cmd): void => {
      const m = Message.of(CMD, cmd);
      toWorker.message(VALUES, 'x', null, null, m.typename, m.payload);
    };
    const checkpointEpoch = async (epoch: number, sendBarrier = true): Promise<void> => {
      if (sendBarrier) {
        toWorker.control(ControlOp.BARRIER, epoch);
        toWorker.flush();
      }
      step();
      for (let i = 0; i < 200 && acked < epoch; i++) {
        await new Promise((r) => setTimeout(r, 5));
        step();
        collect();
      }
      expect(acked).toBe(epoch);
    };

    send({ op: 'set', values: { l: 7, s: 'seven' } });
    toWorker.flush();
    step();
    await checkpointEpoch(1); // LMDB now holds l = 7, s = 'seven'.
    send({ op: 'del', names: ['l', 's'] });
    toWorker.flush();
    step(); // the state is empty now (in memory), and dirty.
    // The checkpoint that deletes it and a read, in one step: the read is handled while the delete is
    // collected but not committed (the commit needs this thread to yield first).
    toWorker.control(ControlOp.BARRIER, 2);
    send({ op: 'get' });
    toWorker.flush();
    step();
    collect();
    expect(snapshots).toEqual([{ fn: VALUES, id: 'x', values: {} }]);
    await checkpointEpoch(2, false); // its barrier was sent above
    await store.close();
  });
});
