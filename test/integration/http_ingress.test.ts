// Proves HttpIngress answers every status of its protocol to real HTTP clients on 127.0.0.1,
// decodes payloads, and slows clients under back-pressure instead of buffering.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { IngressContext, Logger, RoutedMessage } from '../../api/connector_api.js';
import { ErrorCode } from '../../shared/errors.js';
import { Types } from '../../api/types.js';
import { HttpIngress, type HttpIngressOptions } from '../../connectors/http/http_ingress.js';

/** The engine side, reduced to what an ingress sees: collects records, back-pressure on demand. */
class CollectingContext implements IngressContext<RoutedMessage> {
  readonly records: RoutedMessage[] = [];
  readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  readonly logger: Logger = { info: () => {}, warn: () => {}, error: () => {} };
  readonly functions = new Set(['com.example/greeter', 'com.example.shop/cart']);
  writable = true;
  private writableWaiters: (() => void)[] = [];
  private submitWaiters: { count: number; resolve: () => void }[] = [];

  submit(records: readonly RoutedMessage[]): boolean {
    this.records.push(...records);
    this.submitWaiters = this.submitWaiters.filter((w) => (this.records.length >= w.count ? (w.resolve(), false) : true));
    return this.writable;
  }
  whenWritable(): Promise<void> {
    if (this.writable) return Promise.resolve();
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }
  release(): void {
    this.writable = true;
    for (const w of this.writableWaiters.splice(0)) w();
  }
  submitted(count: number): Promise<void> {
    if (this.records.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.submitWaiters.push({ count, resolve }));
  }
  reject(): void {}
  /** What whenDurable() returns (tests of durable replies swap in a promise they control). */
  durable: Promise<void> = Promise.resolve();

  whenDurable(): Promise<void> {
    return this.durable;
  }

  hasFunction(typename: string): boolean {
    return this.functions.has(typename);
  }
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const opened: HttpIngress[] = [];

afterEach(async () => {
  for (const i of opened.splice(0)) await i.stop();
});

async function startIngress(options: Partial<HttpIngressOptions> = {}, ctx = new CollectingContext()) {
  const ingress = new HttpIngress({ id: 'test/http', ...options });
  opened.push(ingress);
  await ingress.start(ctx);
  const { host, port } = ingress.address();
  const base = `http://${host}:${port}`;
  return { ingress, ctx, base, port };
}

function send(base: string, path: string, body: Uint8Array | string, contentType?: string, method = 'POST') {
  const headers: Record<string, string> = {};
  if (contentType !== undefined) headers['content-type'] = contentType;
  return fetch(base + path, { method, headers, body: typeof body === 'string' ? new TextEncoder().encode(body) : body });
}

async function expectError(res: Response, status: number, code: string, messageMatch: RegExp): Promise<void> {
  const body = (await res.json()) as { code: string; message: string };
  expect({ status: res.status, code: body.code }).toEqual({ status, code });
  expect(body.message).toMatch(messageMatch);
}

/** An http.request whose body is sent in parts under the test's control. */
function openRequest(port: number, path: string, headers: http.OutgoingHttpHeaders) {
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false });
  const response = new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  return { req, response };
}

const STRING = 'application/vnd.io.statefun.types/string';

describe('HttpIngress', () => {
  it('listens on 127.0.0.1 by default, on an ephemeral port, and answers GET /healthz', async () => {
    const { ingress, base, port } = await startIngress();
    expect(ingress.address()).toEqual({ host: '127.0.0.1', port });
    expect(port).toBeGreaterThan(0);
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('accepts a built-in string (POST) and int (PUT), decoding them to native payloads', async () => {
    const { ctx, base } = await startIngress();
    const r1 = await send(base, '/com.example/greeter/alice', Types.string.serialize('hello'), STRING);
    expect(r1.status).toBe(202);
    expect(await r1.json()).toEqual({ status: 'accepted' });
    const r2 = await send(base, '/com.example/greeter/bob', Types.int.serialize(-42), 'application/vnd.io.statefun.types/int', 'PUT');
    expect(r2.status).toBe(202);
    const [a, b] = ctx.records;
    expect(a!.to).toEqual({ typename: 'com.example/greeter', id: 'alice' });
    expect(a!.message.typename).toBe('io.statefun.types/string');
    expect(a!.message.payload).toBe('hello');
    expect(b!.to).toEqual({ typename: 'com.example/greeter', id: 'bob' });
    expect(b!.message.asInt()).toBe(-42);
    expect(b!.message.payload).toBe(-42);
  });

  it('passes a custom (JSON) type through as its body bytes', async () => {
    const { ctx, base } = await startIngress();
    const json = '{"item":"book","qty":2}';
    const res = await send(base, '/com.example.shop/cart/u1', json, 'application/vnd.com.example/Order; charset=utf-8');
    expect(res.status).toBe(202);
    const m = ctx.records[0]!.message;
    expect(m.typename).toBe('com.example/Order');
    expect(m.payload).toBeInstanceOf(Uint8Array);
    expect(new TextDecoder().decode(m.payload as Uint8Array)).toBe(json);
    expect(m.as(Types.json<{ item: string; qty: number }>('com.example/Order'))).toEqual({ item: 'book', qty: 2 });
  });

  it('URL-decodes the path: dotted namespace, ids with spaces, slashes and non-ASCII; ignores the query', async () => {
    const { ctx, base } = await startIngress();
    const id = 'user 1/aé?#';
    const res = await send(base, `/com.example.shop/cart/${encodeURIComponent(id)}?trace=1`, Types.string.serialize(''), STRING);
    expect(res.status).toBe(202);
    expect(ctx.records[0]!.to).toEqual({ typename: 'com.example.shop/cart', id });
    expect(ctx.records[0]!.message.payload).toBe('');
  });

  it('answers 400 for a bad path, type name or built-in body, naming the problem, and submits nothing', async () => {
    const { ctx, base } = await startIngress();
    const ok = Types.string.serialize('x');
    await expectError(await send(base, '/com.example/greeter', ok, STRING), 400, ErrorCode.ADDRESS_INVALID, /has 2 segments/);
    await expectError(await send(base, '/com.example/greeter/a/b', ok, STRING), 400, ErrorCode.ADDRESS_INVALID, /has 4 segments/);
    await expectError(await send(base, '/com.example/greeter/', ok, STRING), 400, ErrorCode.ADDRESS_INVALID, /empty segment/);
    await expectError(
      await send(base, '/com.example/greeter/%E0%A4%A', ok, STRING),
      400,
      ErrorCode.ADDRESS_INVALID,
      /not valid URL encoding/,
    );
    await expectError(await send(base, '/com.example/gree%2Fter/a', ok, STRING), 400, ErrorCode.ADDRESS_INVALID, /contains '\/'/);
    await expectError(
      await send(base, '/com.example/greeter/a', ok, 'application/vnd.nonamespace'),
      400,
      ErrorCode.ADDRESS_INVALID,
      /'nonamespace' is not a type name/,
    );
    // A string whose length prefix promises 5 bytes but carries 1; an int sent with the wrong wire type.
    await expectError(
      await send(base, '/com.example/greeter/a', Uint8Array.of(0x0a, 0x05, 0x61), STRING),
      400,
      ErrorCode.TYPE_MISMATCH,
      /not a valid io\.statefun\.types\/string/,
    );
    await expectError(
      await send(base, '/com.example/greeter/a', Uint8Array.of(0x08, 0x01), 'application/vnd.io.statefun.types/int'),
      400,
      ErrorCode.TYPE_MISMATCH,
      /wire type/,
    );
    expect(ctx.records).toEqual([]);
  });

  it('answers 404 for a function type the engine does not know', async () => {
    const { ctx, base } = await startIngress();
    await expectError(
      await send(base, '/com.example/nobody/a', Types.string.serialize('x'), STRING),
      404,
      ErrorCode.UNKNOWN_FUNCTION_TYPE,
      /'com\.example\/nobody'/,
    );
    expect(ctx.records).toEqual([]);
  });

  it('answers 405 with Allow for other methods', async () => {
    const { base } = await startIngress();
    const get = await fetch(`${base}/com.example/greeter/a`);
    expect(get.headers.get('allow')).toBe('POST, PUT');
    await expectError(get, 405, ErrorCode.REQUEST_INVALID, /POST or PUT/);
    const del = await fetch(`${base}/com.example/greeter/a`, { method: 'DELETE' });
    expect(del.status).toBe(405);
    await del.arrayBuffer();
    const postHealth = await fetch(`${base}/healthz`, { method: 'POST' });
    expect(postHealth.status).toBe(405);
    expect(postHealth.headers.get('allow')).toBe('GET, HEAD');
    await postHealth.arrayBuffer();
  });

  it('answers 415 for a missing or non-vnd content type', async () => {
    const { base } = await startIngress();
    const body = Types.string.serialize('x');
    await expectError(await send(base, '/com.example/greeter/a', body), 415, ErrorCode.REQUEST_INVALID, /missing Content-Type/);
    await expectError(
      await send(base, '/com.example/greeter/a', body, 'application/json'),
      415,
      ErrorCode.REQUEST_INVALID,
      /application\/vnd\.<namespace>\/<name>/,
    );
    await expectError(await send(base, '/com.example/greeter/a', body, 'text/plain'), 415, ErrorCode.REQUEST_INVALID, /not supported/);
  });

  it('answers 413 to a declared Content-Length over bodyBytesMax without reading the body', async () => {
    const { ctx, base } = await startIngress({ bodyBytesMax: 1024 });
    const res = await send(base, '/com.example.shop/cart/a', new Uint8Array(1025), 'application/vnd.com.example/Blob');
    expect(res.headers.get('connection')).toBe('close');
    await expectError(res, 413, ErrorCode.PAYLOAD_TOO_LARGE, /bodyBytesMax \(1024 bytes\)/);
    const exact = await send(base, '/com.example.shop/cart/a', new Uint8Array(1024), 'application/vnd.com.example/Blob');
    expect(exact.status).toBe(202);
    expect(ctx.records.length).toBe(1);
  });

  it('answers 413 to a streamed (chunked) body as soon as it passes the bound, while the client is still sending', async () => {
    const { ctx, port } = await startIngress({ bodyBytesMax: 64 * 1024 });
    const { req, response } = openRequest(port, '/com.example.shop/cart/a', { 'content-type': 'application/vnd.com.example/Blob' });
    // The client sends until it gets an answer, or ends the body after bytesSentMax. A server that
    // read the whole body before answering would only answer after that end.
    const bytesSentMax = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    let answered = false;
    let bytesSent = 0;
    void response.then(
      () => (answered = true),
      () => (answered = true),
    );
    const pump = (): void => {
      while (!answered) {
        if (bytesSent >= bytesSentMax) return void req.end();
        bytesSent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
    };
    req.on('error', () => {}); // the server closes the connection after its answer
    pump();
    const res = await response;
    req.destroy();
    expect(res.status).toBe(413);
    expect(res.headers.connection).toBe('close');
    expect(JSON.parse(res.body)).toMatchObject({ code: ErrorCode.PAYLOAD_TOO_LARGE });
    expect(bytesSent).toBeLessThan(bytesSentMax);
    expect(ctx.records).toEqual([]);
  });

  it('answers 503 with Retry-After once requestsInFlightMax requests are in flight', async () => {
    const { ingress, ctx, base, port } = await startIngress({ requestsInFlightMax: 2 });
    const body = Types.string.serialize('slow');
    const slow = [0, 1].map((i) => {
      const r = openRequest(port, `/com.example/greeter/slow${i}`, { 'content-type': STRING, 'content-length': body.length });
      r.req.write(body.subarray(0, 2)); // headers and part of the body: the request holds a slot
      return r;
    });
    while (ingress.stats().requestsInFlight < 2) await settle(5);
    const res = await send(base, '/com.example/greeter/c', body, STRING);
    expect(res.headers.get('retry-after')).toBe('1');
    await expectError(res, 503, ErrorCode.OVERLOADED, /requestsInFlightMax/);
    for (const s of slow) s.req.end(body.subarray(2));
    const answers = await Promise.all(slow.map((s) => s.response));
    expect(answers.map((a) => a.status)).toEqual([202, 202]);
    expect(ctx.records.map((r) => r.to.id).sort()).toEqual(['slow0', 'slow1']);
    expect(ingress.stats()).toMatchObject({ requestsAccepted: 2, requestsOverloaded: 1, requestsInFlight: 0 });
  });

  it('under back-pressure holds the reply, and the next request, until whenWritable resolves', async () => {
    const { ctx, base } = await startIngress();
    ctx.writable = false;
    let firstAnswered = false;
    const first = send(base, '/com.example/greeter/a', Types.string.serialize('1'), STRING).then((r) => {
      firstAnswered = true;
      return r;
    });
    await ctx.submitted(1);
    const second = send(base, '/com.example/greeter/b', Types.string.serialize('2'), STRING);
    // Ample time for a wrong implementation to answer or to submit the second record.
    await settle(100);
    expect(firstAnswered).toBe(false);
    expect(ctx.records.length).toBe(1);
    ctx.release();
    const [r1, r2] = await Promise.all([first, second]);
    expect([r1.status, r2.status]).toEqual([202, 202]);
    expect(ctx.records.map((r) => r.message.payload)).toEqual(['1', '2']);
  });

  it('answers 503 with Retry-After while the engine is stopping', async () => {
    const { ctx, base } = await startIngress();
    ctx.controller.abort();
    const res = await send(base, '/com.example/greeter/a', Types.string.serialize('x'), STRING);
    expect(res.headers.get('retry-after')).toBe('1');
    await expectError(res, 503, ErrorCode.ENGINE_STOPPED, /stopping/);
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(503);
    await health.arrayBuffer();
    expect(ctx.records).toEqual([]);
  });

  it('stop() ends idle keep-alive connections and answers requests waiting at the gate with 503', async () => {
    const { ingress, ctx, port } = await startIngress();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const idle = await new Promise<net.Socket>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/healthz', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(req.socket!));
      });
      req.on('error', reject);
      req.end();
    });
    const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    // One request accepted and waiting for its reply, one waiting at the closed gate.
    ctx.writable = false;
    const body = Types.string.serialize('x');
    const accepted = openRequest(port, '/com.example/greeter/a', { 'content-type': STRING, 'content-length': body.length });
    accepted.req.end(body);
    await ctx.submitted(1);
    const gated = openRequest(port, '/com.example/greeter/b', { 'content-type': STRING, 'content-length': body.length });
    gated.req.end(body);
    while (ingress.stats().requestsInFlight < 2) await settle(5);

    await ingress.stop();
    await idleClosed;
    agent.destroy();
    const [a, g] = await Promise.all([accepted.response, gated.response]);
    expect(a.status).toBe(202); // it was handed to the engine before the stop
    expect(g.status).toBe(503);
    expect(ctx.records.length).toBe(1);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('answers 503 with Retry-After to a connection beyond connectionsMax and closes it (not a reset)', async () => {
    const { port } = await startIngress({ connectionsMax: 1 });
    const first = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => first.once('connect', () => resolve()));
    // Make sure the server has accepted the first connection before opening the second.
    first.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => first.once('data', () => resolve()));
    const second = net.connect(port, '127.0.0.1');
    let received = '';
    let error: string | undefined;
    second.on('data', (d: Buffer) => (received += d.toString()));
    second.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    second.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => second.once('close', () => resolve()));
    expect(error).toBeUndefined();
    expect(received).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(received).toMatch(/\r\nRetry-After: 1\r\n/);
    expect(received).toMatch(/connectionsMax/);
    first.destroy();
  });

  it('rejects a port in use and bad options with a message naming the option', async () => {
    const { port } = await startIngress();
    const clash = new HttpIngress({ id: 'test/http2', port });
    await expect(clash.start(new CollectingContext())).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
    expect(() => new HttpIngress({ id: 'test/http', bodyBytesMax: -1 })).toThrow(/options\.bodyBytesMax/);
    expect(() => new HttpIngress({ id: 'test/http', requestsInFlightMax: 0 })).toThrow(/options\.requestsInFlightMax/);
    expect(() => new HttpIngress({ id: 'test/http' }).address()).toThrow(/before start\(\) resolved/);
  });
});

describe('durable replies and idempotency keys', () => {
  it('answers 202 only once whenDurable resolves, and a repeated Idempotency-Key submits once', async () => {
    const ctx = new CollectingContext();
    let makeDurable!: () => void;
    ctx.durable = new Promise<void>((r) => (makeDurable = r));
    const ingress = new HttpIngress({ id: 'test/http-durable' });
    await ingress.start(ctx);
    const { port } = ingress.address();
    const post = () =>
      fetch(`http://127.0.0.1:${port}/com.example/greeter/bob`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/vnd.com.example/Raw', 'Idempotency-Key': 'k-1' },
        body: 'x',
      });
    const first = post();
    let answered = false;
    void first.then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false); // not durable yet: no reply
    const second = post(); // a client retry with the same key
    makeDurable();
    expect((await first).status).toBe(202);
    const r2 = await second;
    expect(r2.status).toBe(202);
    expect(await r2.json()).toEqual({ status: 'duplicate' });
    expect(ctx.records.length).toBe(1); // submitted once
    await ingress.stop();
  });
});
