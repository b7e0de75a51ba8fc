/**
 * `Message`: what a handler receives and what an ingress router produces. A type name plus a
 * payload (native for built-in types, bytes otherwise), read through a `Type`.
 */
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { Types, checkPayload, fromPayload, payloadBytes, toPayload, type Payload, type Type } from './types.js';

export class Message {
  constructor(
    /** The TypeName of the value, e.g. `io.statefun.types/string`. */
    readonly typename: string,
    /** @internal the value: native for built-in types, bytes otherwise. */
    readonly payload: Payload,
  ) {}

  /** Build a message from a value and its type. */
  static of<T>(type: Type<T>, value: T): Message {
    return new Message(type.typename, toPayload(type, value));
  }

  /** True if this message's type name is `type`'s. */
  is(type: Type<unknown>): boolean {
    return this.typename === type.typename;
  }

  /** Read the value as `type`; throws a TYPE_MISMATCH StatefnError if the type names differ. */
  as<T>(type: Type<T>): T {
    return fromPayload(type, this.typename, this.payload);
  }

  isString(): boolean {
    return this.typename === Types.string.typename;
  }
  isInt(): boolean {
    return this.typename === Types.int.typename;
  }
  isLong(): boolean {
    return this.typename === Types.long.typename;
  }
  isBool(): boolean {
    return this.typename === Types.bool.typename;
  }
  isFloat(): boolean {
    return this.typename === Types.float.typename;
  }
  isDouble(): boolean {
    return this.typename === Types.double.typename;
  }
  asString(): string {
    return this.as(Types.string);
  }
  asInt(): number {
    return this.as(Types.int);
  }
  asLong(): number {
    return this.as(Types.long);
  }
  asBool(): boolean {
    return this.as(Types.bool);
  }
  asFloat(): number {
    return this.as(Types.float);
  }
  asDouble(): number {
    return this.as(Types.double);
  }

  /** The value's bytes in StateFun's wire format. */
  bytes(): Uint8Array {
    return payloadBytes(this.typename, this.payload);
  }

  /** A readable rendering for logs and line-oriented egress (JSON where the type is JSON-like). */
  toJSON(): unknown {
    if (!(this.payload instanceof Uint8Array)) return this.payload;
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(this.payload);
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return text;
      }
    } catch {
      return { typename: this.typename, base64: Buffer.from(this.payload).toString('base64') };
    }
  }
}

/** Check that something a user passed is a Message-like value. */
export function checkMessage(m: unknown, where: string): Message {
  if (m instanceof Message) return m;
  if (typeof m === 'object' && m !== null && typeof (m as Message).typename === 'string' && 'payload' in m) {
    const { typename, payload } = m as Message;
    try {
      return new Message(typename, checkPayload(typename, payload));
    } catch (e) {
      throw new StatefnError(ErrorCode.TYPE_MISMATCH, `${where}: ${(e as Error).message}`, { cause: e });
    }
  }
  throw new StatefnError(ErrorCode.TYPE_MISMATCH, `${where}: expected a Message (use Message.of(type, value)), got ${String(m)}`);
}
