/**
 * The names of the incremental checkpoint layout's objects inside a snapshot store (see
 * checkpoint_layout.ts for the format as a whole), and the options every layout operation shares.
 * These names are an on-disk and S3 format: existing snapshot stores are read by them, so they
 * never change.
 */
import type { Logger } from '../api/connector_api.js';
import { assert } from '../shared/errors.js';

/** Options shared by every operation on the layout. */
export interface LayoutOptions {
  /** Key prefix inside the store. Default '' (the store's root). */
  prefix?: string;
  logger?: Logger;
}

/** Digits of the zero-padded epoch in object names, so that names sort by epoch. */
const EPOCH_DIGITS = 12;
/** Digits of the zero-padded key group in object names (key groups are below 65,536). */
const KG_DIGITS = 5;
/** Digits of the zero-padded pack number in pack names. */
const PACK_DIGITS = 3;

/** Where layout operations log when the caller gives no logger. */
const consoleLogger: Logger = {
  info: (m, f) => console.info(m, f ?? ''),
  warn: (m, f) => console.warn(m, f ?? ''),
  error: (m, f) => console.error(m, f ?? ''),
};

/** The caller's logger, or the console. */
export function layoutLogger(opts: LayoutOptions): Logger {
  return opts.logger ?? consoleLogger;
}

function pad(n: number, digits: number): string {
  return String(n).padStart(digits, '0');
}

/** `rel` under the layout prefix (leading and trailing slashes of the prefix are ignored). */
export function withPrefix(prefix: string | undefined, rel: string): string {
  const p = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return p === '' ? rel : `${p}/${rel}`;
}

/** The key of checkpoint `epoch`'s manifest: its commit point. */
export function manifestKey(epoch: number, opts: LayoutOptions = {}): string {
  return withPrefix(opts.prefix, `manifests/${pad(epoch, EPOCH_DIGITS)}`);
}

/** The listing prefix of every manifest. */
export function manifestsDir(opts: LayoutOptions): string {
  return withPrefix(opts.prefix, 'manifests/');
}

/** The key of savepoint `name`. */
export function savepointKey(name: string, opts: LayoutOptions = {}): string {
  return withPrefix(opts.prefix, `savepoints/${name}`);
}

/** The listing prefix of every savepoint. */
export function savepointsDir(opts: LayoutOptions): string {
  return withPrefix(opts.prefix, 'savepoints/');
}

/** The listing prefixes of the objects manifests reference (swept for orphans). */
export const OBJECT_DIRS = ['kg/', 'packs/', 'inflight/'] as const;

/** Key (relative to the prefix) of key group `kg`'s own object written at `epoch`: a base or a delta. */
export function chainObjectRel(kg: number, epoch: number, tag: string, base: boolean): string {
  assert(Number.isInteger(kg) && kg >= 0, () => `chain object of key group ${kg}`);
  return `kg/${pad(kg, KG_DIGITS)}/${base ? 'base' : 'delta'}-${pad(epoch, EPOCH_DIGITS)}-${tag}`;
}

/** Key (relative to the prefix) of pack `n` of the deltas of `epoch`. */
export function packRel(epoch: number, tag: string, n: number): string {
  assert(Number.isInteger(n) && n >= 0, () => `pack number ${n}`);
  return `packs/delta-${pad(epoch, EPOCH_DIGITS)}-${tag}-${pad(n, PACK_DIGITS)}`;
}

/** Key (relative to the prefix) of the in-flight messages recorded at `epoch`. */
export function inflightRel(epoch: number, tag: string): string {
  return `inflight/${pad(epoch, EPOCH_DIGITS)}-${tag}`;
}

/** The relative in-flight key a manifest may name (anything else is not ours). */
export const INFLIGHT_REL = /^inflight\/\d+-[0-9a-f]+$/;

/** Names this layout writes (anything else under its prefix is left alone by the sweep). */
const OBJECT_NAME = /(?:(?:kg\/\d+\/(?:base|delta)-|inflight\/)\d+-[0-9a-f]+|packs\/delta-\d+-[0-9a-f]+-\d+)$/;

/** True when `key` names an object this layout writes (a base, delta, pack or in-flight object). */
export function isLayoutObject(key: string): boolean {
  return OBJECT_NAME.test(key);
}

/** The epoch a manifest listing entry names, or undefined when the entry is not a manifest. */
export function manifestEpochOf(dir: string, key: string): number | undefined {
  const name = key.slice(dir.length);
  return /^\d+$/.test(name) ? Number(name) : undefined;
}
