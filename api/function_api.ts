/**
 * The API of an embedded stateful function: its declared state (`ValueSpec`s), the `Context` its
 * handler gets, and the `FunctionSpec` that registers it. Mirrors StateFun's SDKs.
 */
import type { Address } from './address.js';
import type { Message } from './message.js';
import type { Type, TypeOf } from './types.js';

/** A declared state value of a function type: name, type and optional time-to-live. */
export interface ValueSpec<N extends string = string, T = unknown> {
  readonly name: N;
  readonly type: Type<T>;
  /** Expire the value this many milliseconds after it was last written. */
  readonly expireAfterWrite?: number;
  /** Expire the value this many milliseconds after the function was last invoked for the address. */
  readonly expireAfterCall?: number;
}

/** The typed view of a function's storage: one optional property per declared value. */
export type Storage<S extends readonly ValueSpec[]> = {
  -readonly [K in S[number] as K['name']]: TypeOf<K['type']> | undefined;
};

/** What a handler can do. Effects take place together, once, when the handler returns. */
export interface Context<S = Record<string, unknown>> {
  /** The address of the instance being invoked. */
  readonly self: Address;
  /** The sender, when the message came from another function (absent for ingress messages). */
  readonly caller: Address | undefined;
  /**
   * The instance's declared state. Read a value by its name; assign to write; assign `undefined`
   * (or `delete`) to clear. Writes are staged and become visible when the handler succeeds. A
   * value read is this invocation's own copy: mutating it changes nothing unless it is assigned.
   */
  readonly storage: S;
  /** Send a message to any address (including `self`). */
  send(to: Address, message: Message): void;
  /**
   * Send a message after `delayMs`. With a `cancellationToken`, it can be cancelled until it is
   * delivered; reusing a token of a pending message is an error.
   */
  sendAfter(delayMs: number, to: Address, message: Message, cancellationToken?: string): void;
  /** Cancel a delayed message sent by this instance; unknown or delivered tokens are a no-op. */
  cancelDelayedMessage(cancellationToken: string): void;
  /** Emit a message to an egress, by its id `namespace/name`. */
  egress(egressId: string, message: Message): void;
  /** The engine clock's current time in ms since the epoch (an injected clock in tests). */
  now(): number;
}

export type Handler<S> = (ctx: Context<S>, message: Message) => void | Promise<void>;

/** Registers an embedded function type. */
export interface FunctionSpec<S extends readonly ValueSpec[] = readonly ValueSpec[]> {
  /** The function type, `namespace/name`. */
  readonly typename: string;
  /** Declared state values. */
  readonly specs?: S;
  readonly handler: Handler<Storage<S>>;
}

/** Helper that keeps the literal types of a function's specs for a typed `ctx.storage`. */
export function defineFunction<const S extends readonly ValueSpec[]>(spec: FunctionSpec<S>): FunctionSpec<S> {
  return spec;
}

/** Helper that keeps a ValueSpec's literal name for typing. */
export function valueSpec<const N extends string, T>(spec: ValueSpec<N, T>): ValueSpec<N, T> {
  return spec;
}
