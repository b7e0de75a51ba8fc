/**
 * The remote-function SDK's core (sdk/request_reply.ts): one ToFunction batch in, one FromFunction
 * out, run against FunctionSpecs written with statefn's own function API.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  decodeFromFunction,
  encodeToFunction,
  type FromFunction,
  type InvocationBatchRequest,
  type InvocationResponse,
  type PbTypedValue,
  type PersistedValue,
} from '../../remote/protocol.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import {
  createApp,
  defineFunction,
  handleInvocationBatch,
  Message,
  Types,
  type Address,
  type Context,
  type FunctionSpec,
} from '../../sdk/index.js';

const tv = (typename: string, value: Uint8Array, hasValue = true): PbTypedValue => ({ typename, hasValue, value });
const str = (s: string): PbTypedValue => tv(Types.string.typename, Types.string.serialize(s));
const int = (n: number): PbTypedValue => tv(Types.int.typename, Types.int.serialize(n));
const target = (id = 'u1', type = 'greeter') => ({ namespace: 'com.example', type, id });

async function call(fns: Parameters<typeof handleInvocationBatch>[0], req: Partial<InvocationBatchRequest>): Promise<FromFunction> {
  const bytes = encodeToFunction({ target: target(), state: [], invocations: [], ...req });
  return decodeFromFunction(await handleInvocationBatch(fns, bytes));
}

async function result(fns: Parameters<typeof handleInvocationBatch>[0], req: Partial<InvocationBatchRequest>): Promise<InvocationResponse> {
  const r = await call(fns, req);
  if (r.kind !== 'result') throw new Error(`expected a result, got ${JSON.stringify(r)}`);
  return r.result;
}

async function failure(p: Promise<unknown>): Promise<StatefnError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(StatefnError);
    return e as StatefnError;
  }
  throw new Error('expected a failure');
}

const NO_EFFECTS: InvocationResponse = { stateMutations: [], outgoingMessages: [], delayedInvocations: [], outgoingEgresses: [] };

const Profile = Types.json<{ visits: number }>('com.example/Profile');

const counter = defineFunction({
  typename: 'com.example/greeter',
  specs: [
    { name: 'seen', type: Types.int, expireAfterWrite: 86_400_000 },
    { name: 'last', type: Types.string, expireAfterCall: 5_000 },
    { name: 'profile', type: Profile },
  ] as const,
  handler(ctx, msg) {
    const seen = (ctx.storage.seen ?? 0) + 1;
    ctx.storage.seen = seen;
    ctx.storage.last = msg.asString();
    ctx.storage.profile = { visits: seen };
  },
});
const ALL_STATE: PersistedValue[] = [{ stateName: 'seen' }, { stateName: 'last' }, { stateName: 'profile' }];

describe('missing-state negotiation', () => {
  it('answers incomplete with every missing spec (TTL modes) and invokes nothing', async () => {
    const handler = vi.fn();
    const fn: FunctionSpec = { ...counter, handler };
    expect(await call([fn], { invocations: [{ argument: str('ann') }] })).toEqual({
      kind: 'incomplete',
      missingValues: [
        {
          stateName: 'seen',
          typeTypename: 'io.statefun.types/int',
          expirationSpec: { mode: 'AFTER_WRITE', expireAfterMillis: 86_400_000 },
        },
        { stateName: 'last', typeTypename: 'io.statefun.types/string', expirationSpec: { mode: 'AFTER_INVOKE', expireAfterMillis: 5_000 } },
        // no TTL: no expiration spec at all (mode NONE), as StateFun's JS SDK sends it
        { stateName: 'profile', typeTypename: 'com.example/Profile' },
      ],
    });
    expect(handler).not.toHaveBeenCalled();
  });

  it('lists only the specs the request lacks, in declaration order', async () => {
    const handler = vi.fn();
    const fn = { ...counter, handler } as unknown as FunctionSpec;
    const r = await call([fn], { state: [{ stateName: 'last' }, { stateName: 'other' }], invocations: [{ argument: str('ann') }] });
    expect(r.kind === 'incomplete' && r.missingValues.map((s) => s.stateName)).toEqual(['seen', 'profile']);
    expect(handler).not.toHaveBeenCalled();
  });

  it('a value the runtime lists without a value (no state_value, or has_value = false) is present but empty', async () => {
    const seen: unknown[] = [];
    const fn = defineFunction({
      typename: 'com.example/greeter',
      specs: [
        { name: 'a', type: Types.int },
        { name: 'b', type: Profile },
      ] as const,
      handler(ctx) {
        seen.push(ctx.storage.a, ctx.storage.b);
      },
    });
    const r = await result([fn], {
      state: [{ stateName: 'a' }, { stateName: 'b', stateValue: tv('com.example/Profile', new Uint8Array(), false) }],
      invocations: [{ argument: str('x') }],
    });
    expect(seen).toEqual([undefined, undefined]);
    expect(r).toEqual(NO_EFFECTS);
  });

  it('a function without specs never asks for state', async () => {
    const fn = defineFunction({ typename: 'com.example/greeter', handler: () => {} });
    expect(await call([fn], { invocations: [{ argument: str('x') }] })).toEqual({ kind: 'result', result: NO_EFFECTS });
  });
});

describe('state', () => {
  it('reads deserialize with the spec type; writes are visible to later invocations of the batch', async () => {
    const r = await result([counter], {
      state: [
        { stateName: 'seen', stateValue: int(2) },
        { stateName: 'last', stateValue: str('bob') },
        { stateName: 'profile', stateValue: tv(Profile.typename, Profile.serialize({ visits: 2 })) },
      ],
      invocations: [{ argument: str('a') }, { argument: str('b') }, { argument: str('c') }],
    });
    expect(r.stateMutations).toEqual([
      { mutationType: 'MODIFY', stateName: 'seen', stateValue: int(5) },
      { mutationType: 'MODIFY', stateName: 'last', stateValue: str('c') },
      { mutationType: 'MODIFY', stateName: 'profile', stateValue: tv(Profile.typename, Profile.serialize({ visits: 5 })) },
    ]);
  });

  it('one mutation per changed value: MODIFY, DELETE (undefined, null, delete), nothing when untouched', async () => {
    const fn = defineFunction({
      typename: 'com.example/greeter',
      specs: [
        { name: 'a', type: Types.long },
        { name: 'b', type: Types.string },
        { name: 'c', type: Types.bool },
        { name: 'd', type: Types.double },
        { name: 'e', type: Types.int },
        { name: 'f', type: Types.int },
      ] as const,
      handler(ctx, msg) {
        if (msg.asInt() === 1) {
          ctx.storage.a = 2 ** 40;
          ctx.storage.b = undefined;
          ctx.storage.c = null as unknown as boolean;
          delete ctx.storage.d;
          ctx.storage.f = 7;
        } else {
          expect(ctx.storage.b).toBeUndefined(); // a delete is visible too
          ctx.storage.f = undefined; // written, then cleared: DELETE
        }
      },
    });
    const r = await result([fn], {
      state: [
        { stateName: 'a' },
        { stateName: 'b', stateValue: str('x') },
        { stateName: 'c', stateValue: tv(Types.bool.typename, Types.bool.serialize(true)) },
        { stateName: 'd', stateValue: tv(Types.double.typename, Types.double.serialize(1.5)) },
        { stateName: 'e', stateValue: int(9) },
        { stateName: 'f' },
      ],
      invocations: [{ argument: int(1) }, { argument: int(2) }],
    });
    expect(r.stateMutations).toEqual([
      { mutationType: 'MODIFY', stateName: 'a', stateValue: tv(Types.long.typename, Types.long.serialize(2 ** 40)) },
      { mutationType: 'DELETE', stateName: 'b' },
      { mutationType: 'DELETE', stateName: 'c' },
      { mutationType: 'DELETE', stateName: 'd' },
      { mutationType: 'DELETE', stateName: 'f' },
    ]);
  });

  it('writing a default value is a MODIFY with has_value and empty bytes (proto3 wrappers)', async () => {
    const fn = defineFunction({
      typename: 'com.example/greeter',
      specs: [{ name: 'n', type: Types.int }] as const,
      handler(ctx) {
        ctx.storage.n = 0;
      },
    });
    const r = await result([fn], { state: [{ stateName: 'n', stateValue: int(3) }], invocations: [{ argument: str('x') }] });
    expect(r.stateMutations).toEqual([
      { mutationType: 'MODIFY', stateName: 'n', stateValue: tv('io.statefun.types/int', new Uint8Array()) },
    ]);
  });

  it('ctx.storage enumerates the declared values', async () => {
    let keys: string[] = [];
    let json = '';
    const fn = defineFunction({
      typename: 'com.example/greeter',
      specs: [
        { name: 'x', type: Types.int },
        { name: 'y', type: Types.string },
      ] as const,
      handler(ctx) {
        keys = Object.keys(ctx.storage);
        json = JSON.stringify(ctx.storage);
        expect('x' in ctx.storage).toBe(true);
        expect('z' in ctx.storage).toBe(false);
      },
    });
    await result([fn], { state: [{ stateName: 'x', stateValue: int(4) }, { stateName: 'y' }], invocations: [{ argument: str('x') }] });
    expect(keys).toEqual(['x', 'y']);
    expect(json).toBe('{"x":4}');
  });
});

describe('messages and effects', () => {
  it('gives the handler self, caller and native built-in payloads; custom types stay bytes', async () => {
    const seen: unknown[] = [];
    const fn = defineFunction({
      typename: 'com.example/greeter',
      handler(ctx, msg) {
        seen.push([ctx.self, ctx.caller, msg.typename, msg.payload, typeof ctx.now()]);
      },
    });
    await result([fn], {
      target: target('id/with/slash'),
      invocations: [
        { argument: str('hi') },
        {
          caller: { namespace: 'com.example', type: 'user', id: 'u9' },
          argument: tv(Types.long.typename, Types.long.serialize(-(2 ** 50))),
        },
        { caller: { namespace: '', type: '', id: '' }, argument: tv('com.example/Raw', Uint8Array.of(0, 255)) },
        { argument: tv(Types.bool.typename, new Uint8Array(), false) },
      ],
    });
    const self: Address = { typename: 'com.example/greeter', id: 'id/with/slash' };
    expect(seen).toEqual([
      [self, undefined, 'io.statefun.types/string', 'hi', 'number'],
      [self, { typename: 'com.example/user', id: 'u9' }, 'io.statefun.types/long', -(2 ** 50), 'number'],
      [self, undefined, 'com.example/Raw', Uint8Array.of(0, 255), 'number'],
      [self, undefined, 'io.statefun.types/bool', false, 'number'],
    ]);
  });

  it('encodes send, sendAfter, cancelDelayedMessage and egress in call order', async () => {
    const fn = defineFunction({
      typename: 'com.example/greeter',
      handler(ctx, msg) {
        const n = msg.asInt();
        ctx.send({ typename: 'com.example/counter', id: `c${n}` }, Message.of(Types.int, n));
        ctx.sendAfter(1500.4, { typename: 'a.b/c/d', id: 'x' }, Message.of(Types.string, 'later'), `tok-${n}`);
        ctx.cancelDelayedMessage(`tok-${n - 1}`);
        ctx.sendAfter(0, ctx.self, new Message('com.example/Raw', Uint8Array.of(1, 2)));
        ctx.egress('com.example/out', Message.of(Profile, { visits: n }));
        if (ctx.caller) ctx.egress('deep.ns/with/slashes/sink', Message.of(Types.bool, true));
      },
    });
    const r = await result([fn], { invocations: [{ argument: int(1) }, { caller: target('u2', 'user'), argument: int(2) }] });
    const self = target();
    expect(r).toEqual({
      stateMutations: [],
      outgoingMessages: [
        { target: { namespace: 'com.example', type: 'counter', id: 'c1' }, argument: int(1) },
        { target: { namespace: 'com.example', type: 'counter', id: 'c2' }, argument: int(2) },
      ],
      delayedInvocations: [
        {
          isCancellationRequest: false,
          cancellationToken: 'tok-1',
          delayInMs: 1500,
          target: { namespace: 'a.b/c', type: 'd', id: 'x' },
          argument: str('later'),
        },
        { isCancellationRequest: true, cancellationToken: 'tok-0', delayInMs: 0 },
        {
          isCancellationRequest: false,
          cancellationToken: '',
          delayInMs: 0,
          target: self,
          argument: tv('com.example/Raw', Uint8Array.of(1, 2)),
        },
        {
          isCancellationRequest: false,
          cancellationToken: 'tok-2',
          delayInMs: 1500,
          target: { namespace: 'a.b/c', type: 'd', id: 'x' },
          argument: str('later'),
        },
        { isCancellationRequest: true, cancellationToken: 'tok-1', delayInMs: 0 },
        {
          isCancellationRequest: false,
          cancellationToken: '',
          delayInMs: 0,
          target: self,
          argument: tv('com.example/Raw', Uint8Array.of(1, 2)),
        },
      ],
      outgoingEgresses: [
        { egressNamespace: 'com.example', egressType: 'out', argument: tv(Profile.typename, Profile.serialize({ visits: 1 })) },
        { egressNamespace: 'com.example', egressType: 'out', argument: tv(Profile.typename, Profile.serialize({ visits: 2 })) },
        { egressNamespace: 'deep.ns/with/slashes', egressType: 'sink', argument: tv(Types.bool.typename, Types.bool.serialize(true)) },
      ],
    });
  });

  it('awaits async handlers, one invocation after the other', async () => {
    const order: string[] = [];
    const fn = defineFunction({
      typename: 'com.example/greeter',
      specs: [{ name: 'log', type: Types.string }] as const,
      async handler(ctx, msg) {
        const m = msg.asString();
        order.push(`start ${m}`);
        await new Promise((r) => setTimeout(r, 5));
        ctx.storage.log = `${ctx.storage.log ?? ''}${m}`;
        order.push(`end ${m}`);
      },
    });
    const r = await result([fn], { state: [{ stateName: 'log' }], invocations: [{ argument: str('a') }, { argument: str('b') }] });
    expect(order).toEqual(['start a', 'end a', 'start b', 'end b']);
    expect(r.stateMutations).toEqual([{ mutationType: 'MODIFY', stateName: 'log', stateValue: str('ab') }]);
  });

  it('serves an App as well as a list', async () => {
    const app = createApp().function(counter);
    const r = await result(app, { state: ALL_STATE, invocations: [{ argument: str('ann') }] });
    expect(r.stateMutations.map((m) => m.stateName)).toEqual(['seen', 'last', 'profile']);
  });
});

describe('errors', () => {
  it('malformed bytes: REMOTE_PROTOCOL', async () => {
    const e = await failure(handleInvocationBatch([counter], Uint8Array.of(0xa2, 0x06, 0x05, 0x0a)));
    expect(e.code).toBe(ErrorCode.REMOTE_PROTOCOL);
    expect(e.message).toMatch(/malformed protobuf/);
    expect((await failure(handleInvocationBatch([counter], new Uint8Array()))).code).toBe(ErrorCode.REMOTE_PROTOCOL);
  });

  it('an unknown function type names it', async () => {
    const e = await failure(call([counter], { target: target('x', 'nobody') }));
    expect(e.code).toBe(ErrorCode.UNKNOWN_FUNCTION_TYPE);
    expect(e.message).toMatch(/unknown function type 'com.example\/nobody' \(served here: com.example\/greeter\)/);
  });

  it('a throwing or rejecting handler fails the batch with its message', async () => {
    const boom = new Error('boom');
    for (const handler of [
      () => {
        throw boom;
      },
      async () => {
        await Promise.resolve();
        throw boom;
      },
    ]) {
      const fn = defineFunction({ typename: 'com.example/greeter', handler });
      const e = await failure(call([fn], { invocations: [{ argument: str('x') }] }));
      expect(e.code).toBe(ErrorCode.HANDLER_FAILED);
      expect(e.message).toBe('com.example/greeter/u1: handler failed: boom');
      expect(e.cause).toBe(boom);
    }
  });

  it('state of the wrong type, a write of the wrong type, an undeclared value, a wrongly typed message', async () => {
    const run = async (
      handler: (ctx: Context<Record<string, unknown>>, msg: Message) => void,
      state: PersistedValue[] = [{ stateName: 'n' }],
    ) => {
      const fn = { typename: 'com.example/greeter', specs: [{ name: 'n', type: Types.int }], handler } as FunctionSpec;
      return failure(call([fn], { state, invocations: [{ argument: str('x') }] }));
    };
    expect((await run((ctx) => ctx.storage.n, [{ stateName: 'n', stateValue: str('x') }])).message).toMatch(
      /state 'n' holds a io.statefun.types\/string, but its spec declares io.statefun.types\/int/,
    );
    expect(
      (
        await run((ctx) => {
          ctx.storage.n = 'seven';
        })
      ).message,
    ).toMatch(/io.statefun.types\/int: expected a 32-bit integer/);
    expect(
      (
        await run((ctx) => {
          ctx.storage.m = 1;
        })
      ).message,
    ).toMatch(/ctx.storage.m: not a declared value \(declared: n\)/);
    expect((await run((_ctx, msg) => msg.asInt())).message).toMatch(/value has type io.statefun.types\/string/);
    expect((await run((ctx) => ctx.send({ typename: 'nope', id: 'x' }, Message.of(Types.int, 1)))).code).toBe(ErrorCode.HANDLER_FAILED);
    expect((await run((ctx) => ctx.egress('no-slash', Message.of(Types.int, 1)))).message).toMatch(/'no-slash' is invalid/);
    expect((await run((ctx) => ctx.sendAfter(-1, ctx.self, Message.of(Types.int, 1)))).message).toMatch(/non-negative/);
    expect((await run((ctx) => ctx.cancelDelayedMessage(''))).message).toMatch(/cancellation token must be a non-empty string/);
  });

  it('a context used after its handler returned throws', async () => {
    let saved: Context<Record<string, unknown>> | undefined;
    const fn = {
      typename: 'com.example/greeter',
      specs: [{ name: 'n', type: Types.int }],
      handler: (ctx: Context<Record<string, unknown>>) => {
        saved = ctx;
      },
    } as FunctionSpec;
    await result([fn], { state: [{ stateName: 'n' }], invocations: [{ argument: str('x') }] });
    expect(() => saved!.send(saved!.self, Message.of(Types.int, 1))).toThrow(/used after its handler returned/);
    expect(() => {
      saved!.storage.n = 1;
    }).toThrow(/used after its handler returned/);
  });

  it('a list of specs is validated like App.function', async () => {
    const dup = [counter, counter];
    expect((await failure(handleInvocationBatch(dup, new Uint8Array()))).code).toBe(ErrorCode.CONFIG_INVALID);
    const badTtl = defineFunction({
      typename: 'a/b',
      specs: [{ name: 'x', type: Types.int, expireAfterWrite: 1, expireAfterCall: 1 }] as const,
      handler: () => {},
    });
    expect((await failure(handleInvocationBatch([badTtl], new Uint8Array()))).message).toMatch(/not both/);
  });
});
