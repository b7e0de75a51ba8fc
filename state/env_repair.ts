/**
 * What a start does about workers' LMDB environments that are not the recovered checkpoint R
 * (env_check.ts says which and why), decided on the main thread before any worker opens one:
 *
 *   R = 0 (no checkpoint completed)  a missing environment is an empty start; a damaged one is
 *                                    moved aside and its key groups start empty (checkpoint 0 is
 *                                    the empty state); a stamp past R's undo reach means the
 *                                    checkpoint record was lost: an error.
 *   R > 0                            a missing or damaged environment is moved aside and its key
 *                                    groups are restored from checkpoint R in the snapshot store;
 *                                    with no snapshot store, or no readable checkpoint R in it, the
 *                                    start fails (STATE_DIR_INVALID) before anything is changed.
 *
 * Nothing is deleted: a damaged environment is renamed to `<name>.damaged-<time>`, so an operator
 * can inspect or put it back. Each one is logged (WARN) with its worker, key groups and reason.
 */
import { existsSync, renameSync } from 'node:fs';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { checkEnv, type EnvDamage } from './env_check.js';

/** An environment a start uses: a current worker's, or an old layout's when rescaling. */
export interface EnvToCheck {
  /** The environment directory. */
  dir: string;
  /** Who it belongs to, for messages: "worker 1", or "worker 1 of layout generation 0". */
  owner: string;
  /** The key groups it holds: [kgStart, kgEnd). */
  kgStart: number;
  kgEnd: number;
  /**
   * Where it is moved to when damaged, before `.damaged-<time>` (default: `dir`). An old
   * generation's environments go outside the generation directory, which is removed once the
   * rescaled workers are ready.
   */
  asideBase?: string;
}

export interface DamagedEnv extends EnvToCheck {
  damage: EnvDamage;
  detail: string;
  /** Where it was moved (undefined: there was nothing to move). */
  movedTo?: string;
}

export interface EnvRepairInput {
  stateDir: string;
  /** The recovered checkpoint (0: none). */
  recoverEpoch: number;
  envs: EnvToCheck[];
  /**
   * Confirms that checkpoint `recoverEpoch` can be restored from the snapshot store (reads and
   * verifies its manifest; throws why not). Undefined when snapshots are off.
   */
  verifyStore: (() => Promise<void>) | undefined;
  warn: (msg: string, fields?: Record<string, unknown>) => void;
  /** The time in the names of moved environments (injectable for tests). */
  now?: () => Date;
}

export interface EnvRepair {
  /** Environments moved aside (or missing) whose key groups are restored or start empty. */
  damaged: DamagedEnv[];
  /** True when the damaged environments' key groups are restored from the store (R > 0). */
  restore: boolean;
}

const kgText = (e: EnvToCheck): string => `key groups [${e.kgStart}, ${e.kgEnd})`;

/**
 * Check every environment and apply the decision above: returns which were moved aside, or throws
 * a StatefnError (STATE_DIR_INVALID) without changing anything.
 */
export async function repairEnvs(input: EnvRepairInput): Promise<EnvRepair> {
  const { recoverEpoch: r, stateDir } = input;
  const damaged: DamagedEnv[] = [];
  for (const env of input.envs) {
    const c = await checkEnv(env.dir, r);
    if (c.ok) {
      if (c.stamp === undefined && r > 0) {
        input.warn(
          `${env.owner}'s LMDB environment ${env.dir} has no epoch stamp (written by an earlier statefn): it is used as ` +
            `checkpoint ${r} unverified, and stamped from now on`,
          { dir: env.dir },
        );
      }
      continue;
    }
    // Before any checkpoint completed an environment may not have been created yet.
    if (c.damage === 'missing' && r === 0) continue;
    damaged.push({ ...env, damage: c.damage, detail: c.detail });
  }
  if (damaged.length === 0) return { damaged, restore: false };
  const list = damaged.map((d) => `${d.owner}'s LMDB environment ${d.dir} (${kgText(d)}): ${d.detail}`).join('; ');
  if (r === 0) {
    const ahead = damaged.filter((d) => d.damage === 'too-new');
    if (ahead.length > 0) {
      throw new StatefnError(
        ErrorCode.STATE_DIR_INVALID,
        `${ahead.map((d) => `${d.owner}'s LMDB environment ${d.dir}: ${d.detail}`).join('; ')}. ${stateDir}/checkpoint.json ` +
          `is missing or was replaced. Nothing was changed. Fix: put back the checkpoint.json that belongs to this state, ` +
          `or start with the snapshot store that holds its checkpoints, or move ${stateDir} away to start empty`,
      );
    }
  } else if (input.verifyStore === undefined) {
    throw new StatefnError(
      ErrorCode.STATE_DIR_INVALID,
      `cannot start: ${list}. Snapshots are off (snapshots: false), so no copy of checkpoint ${r} exists to restore it ` +
        `from. Nothing was changed. Fix: put back an intact copy of the environment, or start with the snapshot store that ` +
        `holds checkpoint ${r} (option snapshots, --snapshots), or move ${stateDir} away to start empty (its state is lost)`,
    );
  } else {
    try {
      await input.verifyStore();
    } catch (e) {
      throw new StatefnError(
        ErrorCode.STATE_DIR_INVALID,
        `cannot start: ${list}. Checkpoint ${r} cannot be restored from the snapshot store: ${(e as Error).message}. ` +
          `Nothing was changed. Fix: make the snapshot store that holds checkpoint ${r} reachable (check the snapshots ` +
          `option), or put back an intact copy of the environment, or move ${stateDir} away to start empty`,
        { cause: e },
      );
    }
  }
  const time = (input.now?.() ?? new Date()).toISOString().replace(/[:.]/g, '-');
  for (const d of damaged) {
    if (existsSync(d.dir)) {
      d.movedTo = asideName(`${d.asideBase ?? d.dir}.damaged-${time}`);
      renameSync(d.dir, d.movedTo);
    }
    const then = r > 0 ? `restored from checkpoint ${r} in the snapshot store` : 'started empty (no checkpoint has completed yet)';
    input.warn(
      `${d.owner}'s LMDB environment ${d.dir} is damaged (${d.detail})` +
        (d.movedTo !== undefined ? `; moved aside to ${d.movedTo}` : '') +
        `; its ${kgText(d)} are ${then}`,
      { dir: d.dir, damage: d.damage, keyGroups: [d.kgStart, d.kgEnd], ...(d.movedTo ? { movedTo: d.movedTo } : {}) },
    );
  }
  return { damaged, restore: r > 0 };
}

/**
 * Move environments aside that a restore from the snapshot store would otherwise write into
 * (their old keys would survive among the restored ones). Returns where each went.
 */
export function moveAsideForRestore(dirs: string[], now: Date = new Date()): { dir: string; movedTo: string }[] {
  const time = now.toISOString().replace(/[:.]/g, '-');
  const moved: { dir: string; movedTo: string }[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    const movedTo = asideName(`${dir}.replaced-${time}`);
    renameSync(dir, movedTo);
    moved.push({ dir, movedTo });
  }
  return moved;
}

/** `base`, or `base-<n>` when that exists already (two moves within one millisecond). */
function asideName(base: string): string {
  let name = base;
  for (let n = 2; existsSync(name); n++) name = `${base}-${n}`;
  return name;
}

/**
 * The key groups of [kgStart, kgEnd) that lie in damaged environments: what a worker restores
 * from the snapshot store instead of keeping or migrating.
 */
export function restoreRanges(kgStart: number, kgEnd: number, damaged: readonly { kgStart: number; kgEnd: number }[]): [number, number][] {
  const out: [number, number][] = [];
  for (const d of [...damaged].sort((a, b) => a.kgStart - b.kgStart)) {
    const a = Math.max(kgStart, d.kgStart);
    const b = Math.min(kgEnd, d.kgEnd);
    if (a < b) out.push([a, b]);
  }
  return out;
}
