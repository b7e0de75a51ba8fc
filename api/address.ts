/**
 * Addresses: a function type (a TypeName `namespace/name`) plus an id. Every virtual instance of
 * a stateful function has one.
 */
import { ErrorCode, StatefnError } from '../shared/errors.js';

/** A function instance's address. `typename` is `namespace/name`. */
export interface Address {
  readonly typename: string;
  readonly id: string;
}

/**
 * Maximum length of a type name and of an id, in UTF-8 bytes (an ASCII character is one byte).
 * Together with the key's framing they stay under LMDB's key size limit (1,978 bytes).
 */
export const TYPENAME_LENGTH_MAX = 255;
export const ID_LENGTH_MAX = 1024;

/** True when `s` has more than `max` UTF-8 bytes (counted only when it could: a code unit is at most 3 bytes). */
export function overBytes(s: string, max: number): boolean {
  return s.length > max || (s.length * 3 > max && Buffer.byteLength(s, 'utf8') > max);
}

/**
 * Is `s` a valid TypeName: `namespace/name`, where the namespace may itself contain dots and
 * slashes (StateFun splits on the last slash) and neither part is empty.
 */
export function isTypeName(s: unknown): s is string {
  if (typeof s !== 'string' || s.length === 0 || overBytes(s, TYPENAME_LENGTH_MAX)) return false;
  const slash = s.lastIndexOf('/');
  return slash > 0 && slash < s.length - 1 && !/\s/.test(s);
}

/** Split a TypeName into namespace and name (StateFun splits at the last slash). */
export function splitTypeName(typename: string): { namespace: string; name: string } {
  const slash = typename.lastIndexOf('/');
  if (slash <= 0 || slash >= typename.length - 1) {
    throw new StatefnError(ErrorCode.ADDRESS_INVALID, `type name '${typename}' is invalid: expected 'namespace/name'`);
  }
  return { namespace: typename.slice(0, slash), name: typename.slice(slash + 1) };
}

export function joinTypeName(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Validate a TypeName, throwing a clear error that names where it came from. */
export function checkTypeName(s: unknown, where: string): string {
  if (!isTypeName(s)) {
    throw new StatefnError(ErrorCode.ADDRESS_INVALID, `${where}: expected a type name 'namespace/name', got ${JSON.stringify(s)}`);
  }
  return s;
}

/** Validate an address, throwing a clear error that names where it came from. */
export function checkAddress(a: unknown, where: string): Address {
  if (typeof a !== 'object' || a === null) {
    throw new StatefnError(ErrorCode.ADDRESS_INVALID, `${where}: expected an address {typename, id}, got ${String(a)}`);
  }
  const { typename, id } = a as { typename?: unknown; id?: unknown };
  checkTypeName(typename, `${where}.typename`);
  if (typeof id !== 'string' || id.length === 0 || overBytes(id, ID_LENGTH_MAX)) {
    throw new StatefnError(
      ErrorCode.ADDRESS_INVALID,
      `${where}.id: expected a non-empty string of at most ${ID_LENGTH_MAX} UTF-8 bytes, got ${JSON.stringify(id).slice(0, 80)}`,
    );
  }
  return { typename: typename as string, id };
}

export function formatAddress(a: Address): string {
  return `${a.typename}/${a.id}`;
}
