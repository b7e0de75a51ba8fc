/**
 * Uploads each checkpoint's state to the snapshot store (incrementally: only what the epoch
 * changed) on one dedicated thread (piscina: the upload task is interchangeable work), retrying
 * with backoff while the store is unavailable; message processing goes on meanwhile.
 */
import { Piscina } from 'piscina';
import type { CheckpointManifest } from '../snapshot/checkpoint_layout.js';
import type { SnapshotStoreConfig } from '../snapshot/store_config.js';
import type { UploadResult, UploadTask } from '../snapshot/upload_task.js';
import type { Logger } from '../api/connector_api.js';
import { backoffDelayMs } from '../shared/backoff.js';
import { keyGroupRange } from '../shared/key_group.js';
import { envDir } from '../state/state_layout.js';
import { checkpointHistoryMax, uploadQueueMax, uploadRetryBaseMs, uploadRetryMaxMs } from '../shared/limits.js';

/** The longest setTimeout: the upload thread never idles out while the engine runs. */
const NEVER_IDLE_MS = 2 ** 31 - 1;

/** What the uploader needs to know of the run. */
export interface UploaderConfig {
  store: SnapshotStoreConfig;
  /** Complete checkpoints the store keeps. */
  retain: number;
  stateDir: string;
  workers: number;
  keyGroups: number;
  /** The layout generation whose environments hold the state. */
  generation: number;
  /** The state's lineage (Layout.lineage): recorded in each manifest, checked when checkpoint.json is lost. */
  lineage: string;
  /** The checkpoint the run restored from the store, if it did: the first upload builds on it. */
  restoredFrom: CheckpointManifest | undefined;
  /** The checkpoint the run recovered (0: none): newer manifests are quarantined by its first upload. */
  recoveredEpoch: number;
  logger: Logger;
}

export class CheckpointUploader {
  private readonly pool: Piscina;
  private uploaded = 0;

  /**
   * @param history the most recent upload results (kept across the engine's restarts), newest last
   * @param failed  true once the engine failed: a failed upload is then not retried
   */
  constructor(
    private readonly config: UploaderConfig,
    private readonly history: UploadResult[],
    private readonly failed: () => boolean,
  ) {
    const fromSource = import.meta.url.endsWith('.ts');
    const filename = new URL(fromSource ? '../snapshot/upload_bootstrap.mjs' : '../snapshot/upload_task.js', import.meta.url).href;
    this.pool = new Piscina({ filename, minThreads: 1, maxThreads: 1, idleTimeout: NEVER_IDLE_MS, maxQueue: uploadQueueMax });
  }

  /** Upload checkpoint `epoch` (`final`: the last one of a clean stop), retrying until it is stored. */
  async upload(epoch: number, positions: Record<string, unknown>, final = false): Promise<void> {
    const c = this.config;
    const task: UploadTask = {
      epoch,
      keyGroups: c.keyGroups,
      store: c.store,
      retain: c.retain,
      final,
      meta: { positions, workers: c.workers, layoutGeneration: c.generation, lineage: c.lineage },
      // The first checkpoint after a restore builds on the restored one (a savepoint's manifest
      // may not be among the store's checkpoints any more).
      ...(c.restoredFrom !== undefined && this.uploaded === 0 ? { previous: c.restoredFrom } : {}),
      ...(this.uploaded === 0 ? { quarantineAbove: c.recoveredEpoch } : {}),
      envs: Array.from({ length: c.workers }, (_, w) => {
        const r = keyGroupRange(w, c.workers, c.keyGroups);
        return { dir: envDir(c.stateDir, c.generation, w), kgStart: r.start, kgEnd: r.end };
      }),
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const r = (await this.pool.run(task)) as UploadResult;
        if (r.quarantined !== undefined) c.logger.warn(r.quarantined);
        this.uploaded++;
        this.history.push(r);
        if (this.history.length > checkpointHistoryMax) this.history.shift();
        return;
      } catch (e) {
        if (this.failed()) throw e;
        const delay = backoffDelayMs({ baseMs: uploadRetryBaseMs, maxMs: uploadRetryMaxMs }, attempt);
        c.logger.warn(`checkpoint ${epoch}: upload to the snapshot store failed (attempt ${attempt + 1}); retrying in ${delay} ms`, {
          error: (e as Error).message,
        });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}
