/**
 * The remote-function SDK's HTTP side (sdk/server.ts) on real node:http over loopback: the
 * request-reply exchange as StateFun's runtime makes it (POST, application/octet-stream both
 * ways), state negotiation across requests, and every error status.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeFromFunction,
  encodeToFunction,
  type FromFunction,
  type InvocationBatchRequest,
  type PbTypedValue,
} from '../../remote/protocol.js';
import {
  defineFunction,
  Message,
  requestReplyHandler,
  serve,
  Types,
  type RemoteFunctionServer,
  type StatefnError,
} from '../../sdk/index.js';

const OCTET = 'application/octet-stream';
const str = (s: string): PbTypedValue => ({ typename: Types.string.typename, hasValue: true, value: Types.string.serialize(s) });

const greeter = defineFunction({
  typename: 'example/greeter',
  specs: [{ name: 'seen', type: Types.int, expireAfterWrite: 60_000 }] as const,
  handler(ctx, msg) {
    const name = msg.asString();
    if (name === 'boom') throw new Error('boom requested');
    const seen = (ctx.storage.seen ?? 0) + 1;
    ctx.storage.seen = seen;
    ctx.egress('example/greets', Message.of(Types.string, `Hello ${name} #${seen}`));
  },
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(
  url: string,
  body: Uint8Array | Uint8Array[] | null,
  opts: { method?: string; contentType?: string | null; agent?: http.Agent | false } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    const contentType = opts.contentType === undefined ? OCTET : opts.contentType;
    if (contentType !== null) headers['Content-Type'] = contentType;
    if (body instanceof Uint8Array) headers['Content-Length'] = body.length;
    const req = http.request(url, { method: opts.method ?? 'POST', headers, agent: opts.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(body)) {
      for (const chunk of body) req.write(chunk); // chunked transfer encoding, no Content-Length
      req.end();
    } else {
      req.end(body ?? undefined);
    }
  });
}

const batch = (state: InvocationBatchRequest['state'], names: string[], type = 'greeter'): Uint8Array =>
  encodeToFunction({
    target: { namespace: 'example', type, id: 'ann' },
    state,
    invocations: names.map((n) => ({ argument: str(n) })),
  });

function decoded(r: Reply): FromFunction {
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toBe(OCTET); // exactly: StateFun's OkHttp client compares it
  expect(Number(r.headers['content-length'])).toBe(r.body.length);
  return decodeFromFunction(r.body);
}

describe('serve()', () => {
  let server: RemoteFunctionServer;
  const errors: [number, string][] = [];

  beforeAll(async () => {
    server = await serve([greeter], {
      path: '/statefun',
      maxBodyBytes: 4096,
      onError: (e: StatefnError, status: number) => errors.push([status, e.message]),
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('listens on loopback at the path', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/statefun`);
    expect(server.port).toBeGreaterThan(0);
  });

  it('negotiates missing state, then runs the batch with it', async () => {
    expect(decoded(await request(server.url, batch([], ['ann'])))).toEqual({
      kind: 'incomplete',
      missingValues: [
        { stateName: 'seen', typeTypename: 'io.statefun.types/int', expirationSpec: { mode: 'AFTER_WRITE', expireAfterMillis: 60_000 } },
      ],
    });
    const r = decoded(await request(server.url, batch([{ stateName: 'seen' }], ['ann', 'ann'])));
    expect(r).toEqual({
      kind: 'result',
      result: {
        stateMutations: [
          {
            mutationType: 'MODIFY',
            stateName: 'seen',
            stateValue: { typename: 'io.statefun.types/int', hasValue: true, value: Types.int.serialize(2) },
          },
        ],
        outgoingMessages: [],
        delayedInvocations: [],
        outgoingEgresses: [1, 2].map((n) => ({ egressNamespace: 'example', egressType: 'greets', argument: str(`Hello ann #${n}`) })),
      },
    });
  });

  it('accepts application/octet-stream with parameters, in any case, or no content type', async () => {
    for (const contentType of ['application/octet-stream; charset=binary', 'Application/Octet-Stream', null]) {
      expect(decoded(await request(server.url, batch([{ stateName: 'seen' }], ['x']), { contentType })).kind).toBe('result');
    }
    // and a query string on the path
    expect(decoded(await request(`${server.url}?x=1`, batch([{ stateName: 'seen' }], ['x']))).kind).toBe('result');
  });

  it('serves concurrent requests', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => request(server.url, batch([{ stateName: 'seen' }], [`n${i}`]))));
    for (const r of replies) expect(decoded(r).kind).toBe('result');
  });

  it('400 for malformed protobuf, with the reason', async () => {
    const r = await request(server.url, Uint8Array.of(0xa2, 0x06, 0x05, 0x0a));
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.body.toString()).toMatch(/^ToFunction: malformed protobuf/);
    const empty = await request(server.url, new Uint8Array());
    expect(empty.status).toBe(400);
    expect(empty.body.toString()).toMatch(/ToFunction.invocation is missing/);
  });

  it('404 for an unknown function type, naming it', async () => {
    const r = await request(server.url, batch([], ['x'], 'nobody'));
    expect(r.status).toBe(404);
    expect(r.body.toString()).toMatch(/unknown function type 'example\/nobody'/);
  });

  it('404 for another path', async () => {
    const r = await request(server.url.replace('/statefun', '/other'), batch([], ['x']));
    expect(r.status).toBe(404);
    expect(r.body.toString()).toMatch(/no functions are served at \/other/);
  });

  it('405 for a method other than POST', async () => {
    for (const method of ['GET', 'PUT']) {
      const r = await request(server.url, method === 'GET' ? null : batch([], ['x']), { method });
      expect(r.status).toBe(405);
      expect(r.headers.allow).toBe('POST');
    }
  });

  it('415 for another content type', async () => {
    const r = await request(server.url, batch([], ['x']), { contentType: 'application/json' });
    expect(r.status).toBe(415);
    expect(r.body.toString()).toMatch(/unsupported content type 'application\/json'/);
  });

  it('500 when a handler throws, with its message; the error callback sees it', async () => {
    const r = await request(server.url, batch([{ stateName: 'seen' }], ['ann', 'boom']));
    expect(r.status).toBe(500);
    expect(r.body.toString()).toBe('example/greeter/ann: handler failed: boom requested\n');
    expect(errors).toContainEqual([500, 'example/greeter/ann: handler failed: boom requested']);
  });

  it('413 for a body over the limit, declared or streamed', async () => {
    const big = new Uint8Array(5000);
    const declared = await request(server.url, big);
    expect(declared.status).toBe(413);
    expect(declared.headers.connection).toBe('close');
    expect(declared.body.toString()).toMatch(/larger than the limit of 4096 bytes/);
    const streamed = await request(server.url, [new Uint8Array(3000), new Uint8Array(3000)]);
    expect(streamed.status).toBe(413);
    // a body right at the limit is read (and here is not valid protobuf)
    const atLimit = new Uint8Array(4096);
    expect((await request(server.url, atLimit)).status).toBe(400);
  });

  it('keeps a keep-alive connection usable across error replies', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await request(server.url, Uint8Array.of(0xff), { agent })).status).toBe(400);
      expect((await request(server.url, null, { agent, method: 'GET' })).status).toBe(405);
      expect(decoded(await request(server.url, batch([{ stateName: 'seen' }], ['k']), { agent })).kind).toBe('result');
    } finally {
      agent.destroy();
    }
  });
});

describe('requestReplyHandler() in a server of your own', () => {
  it('serves at whatever route the server gives it; close() stops the SDK server', async () => {
    const handler = requestReplyHandler([greeter]);
    const own = http.createServer((req, res) => (req.url === '/fn' ? handler(req, res) : res.writeHead(204).end()));
    await new Promise<void>((r) => own.listen(0, '127.0.0.1', r));
    const port = (own.address() as { port: number }).port;
    try {
      expect(decoded(await request(`http://127.0.0.1:${port}/fn`, batch([], ['x']))).kind).toBe('incomplete');
    } finally {
      await new Promise((r) => own.close(r));
    }
    const s = await serve([greeter]);
    expect(s.url).toBe(`http://127.0.0.1:${s.port}/`);
    expect(decoded(await request(s.url, batch([{ stateName: 'seen' }], ['x']))).kind).toBe('result');
    await s.close();
    // (a fresh connection: the global agent may still hold the socket close() just ended)
    await expect(request(s.url, batch([], ['x']), { agent: false })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('rejects a bad body limit', () => {
    expect(() => requestReplyHandler([greeter], { maxBodyBytes: 0 })).toThrow(/maxBodyBytes/);
  });
});
