/**
 * The codec of StateFun 3.x's remote-function request-reply protocol (`ToFunction` /
 * `FromFunction`, package `io.statefun.sdk.reqreply`, proto3), so statefn talks to functions
 * written with StateFun's official SDKs and its own SDK (sdk/) talks to StateFun's runtime.
 *
 * The messages are described by the proto text below and encoded/decoded by protobufjs'
 * reflection API; this file only converts between protobufjs' objects and plain TS values:
 *
 * - int64 fields become numbers; a value outside the JS safe-integer range is a ProtocolError.
 * - enums become their names; an unknown number is a ProtocolError.
 * - `bytes` fields become fresh, exact-size, plain `Uint8Array`s (copies, never views of the
 *   input or of a pooled Buffer): values outlive the request (state caches, delayed messages),
 *   must not pin a whole reply in memory, and may be transferred to other threads. A copy of up
 *   to 64 bytes lives on V8's heap (~20 ns); a larger one costs an ArrayBuffer (~0.2-1 us) --
 *   most of what decoding adds to protobufjs' own decode.
 * - An absent sub-message the protocol needs (a batch's target, an invocation's argument, an
 *   outgoing message's target...) is a ProtocolError. Unknown fields are skipped.
 * - Encoding returns a fresh plain `Uint8Array` too (protobufjs' own writers hand out slices of a
 *   shared slab).
 */
import protobuf from 'protobufjs';
import { ErrorCode, StatefnError } from '../shared/errors.js';

export interface PbAddress {
  namespace: string;
  type: string;
  id: string;
}
export interface PbTypedValue {
  typename: string;
  hasValue: boolean;
  value: Uint8Array;
}
export interface PersistedValue {
  stateName: string;
  stateValue?: PbTypedValue;
}
export interface InvocationBatchRequest {
  target: PbAddress;
  state: PersistedValue[];
  invocations: { caller?: PbAddress; argument: PbTypedValue }[];
}
export type MutationType = 'DELETE' | 'MODIFY';
export interface PersistedValueMutation {
  mutationType: MutationType;
  stateName: string;
  stateValue?: PbTypedValue;
}
export interface DelayedInvocation {
  isCancellationRequest: boolean;
  cancellationToken: string;
  delayInMs: number;
  target?: PbAddress;
  argument?: PbTypedValue;
}
export interface EgressMessage {
  egressNamespace: string;
  egressType: string;
  argument: PbTypedValue;
}
export interface InvocationResponse {
  stateMutations: PersistedValueMutation[];
  outgoingMessages: { target: PbAddress; argument: PbTypedValue }[];
  delayedInvocations: DelayedInvocation[];
  outgoingEgresses: EgressMessage[];
}
export type ExpireMode = 'NONE' | 'AFTER_WRITE' | 'AFTER_INVOKE';
export interface PersistedValueSpec {
  stateName: string;
  expirationSpec?: { mode: ExpireMode; expireAfterMillis: number };
  typeTypename: string;
}
export type FromFunction =
  { kind: 'result'; result: InvocationResponse } | { kind: 'incomplete'; missingValues: PersistedValueSpec[] } | { kind: 'empty' };

/** Bytes that are not valid request-reply protobuf (or a message the protocol cannot carry). */
export class ProtocolError extends StatefnError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(ErrorCode.REMOTE_PROTOCOL, message, options);
    this.name = 'ProtocolError';
  }
}

// The wire schema (field numbers and types as in StateFun's request-reply.proto).
const PROTO = `
syntax = "proto3";
package io.statefun.sdk.reqreply;

message Address {
  string namespace = 1;
  string type = 2;
  string id = 3;
}

message TypedValue {
  string typename = 1;
  bool has_value = 2;
  bytes value = 3;
}

message ToFunction {
  message PersistedValue {
    string state_name = 1;
    TypedValue state_value = 2;
  }
  message Invocation {
    Address caller = 1;
    TypedValue argument = 2;
  }
  message InvocationBatchRequest {
    Address target = 1;
    repeated PersistedValue state = 2;
    repeated Invocation invocations = 3;
  }
  oneof request {
    InvocationBatchRequest invocation = 100;
  }
}

message FromFunction {
  message PersistedValueMutation {
    enum MutationType {
      DELETE = 0;
      MODIFY = 1;
    }
    MutationType mutation_type = 1;
    string state_name = 2;
    TypedValue state_value = 3;
  }
  message Invocation {
    Address target = 1;
    TypedValue argument = 2;
  }
  message DelayedInvocation {
    bool is_cancellation_request = 10;
    string cancellation_token = 11;
    int64 delay_in_ms = 1;
    Address target = 2;
    TypedValue argument = 3;
  }
  message EgressMessage {
    string egress_namespace = 1;
    string egress_type = 2;
    TypedValue argument = 3;
  }
  message InvocationResponse {
    repeated PersistedValueMutation state_mutations = 1;
    repeated Invocation outgoing_messages = 2;
    repeated DelayedInvocation delayed_invocations = 3;
    repeated EgressMessage outgoing_egresses = 4;
  }
  message ExpirationSpec {
    enum ExpireMode {
      NONE = 0;
      AFTER_WRITE = 1;
      AFTER_INVOKE = 2;
    }
    ExpireMode mode = 1;
    int64 expire_after_millis = 2;
  }
  message PersistedValueSpec {
    string state_name = 1;
    ExpirationSpec expiration_spec = 2;
    string type_typename = 3;
  }
  message IncompleteInvocationContext {
    repeated PersistedValueSpec missing_values = 1;
  }
  oneof response {
    InvocationResponse invocation_result = 100;
    IncompleteInvocationContext incomplete_invocation_context = 101;
  }
}
`;

const root = protobuf.parse(PROTO).root;
const ToFunctionPb = root.lookupType('io.statefun.sdk.reqreply.ToFunction');
const FromFunctionPb = root.lookupType('io.statefun.sdk.reqreply.FromFunction');

// ---- what protobufjs' decoder produces (field names camel-cased; defaults on the prototype) ----

/** protobufjs' Long (the `long` package), for int64 fields. */
interface LongLike {
  low: number;
  high: number;
  unsigned: boolean;
}
/** A decoded `bytes` field: a Buffer view of the input, or protobufjs' shared `[]` default. */
type RawBytes = Uint8Array | readonly number[];
interface RawAddress {
  namespace: string;
  type: string;
  id: string;
}
interface RawTypedValue {
  typename: string;
  hasValue: boolean;
  value: RawBytes;
}
interface RawToFunction {
  invocation: {
    target: RawAddress | null;
    state: { stateName: string; stateValue: RawTypedValue | null }[];
    invocations: { caller: RawAddress | null; argument: RawTypedValue | null }[];
  } | null;
}
interface RawTarget {
  target: RawAddress | null;
  argument: RawTypedValue | null;
}
interface RawFromFunction {
  invocationResult: {
    stateMutations: { mutationType: number; stateName: string; stateValue: RawTypedValue | null }[];
    outgoingMessages: RawTarget[];
    delayedInvocations: (RawTarget & { isCancellationRequest: boolean; cancellationToken: string; delayInMs: number | LongLike })[];
    outgoingEgresses: { egressNamespace: string; egressType: string; argument: RawTypedValue | null }[];
  } | null;
  incompleteInvocationContext: {
    missingValues: {
      stateName: string;
      typeTypename: string;
      expirationSpec: { mode: number; expireAfterMillis: number | LongLike } | null;
    }[];
  } | null;
}

const MUTATION_TYPES: readonly MutationType[] = ['DELETE', 'MODIFY'];
const EXPIRE_MODES: readonly ExpireMode[] = ['NONE', 'AFTER_WRITE', 'AFTER_INVOKE'];

// ---- decoding ----

function decodeRaw(type: protobuf.Type, bytes: Uint8Array, what: string): unknown {
  if (!(bytes instanceof Uint8Array)) throw new ProtocolError(`${what}: expected bytes, got ${typeof bytes}`);
  try {
    // The plain reader even for a Buffer: this protocol's strings are short (type names, ids),
    // where protobufjs' JS UTF-8 decoder beats Buffer#utf8Slice.
    return type.decode(new protobuf.Reader(bytes));
  } catch (e) {
    throw new ProtocolError(`${what}: malformed protobuf (${(e as Error).message})`, { cause: e });
  }
}

const EMPTY_BYTES = new Uint8Array(0);

/** A fresh plain Uint8Array with the bytes (a zero-length one is shared: it cannot be mutated). */
function copyBytes(b: RawBytes): Uint8Array {
  return b.length === 0 ? EMPTY_BYTES : new Uint8Array(b);
}

function address(a: RawAddress): PbAddress {
  return { namespace: a.namespace, type: a.type, id: a.id };
}

function typedValue(v: RawTypedValue): PbTypedValue {
  return { typename: v.typename, hasValue: v.hasValue, value: copyBytes(v.value) };
}

function required<T>(v: T | null | undefined, where: string): T {
  if (v === null || v === undefined) throw new ProtocolError(`${where} is missing`);
  return v;
}

/** An int64 as a number; throws unless it is a safe integer. */
function int64(v: number | LongLike, where: string): number {
  // A signed Long is high * 2^32 + (low as unsigned); that sum is exact whenever the value is a
  // safe integer, and rounds to an unsafe number otherwise.
  const n = typeof v === 'number' ? v : v.high * 4294967296 + (v.low >>> 0);
  if (!Number.isSafeInteger(n)) {
    const text = typeof v === 'number' ? String(v) : String(BigInt(v.high) * 4294967296n + BigInt(v.low >>> 0));
    throw new ProtocolError(`${where} = ${text} is outside the safe integer range (±2^53-1)`);
  }
  return n;
}

function enumName<E extends string>(names: readonly E[], v: number, where: string): E {
  const name = names[v];
  if (name === undefined) throw new ProtocolError(`${where}: unknown enum value ${v}`);
  return name;
}

/** Decode a ToFunction message (what the runtime sends to a function). */
export function decodeToFunction(bytes: Uint8Array): InvocationBatchRequest {
  const raw = decodeRaw(ToFunctionPb, bytes, 'ToFunction') as RawToFunction;
  const batch = required(raw.invocation, 'ToFunction.invocation');
  const state: PersistedValue[] = new Array<PersistedValue>(batch.state.length);
  for (let i = 0; i < batch.state.length; i++) {
    const s = batch.state[i]!;
    state[i] = s.stateValue === null ? { stateName: s.stateName } : { stateName: s.stateName, stateValue: typedValue(s.stateValue) };
  }
  const invocations: InvocationBatchRequest['invocations'] = new Array<InvocationBatchRequest['invocations'][number]>(
    batch.invocations.length,
  );
  for (let i = 0; i < batch.invocations.length; i++) {
    const inv = batch.invocations[i]!;
    const argument = typedValue(required(inv.argument, `ToFunction.invocation.invocations[${i}].argument`));
    invocations[i] = inv.caller === null ? { argument } : { caller: address(inv.caller), argument };
  }
  return { target: address(required(batch.target, 'ToFunction.invocation.target')), state, invocations };
}

/** Decode a FromFunction message (a function's reply). */
export function decodeFromFunction(bytes: Uint8Array): FromFunction {
  const raw = decodeRaw(FromFunctionPb, bytes, 'FromFunction') as RawFromFunction;
  if (raw.invocationResult !== null) return { kind: 'result', result: invocationResponse(raw.invocationResult) };
  if (raw.incompleteInvocationContext !== null) {
    const specs = raw.incompleteInvocationContext.missingValues;
    const missingValues: PersistedValueSpec[] = new Array<PersistedValueSpec>(specs.length);
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i]!;
      const where = `FromFunction.incomplete_invocation_context.missing_values[${i}]`;
      const spec: PersistedValueSpec = { stateName: s.stateName, typeTypename: s.typeTypename };
      if (s.expirationSpec !== null) {
        spec.expirationSpec = {
          mode: enumName(EXPIRE_MODES, s.expirationSpec.mode, `${where}.expiration_spec.mode`),
          expireAfterMillis: int64(s.expirationSpec.expireAfterMillis, `${where}.expiration_spec.expire_after_millis`),
        };
      }
      missingValues[i] = spec;
    }
    return { kind: 'incomplete', missingValues };
  }
  return { kind: 'empty' };
}

function invocationResponse(r: NonNullable<RawFromFunction['invocationResult']>): InvocationResponse {
  const at = 'FromFunction.invocation_result';
  const stateMutations: PersistedValueMutation[] = new Array<PersistedValueMutation>(r.stateMutations.length);
  for (let i = 0; i < r.stateMutations.length; i++) {
    const m = r.stateMutations[i]!;
    const where = `${at}.state_mutations[${i}]`;
    const mutationType = enumName(MUTATION_TYPES, m.mutationType, `${where}.mutation_type`);
    if (m.stateValue !== null) {
      stateMutations[i] = { mutationType, stateName: m.stateName, stateValue: typedValue(m.stateValue) };
    } else if (mutationType === 'MODIFY') {
      throw new ProtocolError(`${where}.state_value is missing (a MODIFY mutation of '${m.stateName}' must carry the new value)`);
    } else {
      stateMutations[i] = { mutationType, stateName: m.stateName };
    }
  }
  const outgoingMessages: InvocationResponse['outgoingMessages'] = new Array<InvocationResponse['outgoingMessages'][number]>(
    r.outgoingMessages.length,
  );
  for (let i = 0; i < r.outgoingMessages.length; i++) {
    const m = r.outgoingMessages[i]!;
    const where = `${at}.outgoing_messages[${i}]`;
    outgoingMessages[i] = {
      target: address(required(m.target, `${where}.target`)),
      argument: typedValue(required(m.argument, `${where}.argument`)),
    };
  }
  const delayedInvocations: DelayedInvocation[] = new Array<DelayedInvocation>(r.delayedInvocations.length);
  for (let i = 0; i < r.delayedInvocations.length; i++) {
    const d = r.delayedInvocations[i]!;
    const where = `${at}.delayed_invocations[${i}]`;
    const out: DelayedInvocation = {
      isCancellationRequest: d.isCancellationRequest,
      cancellationToken: d.cancellationToken,
      delayInMs: int64(d.delayInMs, `${where}.delay_in_ms`),
    };
    if (d.isCancellationRequest) {
      if (d.cancellationToken === '') throw new ProtocolError(`${where}: a cancellation request without a cancellation_token`);
      if (d.target !== null) out.target = address(d.target);
      if (d.argument !== null) out.argument = typedValue(d.argument);
    } else {
      out.target = address(required(d.target, `${where}.target`));
      out.argument = typedValue(required(d.argument, `${where}.argument`));
    }
    delayedInvocations[i] = out;
  }
  const outgoingEgresses: EgressMessage[] = new Array<EgressMessage>(r.outgoingEgresses.length);
  for (let i = 0; i < r.outgoingEgresses.length; i++) {
    const e = r.outgoingEgresses[i]!;
    outgoingEgresses[i] = {
      egressNamespace: e.egressNamespace,
      egressType: e.egressType,
      argument: typedValue(required(e.argument, `${at}.outgoing_egresses[${i}].argument`)),
    };
  }
  return { stateMutations, outgoingMessages, delayedInvocations, outgoingEgresses };
}

// ---- encoding ----

function finish(type: protobuf.Type, message: object): Uint8Array {
  const w = type.encode(message);
  return w.finishInto(new Uint8Array(w.pos));
}

function int64Out(n: number, where: string): number {
  if (!Number.isSafeInteger(n)) throw new ProtocolError(`${where}: expected a safe integer, got ${String(n)}`);
  return n;
}

function enumNumber<E extends string>(names: readonly E[], name: E, where: string): number {
  const i = names.indexOf(name);
  if (i < 0) throw new ProtocolError(`${where}: unknown value ${JSON.stringify(name)}`);
  return i;
}

/** Encode a ToFunction message carrying one invocation batch. */
export function encodeToFunction(req: InvocationBatchRequest): Uint8Array {
  // protobufjs encodes plain objects whose properties are its (camel-cased) field names: the TS
  // shapes above are exactly that, so they go in as they are.
  return finish(ToFunctionPb, { invocation: req });
}

/** Encode a FromFunction message (`empty` encodes as zero bytes: no side effects). */
export function encodeFromFunction(resp: FromFunction): Uint8Array {
  switch (resp.kind) {
    case 'empty':
      return new Uint8Array(0);
    case 'result': {
      const r = resp.result;
      const invocationResult = {
        stateMutations: r.stateMutations.map((m, i) => ({
          ...m,
          mutationType: enumNumber(MUTATION_TYPES, m.mutationType, `state_mutations[${i}].mutation_type`),
        })),
        outgoingMessages: r.outgoingMessages,
        delayedInvocations: r.delayedInvocations.map((d, i) => ({
          ...d,
          delayInMs: int64Out(d.delayInMs, `delayed_invocations[${i}].delay_in_ms`),
        })),
        outgoingEgresses: r.outgoingEgresses,
      };
      return finish(FromFunctionPb, { invocationResult });
    }
    case 'incomplete': {
      const missingValues = resp.missingValues.map((s, i) =>
        s.expirationSpec === undefined
          ? s
          : {
              ...s,
              expirationSpec: {
                mode: enumNumber(EXPIRE_MODES, s.expirationSpec.mode, `missing_values[${i}].expiration_spec.mode`),
                expireAfterMillis: int64Out(s.expirationSpec.expireAfterMillis, `missing_values[${i}].expiration_spec.expire_after_millis`),
              },
            },
      );
      return finish(FromFunctionPb, { incompleteInvocationContext: { missingValues } });
    }
    default:
      throw new ProtocolError(`FromFunction: unknown kind ${JSON.stringify((resp as { kind: unknown }).kind)}`);
  }
}
