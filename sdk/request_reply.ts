/**
 * The core of the remote-function SDK: run one StateFun `ToFunction` invocation batch against
 * functions written with statefn's own function API (`defineFunction`, `Context`, `ValueSpec`)
 * and build the `FromFunction` reply. The same FunctionSpecs run embedded in the engine or
 * remotely behind this SDK.
 *
 * Semantics (as StateFun's official SDKs):
 * - The batch's target `namespace/type` picks the function; an unknown one is an
 *   UNKNOWN_FUNCTION_TYPE error.
 * - If any declared ValueSpec is absent from the batch's state list, nothing runs: the reply is an
 *   "incomplete invocation context" listing every missing spec (name, type, TTL), and the runtime
 *   retries the batch with those values.
 * - Otherwise the handler runs for each invocation in order (async handlers are awaited). State
 *   reads deserialize with the spec's type; writes and deletes are staged and seen by later
 *   invocations of the batch. The reply carries one mutation per changed value, then the
 *   messages, delayed messages (and cancellations) and egress messages, each in call order.
 * - A handler that throws fails the whole batch (HANDLER_FAILED): the runtime retries it.
 */
import { checkAddress, splitTypeName, type Address } from '../api/address.js';
import { App } from '../api/app.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { Context, FunctionSpec, ValueSpec } from '../api/function_api.js';
import { Message, checkMessage } from '../api/message.js';
import { builtinType } from '../api/types.js';
import {
  decodeToFunction,
  encodeFromFunction,
  type DelayedInvocation,
  type EgressMessage,
  type InvocationResponse,
  type PbAddress,
  type PbTypedValue,
  type PersistedValueMutation,
  type PersistedValueSpec,
} from '../remote/protocol.js';

/** What the SDK serves: an App (its embedded functions) or a list of FunctionSpecs (`any`: each spec's storage type is its own). */
// A list of specs with different storage types has no common type parameter (a handler's
// parameter is contravariant), so the element type must be FunctionSpec<any>.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Functions = Pick<App, 'functions'> | readonly FunctionSpec<any>[];

/** Function types by typename. */
export type FunctionIndex = ReadonlyMap<string, FunctionSpec>;

const indexes = new WeakMap<object, FunctionIndex>();

/**
 * The function index of `functions`. A list is validated once (as `App.function` does: valid
 * typenames, unique spec names, TTLs) and cached; an App's live map is used as is.
 */
export function functionIndex(functions: Functions): FunctionIndex {
  if (!Array.isArray(functions)) {
    const map = (functions as Pick<App, 'functions'>)?.functions;
    if (!(map instanceof Map)) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, 'expected an App or an array of FunctionSpecs');
    }
    return map;
  }
  let index = indexes.get(functions);
  if (index === undefined) {
    const app = new App();
    for (const spec of functions as readonly FunctionSpec[]) app.function(spec);
    index = app.functions;
    indexes.set(functions, index);
  }
  return index;
}

/**
 * Handle one request-reply call: decode the `ToFunction` bytes, run the batch, encode the
 * `FromFunction` reply. Throws a StatefnError: REMOTE_PROTOCOL for malformed bytes,
 * UNKNOWN_FUNCTION_TYPE for a target nobody serves, HANDLER_FAILED when a handler throws.
 */
export async function handleInvocationBatch(functions: Functions | FunctionIndex, requestBytes: Uint8Array): Promise<Uint8Array> {
  const index = functions instanceof Map ? (functions as FunctionIndex) : functionIndex(functions as Functions);
  const req = decodeToFunction(requestBytes);
  const typename = `${req.target.namespace}/${req.target.type}`;
  const fn = index.get(typename);
  if (fn === undefined) {
    throw new StatefnError(
      ErrorCode.UNKNOWN_FUNCTION_TYPE,
      `unknown function type '${typename}' (served here: ${[...index.keys()].join(', ') || 'none'})`,
    );
  }
  const specs = fn.specs ?? [];

  // A value the runtime knows is listed even when it has no value (no state_value, or
  // has_value = false); one it does not list has not been registered yet.
  const received = new Map<string, PbTypedValue | undefined>();
  for (const s of req.state) received.set(s.stateName, s.stateValue);
  const missing = specs.filter((s) => !received.has(s.name));
  if (missing.length > 0) {
    return encodeFromFunction({ kind: 'incomplete', missingValues: missing.map(persistedValueSpec) });
  }

  const self: Address = { typename, id: req.target.id };
  const batch = new Batch(
    self,
    specs,
    specs.map((s) => received.get(s.name)),
  );
  for (const inv of req.invocations) {
    const ctx = new RemoteContext(self, callerOf(inv.caller), batch);
    try {
      const r = fn.handler(ctx, messageOf(inv.argument));
      if (r !== undefined && typeof r.then === 'function') await r;
    } catch (e) {
      throw new StatefnError(
        ErrorCode.HANDLER_FAILED,
        `${typename}/${self.id}: handler failed: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    } finally {
      ctx.closed = true;
    }
  }
  batch.closed = true;
  return encodeFromFunction({ kind: 'result', result: batch.response() });
}

/** How a declared value is announced in an incomplete-invocation-context reply. */
function persistedValueSpec(s: ValueSpec): PersistedValueSpec {
  const spec: PersistedValueSpec = { stateName: s.name, typeTypename: s.type.typename };
  // Like StateFun's JS SDK, a value without a TTL carries no expiration spec (= mode NONE).
  if (s.expireAfterWrite !== undefined) spec.expirationSpec = { mode: 'AFTER_WRITE', expireAfterMillis: s.expireAfterWrite };
  else if (s.expireAfterCall !== undefined) spec.expirationSpec = { mode: 'AFTER_INVOKE', expireAfterMillis: s.expireAfterCall };
  return spec;
}

/** A message argument as the engine's Message: built-in types carry their native value. */
function messageOf(arg: PbTypedValue): Message {
  const builtin = builtinType(arg.typename);
  return new Message(arg.typename, builtin === undefined ? arg.value : (builtin.deserialize(arg.value) as string | number | boolean));
}

/** The caller, absent for ingress messages (as the Python SDK, an all-empty address counts as none). */
function callerOf(a: PbAddress | undefined): Address | undefined {
  if (a === undefined || (a.namespace === '' && a.type === '' && a.id === '')) return undefined;
  return { typename: `${a.namespace}/${a.type}`, id: a.id };
}

function pbAddress(to: Address): PbAddress {
  const { namespace, name } = splitTypeName(to.typename);
  return { namespace, type: name, id: to.id };
}

function pbTypedValue(m: Message): PbTypedValue {
  return { typename: m.typename, hasValue: true, value: m.bytes() };
}

/** The state and the collected effects of one batch. */
class Batch {
  /** Current values (valid where `known`); `undefined` = no value. */
  private readonly values: unknown[];
  private readonly known: boolean[];
  private readonly dirty: boolean[];
  readonly storage: Record<string, unknown>;
  readonly sends: InvocationResponse['outgoingMessages'] = [];
  readonly delayed: DelayedInvocation[] = [];
  readonly egresses: EgressMessage[] = [];
  closed = false;

  constructor(
    private readonly self: Address,
    private readonly specs: readonly ValueSpec[],
    private readonly received: readonly (PbTypedValue | undefined)[],
  ) {
    this.values = new Array<unknown>(specs.length);
    this.known = new Array<boolean>(specs.length).fill(false);
    this.dirty = new Array<boolean>(specs.length).fill(false);
    this.storage = storageProxy(this, specs);
  }

  where(): string {
    return `${this.self.typename}/${this.self.id}`;
  }

  read(i: number): unknown {
    if (this.known[i]) return this.values[i];
    const spec = this.specs[i]!;
    const tv = this.received[i];
    let v: unknown;
    if (tv !== undefined && tv.hasValue) {
      if (tv.typename !== spec.type.typename) {
        throw new StatefnError(
          ErrorCode.TYPE_MISMATCH,
          `state '${spec.name}' holds a ${tv.typename}, but its spec declares ${spec.type.typename}`,
        );
      }
      v = spec.type.deserialize(tv.value);
    }
    this.values[i] = v;
    this.known[i] = true;
    return v;
  }

  write(i: number, v: unknown): void {
    if (this.closed) throw usedAfterReturn(this.where());
    const spec = this.specs[i]!;
    if (v === null) v = undefined;
    if (v !== undefined) spec.type.check?.(v);
    this.values[i] = v;
    this.known[i] = true;
    this.dirty[i] = true;
  }

  response(): InvocationResponse {
    const stateMutations: PersistedValueMutation[] = [];
    this.specs.forEach((spec, i) => {
      if (!this.dirty[i]) return;
      const v = this.values[i];
      if (v === undefined) {
        stateMutations.push({ mutationType: 'DELETE', stateName: spec.name });
        return;
      }
      const value = spec.type.serialize(v);
      if (!(value instanceof Uint8Array)) {
        throw new StatefnError(
          ErrorCode.TYPE_MISMATCH,
          `${this.where()}: the serializer of ${spec.type.typename} (state '${spec.name}') did not return a Uint8Array`,
        );
      }
      stateMutations.push({
        mutationType: 'MODIFY',
        stateName: spec.name,
        stateValue: { typename: spec.type.typename, hasValue: true, value },
      });
    });
    return { stateMutations, outgoingMessages: this.sends, delayedInvocations: this.delayed, outgoingEgresses: this.egresses };
  }
}

/** `ctx.storage`: one property per declared value; assigning `undefined`/`null` or `delete` clears it. */
function storageProxy(batch: Batch, specs: readonly ValueSpec[]): Record<string, unknown> {
  const index = new Map(specs.map((s, i) => [s.name, i]));
  const slot = (key: string | symbol): number | undefined => (typeof key === 'string' ? index.get(key) : undefined);
  const undeclared = (key: string | symbol): StatefnError =>
    new StatefnError(
      ErrorCode.STATE_INVALID,
      `ctx.storage.${String(key)}: not a declared value (declared: ${[...index.keys()].join(', ') || 'none'})`,
    );
  return new Proxy(Object.create(null) as Record<string, unknown>, {
    get: (_t, key) => {
      const i = slot(key);
      return i === undefined ? undefined : batch.read(i);
    },
    set: (_t, key, v) => {
      const i = slot(key);
      if (i === undefined) throw undeclared(key);
      batch.write(i, v);
      return true;
    },
    deleteProperty: (_t, key) => {
      const i = slot(key);
      if (i === undefined) throw undeclared(key);
      batch.write(i, undefined);
      return true;
    },
    has: (_t, key) => slot(key) !== undefined,
    ownKeys: () => [...index.keys()],
    getOwnPropertyDescriptor: (_t, key) => {
      const i = slot(key);
      return i === undefined ? undefined : { value: batch.read(i), writable: true, enumerable: true, configurable: true };
    },
    defineProperty: (_t, key) => {
      throw undeclared(key);
    },
  });
}

function usedAfterReturn(where: string): StatefnError {
  return new StatefnError(
    ErrorCode.HANDLER_FAILED,
    `${where}: the context was used after its handler returned (await every promise inside the handler)`,
  );
}

/** The Context a handler gets for one invocation of the batch. */
class RemoteContext implements Context<Record<string, unknown>> {
  closed = false;
  readonly storage: Record<string, unknown>;

  constructor(
    readonly self: Address,
    readonly caller: Address | undefined,
    private readonly batch: Batch,
  ) {
    this.storage = batch.storage;
  }

  now(): number {
    return Date.now();
  }

  send(to: Address, message: Message): void {
    const where = this.open();
    this.batch.sends.push({
      target: pbAddress(checkAddress(to, `${where}: ctx.send target`)),
      argument: pbTypedValue(checkMessage(message, `${where}: ctx.send message`)),
    });
  }

  sendAfter(delayMs: number, to: Address, message: Message, cancellationToken?: string): void {
    const where = this.open();
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
      throw new StatefnError(
        ErrorCode.TYPE_MISMATCH,
        `${where}: ctx.sendAfter delay must be a non-negative number of ms, got ${String(delayMs)}`,
      );
    }
    if (cancellationToken !== undefined) checkToken(cancellationToken, where);
    this.batch.delayed.push({
      isCancellationRequest: false,
      cancellationToken: cancellationToken ?? '',
      delayInMs: Math.round(delayMs),
      target: pbAddress(checkAddress(to, `${where}: ctx.sendAfter target`)),
      argument: pbTypedValue(checkMessage(message, `${where}: ctx.sendAfter message`)),
    });
  }

  cancelDelayedMessage(cancellationToken: string): void {
    const where = this.open();
    checkToken(cancellationToken, where);
    this.batch.delayed.push({ isCancellationRequest: true, cancellationToken, delayInMs: 0 });
  }

  egress(egressId: string, message: Message): void {
    const where = this.open();
    if (typeof egressId !== 'string') throw new StatefnError(ErrorCode.UNKNOWN_EGRESS, `${where}: egress id must be a string`);
    const { namespace, name } = splitTypeName(egressId);
    this.batch.egresses.push({
      egressNamespace: namespace,
      egressType: name,
      argument: pbTypedValue(checkMessage(message, `${where}: ctx.egress message`)),
    });
  }

  private open(): string {
    const where = this.batch.where();
    if (this.closed) throw usedAfterReturn(where);
    return where;
  }
}

function checkToken(token: unknown, where: string): void {
  if (typeof token !== 'string' || token.length === 0) {
    throw new StatefnError(ErrorCode.TYPE_MISMATCH, `${where}: cancellation token must be a non-empty string`);
  }
}
