// Smoke test of the remote-function test peers alone (no statefn runtime): the services built on
// Apache Flink StateFun's official SDKs (npm apache-flink-statefun@3.3.0, PyPI
// apache-flink-statefun==3.3.0) answer hand-built ToFunction requests over StateFun's HTTP
// request-reply protocol as the protocol says, and the misbehaving endpoints misbehave as named.
// Encoding/decoding uses statefn's own codecs (remote/protocol.ts, api/types.ts,
// connectors/kafka/kafka_record.ts), so this also checks that they agree with the official SDKs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeFromFunction,
  encodeToFunction,
  type FromFunction,
  type InvocationBatchRequest,
  type InvocationResponse,
  type PbAddress as Address,
  type PbTypedValue as TypedValue,
  type PersistedValueSpec,
} from '../../remote/protocol.js';
import { Types } from '../../api/types.js';
import { KafkaProducerRecordType } from '../../connectors/kafka/kafka_record.js';
import { startBadService, startJsService, startPyService, type RemoteService } from '../fixtures/remote/services.js';

type Result = InvocationResponse;
type MissingValue = PersistedValueSpec;

const enc = new TextEncoder();
const dec = new TextDecoder();
const tv = <T>(t: { typename: string; serialize(v: T): Uint8Array }, v: T): TypedValue => ({
  typename: t.typename,
  hasValue: true,
  value: t.serialize(v),
});
const str = (s: string): TypedValue => tv(Types.string, s);
const json = (typename: string, v: unknown): TypedValue => ({ typename, hasValue: true, value: enc.encode(JSON.stringify(v)) });
/** A state value StateFun has registered but that holds nothing yet. */
const none = (typename: string): TypedValue => ({ typename, hasValue: false, value: new Uint8Array(0) });
const addr = (typename: string, id: string): Address => {
  const i = typename.lastIndexOf('/');
  return { namespace: typename.slice(0, i), type: typename.slice(i + 1), id };
};
/** `state`: name -> value; `null` sends the PersistedValue without a state_value. */
const batch = (
  typename: string,
  id: string,
  state: Record<string, TypedValue | null> | undefined,
  args: TypedValue[],
): InvocationBatchRequest => ({
  target: addr(typename, id),
  state: Object.entries(state ?? {}).map(([stateName, stateValue]) => (stateValue === null ? { stateName } : { stateName, stateValue })),
  invocations: args.map((argument) => ({ argument })),
});

interface Reply {
  status: number;
  contentType: string | null;
  body: Uint8Array;
}
async function post(url: string, body: Uint8Array, timeoutMs = 10_000): Promise<Reply> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: r.status, contentType: r.headers.get('content-type'), body: new Uint8Array(await r.arrayBuffer()) };
}
async function invoke(svc: RemoteService, req: InvocationBatchRequest): Promise<FromFunction> {
  const r = await post(svc.url, encodeToFunction(req));
  if (r.status !== 200) throw new Error(`HTTP ${r.status}; service stderr:\n${svc.stderr()}`);
  expect(r.contentType).toBe('application/octet-stream');
  return decodeFromFunction(r.body);
}
function resultOf(f: FromFunction): Result {
  if (f.kind !== 'result') throw new Error(`expected an invocation result, got ${JSON.stringify(f)}`);
  return f.result;
}
const egressStrings = (r: Result): string[] =>
  r.outgoingEgresses.map((e) => {
    expect(e.argument.typename).toBe('io.statefun.types/string');
    return Types.string.deserialize(e.argument.value);
  });
const stats = async (svc: RemoteService): Promise<number> =>
  ((await (await fetch(`${svc.baseUrl}/__stats`)).json()) as { requests: number }).requests;

// ---------------------------------------------------------------------------------------------

/** The behaviour both official SDKs share for greeter, kafka-greeter, delayed and ttl. */
function commonContract(name: 'js' | 'py', svc: () => RemoteService, noTtl: MissingValue['expirationSpec']): void {
  describe(`${name}: shared contract`, () => {
    it('greeter: no state yet -> IncompleteInvocationContext naming seen (int)', async () => {
      const f = await invoke(svc(), batch('remote-test/greeter', 'alice', undefined, [str('hi')]));
      expect(f).toEqual({
        kind: 'incomplete',
        missingValues: [{ stateName: 'seen', typeTypename: 'io.statefun.types/int', expirationSpec: noTtl }],
      });
    });

    it('greeter: with state -> MODIFY seen and one egress per invocation of the batch', async () => {
      const r1 = resultOf(await invoke(svc(), batch('remote-test/greeter', 'alice', { seen: none('io.statefun.types/int') }, [str('hi')])));
      expect(r1.stateMutations).toHaveLength(1);
      expect(r1.stateMutations[0]).toMatchObject({
        mutationType: 'MODIFY',
        stateName: 'seen',
        stateValue: { typename: 'io.statefun.types/int', hasValue: true },
      });
      expect(Types.int.deserialize(r1.stateMutations[0]!.stateValue!.value)).toBe(1);
      expect(r1.outgoingEgresses.map((e) => [e.egressNamespace, e.egressType])).toEqual([['remote-test', 'greets']]);
      expect(egressStrings(r1)).toEqual(['Hello alice, seen 1']);
      expect(r1.outgoingMessages).toEqual([]);
      expect(r1.delayedInvocations).toEqual([]);

      const r2 = resultOf(await invoke(svc(), batch('remote-test/greeter', 'bob', { seen: tv(Types.int, 5) }, [str('a'), str('b')])));
      expect(Types.int.deserialize(r2.stateMutations[0]!.stateValue!.value)).toBe(7);
      expect(egressStrings(r2)).toEqual(['Hello bob, seen 6', 'Hello bob, seen 7']);

      // A PersistedValue without state_value counts as registered-but-empty, like has_value=false.
      const r3 = resultOf(await invoke(svc(), batch('remote-test/greeter', 'eve', { seen: null }, [str('hi')])));
      expect(egressStrings(r3)).toEqual(['Hello eve, seen 1']);
    });

    it('kafka-greeter: a KafkaProducerRecord egress (topic from the message, key = id)', async () => {
      const r = resultOf(
        await invoke(svc(), batch('remote-test/kafka-greeter', 'carol', { seen: none('io.statefun.types/int') }, [str('greetings')])),
      );
      expect(r.outgoingEgresses).toHaveLength(1);
      const e = r.outgoingEgresses[0]!;
      expect([e.egressNamespace, e.egressType]).toEqual(['remote-test', 'kafka-out']);
      expect(e.argument.typename).toBe('type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord');
      const rec = KafkaProducerRecordType.deserialize(e.argument.value);
      expect(rec.topic).toBe('greetings');
      expect(rec.key).toBe('carol');
      expect(dec.decode(rec.value)).toBe('Hello carol, seen 1');
    });

    it('delayed: sendAfter with a token, cancellation, and the fired message', async () => {
      const s = await invoke(svc(), batch('remote-test/delayed', 'd1', undefined, [str('schedule:tok1:1500'), str('cancel:tok0')]));
      const r = resultOf(s);
      expect(r.delayedInvocations).toHaveLength(2);
      expect(r.delayedInvocations[0]).toMatchObject({
        isCancellationRequest: false,
        cancellationToken: 'tok1',
        delayInMs: 1500,
        target: addr('remote-test/delayed', 'd1'),
      });
      expect(Types.string.deserialize(r.delayedInvocations[0]!.argument!.value)).toBe('fire:tok1');
      expect(r.delayedInvocations[1]).toMatchObject({ isCancellationRequest: true, cancellationToken: 'tok0' });
      expect(r.stateMutations).toEqual([]);
      const fired = resultOf(await invoke(svc(), batch('remote-test/delayed', 'd1', undefined, [str('fire:tok1')])));
      expect(fired.outgoingEgresses.map((e) => `${e.egressNamespace}/${e.egressType}`)).toEqual(['remote-test/delayed-out']);
      expect(egressStrings(fired)).toEqual(['fired:tok1']);
    });

    it('ttl: the spec carries the expiration; reads, writes and deletes', async () => {
      const w = await invoke(svc(), batch('remote-test/ttl', 't1', undefined, [str('get')]));
      expect(w).toEqual({
        kind: 'incomplete',
        missingValues: [
          {
            stateName: 'value',
            typeTypename: 'io.statefun.types/string',
            expirationSpec: { mode: 'AFTER_WRITE', expireAfterMillis: 2000 },
          },
        ],
      });
      const c = await invoke(svc(), batch('remote-test/ttl-call', 't1', undefined, [str('get')]));
      expect(c).toEqual({
        kind: 'incomplete',
        missingValues: [
          {
            stateName: 'value',
            typeTypename: 'io.statefun.types/string',
            expirationSpec: { mode: 'AFTER_INVOKE', expireAfterMillis: 2000 },
          },
        ],
      });

      const set = resultOf(
        await invoke(svc(), batch('remote-test/ttl', 't1', { value: none('io.statefun.types/string') }, [str('set:x')])),
      );
      expect(egressStrings(set)).toEqual(['read none']);
      expect(set.stateMutations).toHaveLength(1);
      expect(set.stateMutations[0]).toMatchObject({ mutationType: 'MODIFY', stateName: 'value' });
      expect(Types.string.deserialize(set.stateMutations[0]!.stateValue!.value)).toBe('x');
      const get = resultOf(await invoke(svc(), batch('remote-test/ttl', 't1', { value: str('x') }, [str('get')])));
      expect(egressStrings(get)).toEqual(['read x']);
      expect(get.stateMutations).toEqual([]);
      const del = resultOf(await invoke(svc(), batch('remote-test/ttl', 't1', { value: str('x') }, [str('del')])));
      expect(del.stateMutations).toHaveLength(1);
      expect(del.stateMutations[0]).toMatchObject({ mutationType: 'DELETE', stateName: 'value' });
    });

    it('noop: no effects -> JS: an empty invocation_result; Python: a zero-byte body (no response set)', async () => {
      const r = await post(svc().url, encodeToFunction(batch('remote-test/noop', 'n', undefined, [str('hi')])));
      expect([r.status, r.contentType]).toEqual([200, 'application/octet-stream']);
      if (name === 'js') {
        expect(Buffer.from(r.body).toString('hex')).toBe('a20600');
        expect(decodeFromFunction(r.body)).toEqual({
          kind: 'result',
          result: { stateMutations: [], outgoingMessages: [], delayedInvocations: [], outgoingEgresses: [] },
        });
      } else {
        expect(r.body.length).toBe(0);
        expect(decodeFromFunction(r.body)).toEqual({ kind: 'empty' });
      }
    });

    it('an unknown function type -> HTTP 500', async () => {
      const r = await post(svc().url, encodeToFunction(batch('remote-test/nope', 'x', undefined, [str('hi')])));
      expect(r.status).toBe(500);
    });
  });
}

describe('remote test peers', () => {
  let js: RemoteService;
  let py: RemoteService;
  let jsCustom: RemoteService;

  beforeAll(async () => {
    [js, py, jsCustom] = await Promise.all([
      startJsService(),
      startPyService(),
      startJsService({
        env: {
          REMOTE_TEST_INTERPRETER_TYPENAME: 'remote-test/interp',
          REMOTE_TEST_INTERPRETER_KAFKA_TOPIC: 'crash-out',
          REMOTE_TEST_KAFKA_TOPIC: 'fixed-topic',
        },
      }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([js?.stop(), py?.stop(), jsCustom?.stop()]);
  });

  // The JS SDK leaves expiration_spec unset without a TTL; the Python SDK sends mode NONE.
  commonContract('js', () => js, undefined);
  commonContract('py', () => py, { mode: 'NONE', expireAfterMillis: 0 });

  describe('js only', () => {
    it('counter: long state, +1 per message, nothing sent; counter-echo egresses the count', async () => {
      expect(await invoke(js, batch('remote-test/counter', 'c', undefined, [str('x')]))).toEqual({
        kind: 'incomplete',
        missingValues: [{ stateName: 'n', typeTypename: 'io.statefun.types/long' }],
      });
      const r = resultOf(await invoke(js, batch('remote-test/counter', 'c', { n: tv(Types.long, 2 ** 40) }, [str('x'), str('y')])));
      expect(r.stateMutations).toHaveLength(1);
      expect(r.stateMutations[0]!.stateValue!.typename).toBe('io.statefun.types/long');
      expect(Types.long.deserialize(r.stateMutations[0]!.stateValue!.value)).toBe(2 ** 40 + 2);
      expect([r.outgoingMessages, r.outgoingEgresses, r.delayedInvocations]).toEqual([[], [], []]);

      const e = resultOf(
        await invoke(js, batch('remote-test/counter-echo', 'c', { n: none('io.statefun.types/long') }, [str('x'), str('y')])),
      );
      expect(e.outgoingEgresses.map((g) => `${g.egressNamespace}/${g.egressType}:${g.argument.typename}`)).toEqual([
        'remote-test/counts:io.statefun.types/long',
        'remote-test/counts:io.statefun.types/long',
      ]);
      expect(e.outgoingEgresses.map((g) => Types.long.deserialize(g.argument.value))).toEqual([1, 2]);
    });

    it('slow: sleeps per invocation, in order, and numbers its position in the batch', async () => {
      const t0 = Date.now();
      const r = resultOf(await invoke(js, batch('remote-test/slow', 's', undefined, [str('60'), tv(Types.int, 60), str('60')])));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(170);
      expect(r.outgoingEgresses.every((e) => `${e.egressNamespace}/${e.egressType}` === 'remote-test/slow-out')).toBe(true);
      expect(egressStrings(r)).toEqual(['s #1 slept 60', 's #2 slept 60', 's #3 slept 60']);
    });

    it('interpreter (crash/interpreter): the command_app.ts semantics over the protocol', async () => {
      expect(await invoke(js, batch('crash/interpreter', 'i1', undefined, [json('crash/Commands', { commands: [] })]))).toEqual({
        kind: 'incomplete',
        missingValues: [{ stateName: 'counter', typeTypename: 'io.statefun.types/long' }],
      });
      const commands = [
        { kind: 'inc' },
        { kind: 'inc' },
        { kind: 'send', to: 'i2', commands: [{ kind: 'inc' }] },
        { kind: 'sendAfter', to: 'i3', delayMs: 42, commands: [{ kind: 'egress', value: 'late' }] },
        { kind: 'sendAfterCancel', to: 'i4', delayMs: 3_600_000, token: 't0.0', commands: [{ kind: 'inc' }] },
        { kind: 'egress', value: '0.0' },
        { kind: 'verify' },
      ];
      const r = resultOf(
        await invoke(
          js,
          batch('crash/interpreter', 'i1', { counter: tv(Types.long, 10) }, [
            json('crash/Commands', { commands }),
            json('crash/Commands', { commands: [{ kind: 'cancel', token: 't0.0' }] }),
          ]),
        ),
      );
      expect(r.stateMutations).toHaveLength(1);
      expect(r.stateMutations[0]!.stateValue!.typename).toBe('io.statefun.types/long');
      expect(Types.long.deserialize(r.stateMutations[0]!.stateValue!.value)).toBe(12);
      const msg = (m: { target?: Address; argument?: TypedValue }) => ({
        to: m.target?.id,
        type: m.target && `${m.target.namespace}/${m.target.type}`,
        t: m.argument?.typename,
        v: JSON.parse(dec.decode(m.argument!.value)) as unknown,
      });
      expect(r.outgoingMessages.map(msg)).toEqual([
        { to: 'i2', type: 'crash/interpreter', t: 'crash/Commands', v: { commands: [{ kind: 'inc' }] } },
        { to: 'i1', type: 'crash/interpreter', t: 'crash/Commands', v: { commands: [{ kind: 'cancel', token: 't0.0' }] } },
      ]);
      expect(r.delayedInvocations).toHaveLength(3);
      expect({
        ...msg(r.delayedInvocations[0]!),
        delay: r.delayedInvocations[0]!.delayInMs,
        token: r.delayedInvocations[0]!.cancellationToken,
      }).toEqual({
        to: 'i3',
        type: 'crash/interpreter',
        t: 'crash/Commands',
        v: { commands: [{ kind: 'egress', value: 'late' }] },
        delay: 42,
        token: '',
      });
      expect(r.delayedInvocations[1]).toMatchObject({
        isCancellationRequest: false,
        delayInMs: 3_600_000,
        cancellationToken: 't0.0',
        target: addr('crash/interpreter', 'i4'),
      });
      expect(r.delayedInvocations[2]).toMatchObject({ isCancellationRequest: true, cancellationToken: 't0.0' });
      expect(
        r.outgoingEgresses.map((e) => [
          `${e.egressNamespace}/${e.egressType}`,
          e.argument.typename,
          JSON.parse(dec.decode(e.argument.value)) as unknown,
        ]),
      ).toEqual([
        ['crash/out', 'crash/Out', { id: 'i1', value: '0.0' }],
        ['crash/out', 'crash/Out', { id: 'i1', counter: 12 }],
      ]);
    });

    it('interpreter with a configured typename and Kafka egress; kafka-greeter with a fixed topic', async () => {
      expect(
        await post(
          jsCustom.url,
          encodeToFunction(
            batch('crash/interpreter', 'i1', { counter: none('io.statefun.types/long') }, [json('crash/Commands', { commands: [] })]),
          ),
        ),
      ).toMatchObject({ status: 500 });
      const r = resultOf(
        await invoke(
          jsCustom,
          batch('remote-test/interp', 'i7', { counter: none('io.statefun.types/long') }, [
            json('crash/Commands', { commands: [{ kind: 'inc' }, { kind: 'send', to: 'i8', commands: [] }, { kind: 'verify' }] }),
          ]),
        ),
      );
      expect(r.outgoingMessages[0]!.target).toEqual(addr('remote-test/interp', 'i8'));
      expect(r.outgoingEgresses).toHaveLength(1);
      const e = r.outgoingEgresses[0]!;
      expect([`${e.egressNamespace}/${e.egressType}`, e.argument.typename]).toEqual([
        'crash/out',
        'type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord',
      ]);
      const rec = KafkaProducerRecordType.deserialize(e.argument.value);
      expect([rec.topic, rec.key, JSON.parse(dec.decode(rec.value))]).toEqual(['crash-out', 'i7', { id: 'i7', counter: 1 }]);

      const k = resultOf(
        await invoke(jsCustom, batch('remote-test/kafka-greeter', 'dan', { seen: none('io.statefun.types/int') }, [str('ignored')])),
      );
      const kr = KafkaProducerRecordType.deserialize(k.outgoingEgresses[0]!.argument.value);
      expect(kr.topic).toBe('fixed-topic');
    });

    it('a wrongly typed state value -> HTTP 500 (the SDK checks the typename)', async () => {
      const r = await post(js.url, encodeToFunction(batch('remote-test/greeter', 'x', { seen: tv(Types.long, 1) }, [str('hi')])));
      expect(r.status).toBe(500);
      expect(js.stderr()).toContain('Type mismatch');
    });

    it('answers on any path and counts POSTs at /__stats', async () => {
      const before = await stats(js);
      const r = await post(
        `${js.baseUrl}/remote-test/greeter`,
        encodeToFunction(batch('remote-test/greeter', 'p', { seen: none('io.statefun.types/int') }, [str('hi')])),
      );
      expect(r.status).toBe(200);
      expect(await stats(js)).toBe(before + 1);
    });
  });

  describe('bad services', () => {
    const greet = () => encodeToFunction(batch('remote-test/greeter', 'z', { seen: none('io.statefun.types/int') }, [str('hi')]));

    it('status500: HTTP 500, empty body', async () => {
      const bad = await startBadService('status500');
      try {
        const r = await post(bad.url, greet());
        expect([r.status, r.body.length]).toEqual([500, 0]);
      } finally {
        await bad.stop();
      }
    });

    it('hang: accepts, never answers', async () => {
      const bad = await startBadService('hang');
      try {
        await expect(post(bad.url, greet(), 500)).rejects.toThrow(/timeout|aborted/i);
        expect(await stats(bad)).toBe(1);
      } finally {
        await bad.stop();
      }
    });

    it('garbage: HTTP 200 application/octet-stream that is not a FromFunction', async () => {
      const bad = await startBadService('garbage');
      try {
        const r = await post(bad.url, greet());
        expect([r.status, r.contentType]).toEqual([200, 'application/octet-stream']);
        expect(r.body.length).toBeGreaterThanOrEqual(64);
        expect(() => decodeFromFunction(r.body)).toThrow();
      } finally {
        await bad.stop();
      }
    });

    it('wrongtype: HTTP 200 text/html', async () => {
      const bad = await startBadService('wrongtype');
      try {
        const r = await post(bad.url, greet());
        expect(r.status).toBe(200);
        expect(r.contentType).toMatch(/^text\/html/);
        expect(dec.decode(r.body)).toContain('<html>');
      } finally {
        await bad.stop();
      }
    });

    it('flaky: N x 500, then the healthy service behind it answers', async () => {
      const bad = await startBadService('flaky', { target: js.url, failures: 2 });
      try {
        expect((await post(bad.url, greet())).status).toBe(500);
        expect((await post(bad.url, greet())).status).toBe(500);
        const r = await post(bad.url, greet());
        expect([r.status, r.contentType]).toEqual([200, 'application/octet-stream']);
        expect(egressStrings(resultOf(decodeFromFunction(r.body)))).toEqual(['Hello z, seen 1']);
      } finally {
        await bad.stop();
      }
    });

    it('kill(): the peer dies at once (a crash), and the port refuses connections', async () => {
      const svc = await startJsService();
      svc.kill();
      await svc.exited;
      await expect(post(svc.url, greet(), 2000)).rejects.toThrow();
    });
  });
});
