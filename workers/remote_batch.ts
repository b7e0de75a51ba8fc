/**
 * The state and the request/response logic of one remote function type in a worker (StateFun's
 * request-reply protocol; the HTTP part is remote/http_client.ts).
 *
 * State: a remote function declares its values at run time (an "incomplete invocation context"
 * reply names the missing ones), so an address's values are kept as one engine-side value, a map
 * `name -> {typename, bytes, expiresAt}` under the pseudo spec REMOTE_STATE_SPEC; the specs the
 * function declared live in `RemoteFnState.specs` (in memory: after a restart the first call
 * negotiates them again, as upstream does). Values are opaque bytes: the function owns their
 * format; statefn checks only that a value keeps the type its spec declares.
 */
import { pack, unpack } from 'msgpackr';
import type { Address } from '../api/address.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { ValueSpec } from '../api/function_api.js';
import { Message } from '../api/message.js';
import { builtinType, payloadBytes, Types, type Payload } from '../api/types.js';
import type { RemoteEndpoint, EndpointUrl } from '../api/endpoint.js';
import type {
  ExpireMode,
  InvocationBatchRequest,
  InvocationResponse,
  PbAddress,
  PbTypedValue,
  PersistedValueSpec,
} from '../remote/protocol.js';
import type { Invocation } from './invocation.js';

export interface RemoteValue {
  readonly typename: string;
  readonly bytes: Uint8Array;
  /** Clock ms after which the value is gone; 0 = never. */
  expiresAt: number;
}

export type RemoteValues = Map<string, RemoteValue>;

/** The record: `[[name, typename, bytes, expiresAt], ...]` (msgpack). */
export const REMOTE_STATE_TYPE = Types.custom<RemoteValues>(
  'statefn/remote-state',
  (m) => pack([...m].map(([name, v]) => [name, v.typename, v.bytes, v.expiresAt])),
  (b) => {
    const recs = unpack(b) as [string, string, Uint8Array, number][];
    if (!Array.isArray(recs)) throw new StatefnError(ErrorCode.STATE_INVALID, 'remote function state record is not a list');
    return new Map(recs.map(([name, typename, bytes, expiresAt]) => [name, { typename, bytes, expiresAt }]));
  },
);

export const REMOTE_STATE_SPEC: ValueSpec = { name: '\u0000remote', type: REMOTE_STATE_TYPE };

export interface RemoteSpec {
  readonly typename: string;
  readonly mode: ExpireMode;
  readonly ttlMs: number;
}

/** One remote function type in one worker. */
export interface RemoteFnState {
  readonly typename: string;
  readonly endpoint: RemoteEndpoint;
  readonly url: EndpointUrl;
  /** The values the function declared so far, by name. */
  readonly specs: Map<string, RemoteSpec>;
}

/** A message of a batch, as the worker holds it. */
export interface BatchMessage {
  readonly callerType: string | null;
  readonly callerId: string | null;
  readonly typename: string;
  readonly payload: Payload;
}

export function toPbAddress(typename: string, id: string): PbAddress {
  const slash = typename.lastIndexOf('/');
  return { namespace: typename.slice(0, slash), type: typename.slice(slash + 1), id };
}

function typed(typename: string, payload: Payload): PbTypedValue {
  return { typename, hasValue: true, value: payloadBytes(typename, payload) };
}

/** A value off the wire as the engine carries it: native for built-in types, bytes otherwise. */
export function toPayload(v: PbTypedValue, where: string): Payload {
  const t = builtinType(v.typename);
  if (t === undefined) return v.value;
  try {
    return t.deserialize(v.value) as Payload;
  } catch (e) {
    throw new StatefnError(
      ErrorCode.REMOTE_PROTOCOL,
      `${where}: a ${v.typename} value whose bytes do not decode (${(e as Error).message})`,
      { cause: e },
    );
  }
}

/** The request for a batch: every declared value (present or not) and the messages in order. */
export function buildRequest(
  fn: RemoteFnState,
  id: string,
  values: RemoteValues | undefined,
  batch: readonly BatchMessage[],
  now: number,
): InvocationBatchRequest {
  const state: InvocationBatchRequest['state'] = [];
  for (const [name, spec] of fn.specs) {
    const v = values?.get(name);
    if (v === undefined || (v.expiresAt !== 0 && v.expiresAt <= now)) {
      state.push({ stateName: name });
      continue;
    }
    if (v.typename !== spec.typename) {
      throw new StatefnError(
        ErrorCode.STATE_INVALID,
        `${fn.typename}/${id}: state '${name}' is stored as ${v.typename} but the function now declares it as ` +
          `${spec.typename}; declare it with its stored type, or under a new name`,
      );
    }
    state.push({ stateName: name, stateValue: { typename: v.typename, hasValue: true, value: v.bytes } });
  }
  return {
    target: toPbAddress(fn.typename, id),
    state,
    invocations: batch.map((m) => ({
      ...(m.callerType !== null ? { caller: toPbAddress(m.callerType, m.callerId!) } : {}),
      argument: typed(m.typename, m.payload),
    })),
  };
}

/**
 * Register the values an "incomplete invocation context" reply asks for. A name already declared
 * must keep its type. `sent` are the names the request carried: a reply asking only for those
 * would loop forever and is an error (names another batch registered meanwhile are fine: the
 * batch is simply sent again).
 */
export function registerSpecs(fn: RemoteFnState, missing: readonly PersistedValueSpec[], sent: ReadonlySet<string>): void {
  let fresh = 0;
  for (const m of missing) {
    if (m.stateName === '')
      throw new StatefnError(ErrorCode.REMOTE_PROTOCOL, `${fn.typename}: the function asked for a state value with an empty name`);
    const typename = m.typeTypename;
    const mode = m.expirationSpec?.mode ?? 'NONE';
    const ttlMs = mode === 'NONE' ? 0 : (m.expirationSpec?.expireAfterMillis ?? 0);
    if (mode !== 'NONE' && !(ttlMs > 0))
      throw new StatefnError(
        ErrorCode.REMOTE_PROTOCOL,
        `${fn.typename}: state '${m.stateName}' has expiration ${mode} with ${ttlMs} ms; expected a positive duration`,
      );
    if (!sent.has(m.stateName)) fresh++;
    const known = fn.specs.get(m.stateName);
    if (known !== undefined) {
      if (known.typename !== typename) {
        throw new StatefnError(
          ErrorCode.STATE_INVALID,
          `${fn.typename}: state '${m.stateName}' was declared as ${known.typename} and is now asked for as ${typename}; ` +
            `a value keeps its type (use a new name)`,
        );
      }
      continue;
    }
    fn.specs.set(m.stateName, { typename, mode, ttlMs });
  }
  if (fresh === 0) {
    throw new StatefnError(
      ErrorCode.REMOTE_PROTOCOL,
      `${fn.typename}: the function answered "incomplete invocation context" but asked for no value it does not already ` +
        `get (${missing.map((m) => m.stateName).join(', ') || 'none'})`,
    );
  }
}

/**
 * Stage a response's effects on `inv` (state into the REMOTE_STATE_SPEC value, then messages,
 * delayed messages and cancellations, egress, in the reply's order) so the worker commits them
 * exactly as an embedded invocation's. Validates everything first: a bad mutation fails the batch.
 */
export function stageResponse(
  fn: RemoteFnState,
  self: Address,
  values: RemoteValues | undefined,
  r: InvocationResponse,
  inv: Invocation,
  now: number,
): void {
  const where = `${fn.typename}/${self.id}`;
  if (r.stateMutations.length > 0 || hasInvokeTtl(fn)) {
    const next: RemoteValues = new Map();
    for (const [name, v] of values ?? []) if (v.expiresAt === 0 || v.expiresAt > now) next.set(name, { ...v });
    for (const m of r.stateMutations) {
      const spec = fn.specs.get(m.stateName);
      if (spec === undefined)
        throw new StatefnError(
          ErrorCode.STATE_INVALID,
          `${where}: the function changed state '${m.stateName}', which it never declared (declared: ` +
            `${[...fn.specs.keys()].join(', ') || 'none'})`,
        );
      if (m.mutationType === 'DELETE' || m.stateValue === undefined || !m.stateValue.hasValue) {
        next.delete(m.stateName);
        continue;
      }
      if (m.stateValue.typename !== spec.typename) {
        throw new StatefnError(
          ErrorCode.STATE_INVALID,
          `${where}: state '${m.stateName}' is declared as ${spec.typename} but the function wrote a ${m.stateValue.typename}`,
        );
      }
      next.set(m.stateName, { typename: spec.typename, bytes: m.stateValue.value, expiresAt: spec.mode === 'NONE' ? 0 : now + spec.ttlMs });
    }
    // Expire-after-invoke values live on with every call.
    for (const [name, spec] of fn.specs) {
      if (spec.mode !== 'AFTER_INVOKE') continue;
      const v = next.get(name);
      if (v !== undefined) v.expiresAt = now + spec.ttlMs;
    }
    inv.write(0, next.size === 0 ? undefined : next);
  }
  for (const m of r.outgoingMessages) {
    inv.send(fromPbAddress(m.target, where), new Message(m.argument.typename, toPayload(m.argument, where)));
  }
  for (const d of r.delayedInvocations) {
    if (d.isCancellationRequest) {
      inv.cancelDelayedMessage(d.cancellationToken);
      continue;
    }
    if (d.target === undefined || d.argument === undefined)
      throw new StatefnError(ErrorCode.REMOTE_PROTOCOL, `${where}: a delayed message without target or argument`);
    inv.sendAfter(
      Math.max(0, d.delayInMs),
      fromPbAddress(d.target, where),
      new Message(d.argument.typename, toPayload(d.argument, where)),
      d.cancellationToken === '' ? undefined : d.cancellationToken,
    );
  }
  for (const e of r.outgoingEgresses) {
    inv.egress(`${e.egressNamespace}/${e.egressType}`, new Message(e.argument.typename, toPayload(e.argument, where)));
  }
}

function hasInvokeTtl(fn: RemoteFnState): boolean {
  for (const s of fn.specs.values()) if (s.mode === 'AFTER_INVOKE') return true;
  return false;
}

function fromPbAddress(a: PbAddress, where: string): Address {
  if (a.namespace === '' || a.type === '')
    throw new StatefnError(ErrorCode.REMOTE_PROTOCOL, `${where}: a message to an address without namespace or type (${JSON.stringify(a)})`);
  return { typename: `${a.namespace}/${a.type}`, id: a.id };
}
