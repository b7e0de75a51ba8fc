/** What the main thread hands a worker at spawn (structured-clone safe). */
import type { RemoteEndpoint } from '../api/endpoint.js';
import type { EngineLimits } from '../shared/limits.js';
import type { AppModuleRef } from '../api/load_app.js';
import type { SnapshotStoreConfig } from '../snapshot/store_config.js';

export interface WorkerInit {
  index: number;
  workers: number;
  keyGroups: number;
  limits: EngineLimits;
  /** rings[from][to] for from != to; thread `workers` is the main thread. */
  rings: (SharedArrayBuffer | null)[][];
  doorbells: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  app: AppModuleRef;
  /** Every egress id of the application (including ones module.yaml adds on the main thread). */
  egressIds: string[];
  /** Remote endpoints of the application (including ones module.yaml adds on the main thread). */
  remoteEndpoints: RemoteEndpoint[];
  /** This worker's LMDB environment directory. */
  stateDir: string;
  /** Environments of a previous layout to copy this worker's key groups from (rescaling). */
  migrateFrom: string[];
  /** The last complete checkpoint: local epochs after it are rolled back, its recorded messages re-enqueued (0 = none). */
  recoverEpoch: number;
  /**
   * Restore key groups of checkpoint `epoch` from the snapshot store first, into an environment
   * that does not hold them (an empty local disk, or a damaged environment moved aside):
   * `keyGroups` lists the [start, end) ranges, all of this worker's when absent.
   */
  restoreFrom: { store: SnapshotStoreConfig; epoch: number; manifestKey: string; keyGroups?: [number, number][] } | null;
  /** The manual clock's buffer, or null for the system clock. */
  clock: SharedArrayBuffer | null;
}
