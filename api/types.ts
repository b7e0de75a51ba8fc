/**
 * Typed values. Every message and state value has a type name and bytes, exactly as in StateFun
 * (`TypedValue {typename, has_value, value}`). The built-in types use StateFun's typenames and
 * its wire format: a protobuf wrapper message with the value in field 1 (proto3 rules: a default
 * value is encoded as zero bytes).
 *
 * Inside the engine a value of a built-in type travels in its native JS form (a number, string or
 * boolean) and is serialized only where bytes are needed (state at rest, remote functions,
 * egress). `Type.native` marks such types.
 */
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { Payload } from '../shared/payload.js';

export interface Type<T> {
  /** The TypeName of values of this type, e.g. `io.statefun.types/int` or `com.example/Order`. */
  readonly typename: string;
  serialize(value: T): Uint8Array;
  deserialize(bytes: Uint8Array): T;
  /**
   * True if values may cross threads as plain JS values (number/string/boolean) instead of bytes.
   * Only built-in scalar types set it.
   */
  readonly native?: boolean;
  /** Check a native value before it is sent (throws a TYPE_MISMATCH StatefnError when wrong). */
  check?(value: unknown): void;
}

export type TypeOf<X> = X extends Type<infer T> ? T : never;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function mismatch(typename: string, detail: string): StatefnError {
  return new StatefnError(ErrorCode.TYPE_MISMATCH, `${typename}: ${detail}`);
}

// ---- protobuf wrapper codecs (field 1 only; unknown fields skipped when decoding) ----

function readVarint(b: Uint8Array, pos: { i: number }): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos.i >= b.length) throw new Error('truncated varint');
    const byte = b[pos.i++]!;
    if (shift < 28) result |= (byte & 0x7f) << shift;
    else result += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) break;
    shift += 7;
    if (shift > 63) throw new Error('varint too long');
  }
  return result >>> 0 === result ? result : result;
}

function writeVarint(out: number[], v: number): void {
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/** Find field 1 of a wrapper message: returns [wireType, offset] of its payload or undefined. */
function findField1(b: Uint8Array, typename: string): { wire: number; at: number; len?: number } | undefined {
  const pos = { i: 0 };
  let found: { wire: number; at: number; len?: number } | undefined;
  try {
    while (pos.i < b.length) {
      const tag = readVarint(b, pos);
      const field = tag >>> 3;
      const wire = tag & 7;
      const at = pos.i;
      let len: number | undefined;
      switch (wire) {
        case 0:
          readVarint(b, pos);
          break;
        case 1:
          pos.i += 8;
          break;
        case 5:
          pos.i += 4;
          break;
        case 2:
          len = readVarint(b, pos);
          pos.i += len;
          break;
        default:
          throw new Error(`unsupported wire type ${wire}`);
      }
      if (pos.i > b.length) throw new Error('truncated field');
      // protobuf: the last occurrence of a scalar field wins.
      if (field === 1) found = wire === 2 ? { wire, at: pos.i - len!, len: len! } : { wire, at };
    }
  } catch (e) {
    throw mismatch(typename, `malformed protobuf wrapper (${(e as Error).message})`);
  }
  return found;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function expectWire(typename: string, f: { wire: number }, wire: number): void {
  if (f.wire !== wire) throw mismatch(typename, `field 1 has wire type ${f.wire}, expected ${wire}`);
}

const EMPTY = new Uint8Array(0);

function builtin<T>(t: Type<T>): Type<T> {
  return Object.freeze({ ...t, native: true });
}

const boolType = builtin<boolean>({
  typename: 'io.statefun.types/bool',
  serialize: (v) => (v ? Uint8Array.of(0x08, 0x01) : EMPTY),
  deserialize: (b) => {
    const f = findField1(b, 'io.statefun.types/bool');
    if (!f) return false;
    expectWire('io.statefun.types/bool', f, 0);
    return readVarint(b, { i: f.at }) !== 0;
  },
  check: (v) => {
    if (typeof v !== 'boolean') throw mismatch('io.statefun.types/bool', `expected a boolean, got ${typeof v}`);
  },
});

const intType = builtin<number>({
  typename: 'io.statefun.types/int',
  serialize: (v) => {
    if (v === 0) return EMPTY;
    const b = new Uint8Array(5);
    b[0] = 0x0d; // field 1, wire type 5 (sfixed32)
    view(b).setInt32(1, v, true);
    return b;
  },
  deserialize: (b) => {
    const f = findField1(b, 'io.statefun.types/int');
    if (!f) return 0;
    expectWire('io.statefun.types/int', f, 5);
    return view(b).getInt32(f.at, true);
  },
  check: (v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
      throw mismatch('io.statefun.types/int', `expected a 32-bit integer, got ${String(v)}`);
    }
  },
});

const longType = builtin<number>({
  typename: 'io.statefun.types/long',
  serialize: (v) => {
    if (v === 0) return EMPTY;
    const b = new Uint8Array(9);
    b[0] = 0x09; // field 1, wire type 1 (sfixed64)
    // Two's complement of a safe integer without BigInt (25x cheaper; same bytes).
    const lo = v >>> 0;
    const hi = Math.floor(v / 4294967296) >>> 0;
    b[1] = lo;
    b[2] = lo >>> 8;
    b[3] = lo >>> 16;
    b[4] = lo >>> 24;
    b[5] = hi;
    b[6] = hi >>> 8;
    b[7] = hi >>> 16;
    b[8] = hi >>> 24;
    return b;
  },
  deserialize: (b) => {
    const f = findField1(b, 'io.statefun.types/long');
    if (!f) return 0;
    expectWire('io.statefun.types/long', f, 1);
    const big = view(b).getBigInt64(f.at, true);
    const n = Number(big);
    if (!Number.isSafeInteger(n)) throw mismatch('io.statefun.types/long', `value ${big} is beyond Number.MAX_SAFE_INTEGER`);
    return n;
  },
  check: (v) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw mismatch('io.statefun.types/long', `expected a safe integer, got ${String(v)}`);
    }
  },
});

const floatType = builtin<number>({
  typename: 'io.statefun.types/float',
  serialize: (v) => {
    if (v === 0 && !Object.is(v, -0)) return EMPTY;
    const b = new Uint8Array(5);
    b[0] = 0x0d;
    view(b).setFloat32(1, v, true);
    return b;
  },
  deserialize: (b) => {
    const f = findField1(b, 'io.statefun.types/float');
    if (!f) return 0;
    expectWire('io.statefun.types/float', f, 5);
    return view(b).getFloat32(f.at, true);
  },
  check: (v) => {
    if (typeof v !== 'number') throw mismatch('io.statefun.types/float', `expected a number, got ${typeof v}`);
  },
});

const doubleType = builtin<number>({
  typename: 'io.statefun.types/double',
  serialize: (v) => {
    if (v === 0 && !Object.is(v, -0)) return EMPTY;
    const b = new Uint8Array(9);
    b[0] = 0x09;
    view(b).setFloat64(1, v, true);
    return b;
  },
  deserialize: (b) => {
    const f = findField1(b, 'io.statefun.types/double');
    if (!f) return 0;
    expectWire('io.statefun.types/double', f, 1);
    return view(b).getFloat64(f.at, true);
  },
  check: (v) => {
    if (typeof v !== 'number') throw mismatch('io.statefun.types/double', `expected a number, got ${typeof v}`);
  },
});

const stringType = builtin<string>({
  typename: 'io.statefun.types/string',
  serialize: (v) => {
    if (v.length === 0) return EMPTY;
    const body = enc.encode(v);
    const head: number[] = [0x0a];
    writeVarint(head, body.length);
    const b = new Uint8Array(head.length + body.length);
    b.set(head, 0);
    b.set(body, head.length);
    return b;
  },
  deserialize: (b) => {
    const f = findField1(b, 'io.statefun.types/string');
    if (!f) return '';
    expectWire('io.statefun.types/string', f, 2);
    try {
      return dec.decode(b.subarray(f.at, f.at + f.len!));
    } catch {
      throw mismatch('io.statefun.types/string', 'value is not valid UTF-8');
    }
  },
  check: (v) => {
    if (typeof v !== 'string') throw mismatch('io.statefun.types/string', `expected a string, got ${typeof v}`);
  },
});

/** A JSON-encoded custom type (UTF-8 JSON bytes), as StateFun's SDKs' `jsonType`. */
function json<T = unknown>(typename: string): Type<T> {
  return Object.freeze({
    typename,
    serialize: (v: T) => enc.encode(JSON.stringify(v)),
    deserialize: (b: Uint8Array) => {
      try {
        return JSON.parse(dec.decode(b)) as T;
      } catch (e) {
        throw mismatch(typename, `invalid JSON (${(e as Error).message})`);
      }
    },
  });
}

/** Raw bytes under a type name of your choosing (e.g. a protobuf message you encode yourself). */
function raw(typename: string): Type<Uint8Array> {
  return Object.freeze({
    typename,
    serialize: (v: Uint8Array) => v,
    deserialize: (b: Uint8Array) => b,
  });
}

/** A user-defined type: a type name plus a serializer. */
function custom<T>(typename: string, serialize: (v: T) => Uint8Array, deserialize: (b: Uint8Array) => T): Type<T> {
  return Object.freeze({ typename, serialize, deserialize });
}

export const Types = {
  bool: boolType,
  int: intType,
  long: longType,
  float: floatType,
  double: doubleType,
  string: stringType,
  json,
  raw,
  custom,
} as const;

const BUILTINS: ReadonlyMap<string, Type<unknown>> = new Map(
  [boolType, intType, longType, floatType, doubleType, stringType].map((t) => [t.typename, t as Type<unknown>]),
);

/** The built-in type with this name, if any. */
export function builtinType(typename: string): Type<unknown> | undefined {
  return BUILTINS.get(typename);
}

// The Payload type is defined in shared/ (the frames and links carry payloads) and re-exported
// here, where applications have always imported it from.
export type { Payload };

/**
 * Check that `payload` can travel under `typename`: bytes always can; a native value only under
 * a built-in type name, and only if it passes that type's check (an int is a 32-bit integer...).
 */
export function checkPayload(typename: string, payload: unknown): Payload {
  if (payload instanceof Uint8Array) return payload;
  const t = BUILTINS.get(typename);
  if (!t) throw mismatch(typename, `a native value (${typeof payload}) can only carry a built-in type`);
  t.check!(payload);
  return payload as Payload;
}

/** Convert a payload to bytes (for state at rest, remote functions, egress). */
export function payloadBytes(typename: string, payload: Payload): Uint8Array {
  if (payload instanceof Uint8Array) return payload;
  checkPayload(typename, payload);
  return BUILTINS.get(typename)!.serialize(payload);
}

/** Make the payload for a value of `type`: native for built-ins, bytes otherwise. */
export function toPayload<T>(type: Type<T>, value: T): Payload {
  if (type.native) {
    type.check?.(value);
    // A float travels natively but must read back as it would after its 32-bit wire format.
    if (type.typename === 'io.statefun.types/float') return Math.fround(value as unknown as number);
    return value as unknown as Payload;
  }
  const bytes = type.serialize(value);
  if (!(bytes instanceof Uint8Array)) throw mismatch(type.typename, 'serializer did not return a Uint8Array');
  return bytes;
}

/** Read a payload as `type`. Throws TYPE_MISMATCH when the typenames differ. */
export function fromPayload<T>(type: Type<T>, typename: string, payload: Payload): T {
  if (typename !== type.typename) {
    throw mismatch(type.typename, `value has type ${typename}`);
  }
  if (payload instanceof Uint8Array) return type.deserialize(payload);
  if (type.native) return payload as unknown as T;
  // A native payload read through a non-native type with the same name (a user type that
  // reuses a built-in name): go through bytes.
  return type.deserialize(payloadBytes(typename, payload));
}
