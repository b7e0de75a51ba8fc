/**
 * The per-worker cache of address states over the LMDB state store: states are loaded on first
 * use and kept as serialized values (immutable ones also decoded, address_state.ts); the ones
 * changed since the last checkpoint form the dirty set (bounded by back-pressure, written by the
 * next checkpoint); clean ones are evicted when the cache is over its bound.
 */
import type { Packr } from 'msgpackr';
import { assert } from '../shared/errors.js';
import { keyGroupOf } from '../shared/key_group.js';
import { stateKey } from '../state/state_keys.js';
import type { StateStore } from '../state/state_store.js';
import { decodeState, isEmptyState, type AddressState } from './address_state.js';
import type { FnRuntime } from './function_table.js';
import { addressKey } from './mailboxes.js';
import { stateCacheEvictTargetRatio } from '../shared/limits.js';

/** What the cache needs from the rest of the worker. */
export interface StateCacheOptions {
  readonly store: StateStore;
  readonly codec: Packr;
  /** This worker's thread index, and the owner of every key group (to catch misrouted messages). */
  readonly self: number;
  readonly owner: Uint16Array;
  readonly keyGroups: number;
  readonly entriesMax: number;
  /** True while an address has an invocation in progress (its state must stay cached). */
  readonly isBusy: (key: string) => boolean;
  /** Function types known up front, in the order eviction visits them. */
  readonly fnTypes: readonly string[];
}

export class StateCache {
  /** Cached states by function type, then id. */
  private readonly byType = new Map<string, Map<string, AddressState>>();
  private entries = 0;
  /** States changed since the last checkpoint captured the dirty set. */
  private dirty: AddressState[] = [];
  /** True while a checkpoint's states are being written (eviction waits, see `evict`). */
  private writing = false;

  constructor(private readonly o: StateCacheOptions) {
    for (const t of o.fnTypes) this.byType.set(t, new Map());
  }

  /** States cached. */
  get entryCount(): number {
    return this.entries;
  }

  /** States changed since the last checkpoint. */
  get dirtyCount(): number {
    return this.dirty.length;
  }

  /** The state of `fnType`/`id`, from the cache or LMDB (evicting clean states when over the bound). */
  load(fn: FnRuntime, fnType: string, id: string): AddressState {
    const cache = this.cacheOf(fnType);
    let st = cache.get(id);
    if (st !== undefined) return st;
    const kg = keyGroupOf(id, this.o.keyGroups);
    assert(this.o.owner[kg] === this.o.self, () => `message for ${fnType}/${id} (key group ${kg}) reached worker ${this.o.self}`);
    const bytes = this.o.store.getState(stateKey(kg, fnType, id));
    st = decodeState(this.o.codec, bytes, fn.specs, fn.specIndex, fnType, id, kg);
    cache.set(id, st);
    this.entries++;
    if (this.entries > this.o.entriesMax) this.evict();
    return st;
  }

  markDirty(st: AddressState): void {
    if (st.dirty) return;
    st.dirty = true;
    this.dirty.push(st);
  }

  /**
   * Checkpoint: take the dirty set. Its states are clean from now on and marked captured until
   * the checkpoint encodes them (an invocation changing one first copies its slots,
   * `snapshotCaptured`).
   */
  captureDirty(): AddressState[] {
    const captured = this.dirty;
    this.dirty = [];
    for (const st of captured) {
      st.dirty = false;
      st.capture = true;
    }
    return captured;
  }

  /** A checkpoint starts (true) or ends (false) writing its states. */
  setWriting(writing: boolean): void {
    assert(this.writing !== writing, () => `state cache: checkpoint write ${writing ? 'started twice' : 'ended twice'}`);
    this.writing = writing;
  }

  /** After a checkpoint committed: drop the states it deleted that are still empty and idle. */
  dropEmptied(emptied: readonly AddressState[]): void {
    for (const st of emptied) {
      if (st.dirty || !isEmptyState(st) || this.o.isBusy(addressKey(st.fnType, st.id))) continue;
      const cache = this.byType.get(st.fnType);
      if (cache !== undefined && cache.get(st.id) === st) {
        cache.delete(st.id);
        this.entries--;
      }
    }
  }

  private cacheOf(fnType: string): Map<string, AddressState> {
    let c = this.byType.get(fnType);
    if (c === undefined) this.byType.set(fnType, (c = new Map<string, AddressState>()));
    return c;
  }

  /** Drop clean entries, oldest first, until the cache is back under its target. */
  private evict(): void {
    // Not while a checkpoint is being written: its states are clean already but their records are
    // not in LMDB yet, so reloading an evicted one would read an older value. The cache may exceed
    // its bound by what is loaded during one write; the first load after it evicts.
    if (this.writing) return;
    const target = Math.floor(this.o.entriesMax * stateCacheEvictTargetRatio);
    for (const cache of this.byType.values()) {
      for (const [id, st] of cache) {
        if (this.entries <= target) return;
        if (st.dirty || this.o.isBusy(addressKey(st.fnType, id))) continue;
        cache.delete(id);
        this.entries--;
      }
    }
  }
}
