// Proves the HTTP ingress's bounds agree with the engine and hold against slow clients: a body
// that cannot fit in a frame gets 413 before any 202 (never acknowledged, then dead-lettered); a
// bodyBytesMax that cannot fit in frameBytesMax fails the engine's start naming both settings;
// slow-loris connections at the connection limit do not lock other clients out (the header
// timeout closes them, a connection beyond the limit gets a 503 response, not a TCP reset), and
// one client cannot take every connection. Real engines, real sockets on 127.0.0.0/8.
import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../index.js';
import { ID_LENGTH_MAX } from '../../api/address.js';
import type { IngressContext, Logger, RoutedMessage } from '../../api/connector_api.js';
import { HttpIngress, type HttpIngressOptions } from '../../connectors/http/http_ingress.js';
import type { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import { ErrorCode } from '../../shared/errors.js';
import { LIMIT_SPECS, messageEnvelopeBytesMax } from '../../shared/limits.js';
import { FrameKind, compressMessages, createCodec } from '../../shared/frames.js';
import { messageFrameBytes } from '../../connectors/http/http_request.js';
import { MemoryLogger, TempDirs } from '../fixtures/engine_harness.js';
import { parseModuleYaml } from '../../config/index.js';
import { builtinConnectorKinds } from '../../connectors/registry.js';
import type { HttpIngressDocument } from '../../connectors/http/http_kind.js';
import type { HttpIdemParams } from '../fixtures/apps/http_idem_app.js';

const app = new URL('../fixtures/apps/http_idem_app.ts', import.meta.url).href;
const dirs = new TempDirs();
afterAll(() => dirs.removeAll());

const KiB = 1024;
const RAW = 'application/vnd.hi/Raw';

function start(params: HttpIdemParams = {}, extra: Record<string, unknown> = {}): Promise<Engine> {
  return Engine.start({ module: app, params }, { stateDir: dirs.make('http-limits'), workers: 2, logger: new MemoryLogger(), ...extra });
}

function portOf(engine: Engine): number {
  return (engine.app.ingresses[0]!.connector as unknown as HttpIngress).address().port;
}

describe('HTTP body limit and the frame limit', () => {
  it('answers 413 to a body between the frame limit and the former 1 MiB default, never 202', async () => {
    const engine = await start();
    const r = await fetch(`http://127.0.0.1:${portOf(engine)}/hi/counter/big`, {
      method: 'POST',
      headers: { 'Content-Type': RAW },
      body: new Uint8Array(400 * KiB),
    });
    const body = (await r.json()) as { code: string; message: string };
    expect({ status: r.status, code: body.code }).toEqual({ status: 413, code: ErrorCode.PAYLOAD_TOO_LARGE });
    expect(body.message).toMatch(/bodyBytesMax/);
    expect(engine.stats().ingested).toBe(0);
    await engine.stop();
  });

  it('delivers the largest body the default accepts, to a long id, without a dead letter', async () => {
    const engine = await start();
    const http = engine.app.ingresses[0]!.connector as unknown as HttpIngress;
    const max = http.bodyLimit();
    expect(max).toBeLessThan(LIMIT_SPECS.frameBytesMax.default);
    expect(max).toBeGreaterThan(LIMIT_SPECS.frameBytesMax.default - 16 * KiB);
    const r = await fetch(`http://127.0.0.1:${portOf(engine)}/hi/counter/${'i'.repeat(ID_LENGTH_MAX)}`, {
      method: 'POST',
      headers: { 'Content-Type': RAW },
      body: new Uint8Array(max),
    });
    expect(r.status).toBe(202);
    const out = engine.app.egresses.get('hi/out') as MemoryEgress;
    await out.waitFor(1, 20_000);
    expect(engine.stats().deadLetters).toBe(0);
    // One byte more is refused before it is acknowledged.
    const over = await fetch(`http://127.0.0.1:${portOf(engine)}/hi/counter/x`, {
      method: 'POST',
      headers: { 'Content-Type': RAW },
      body: new Uint8Array(max + 1),
    });
    expect(over.status).toBe(413);
    await engine.stop();
  });

  it('keeps enough of the frame for the longest address: the worst-case message fits', () => {
    // Type names and id at their longest, in three-byte characters, around a body of the default limit.
    const name = (n: number) => '\u4e00'.repeat(n);
    const body = new Uint8Array(LIMIT_SPECS.frameBytesMax.default - messageEnvelopeBytesMax);
    const to = { typename: `${name(127)}/${name(127)}`, id: name(ID_LENGTH_MAX) };
    const typename = `${name(127)}/${name(127)}`;
    const frame = createCodec().pack(compressMessages([FrameKind.MESSAGES, to.typename, to.id, null, null, typename, body]));
    expect(frame.length).toBeLessThanOrEqual(LIMIT_SPECS.frameBytesMax.default);
    expect(messageFrameBytes(to, typename, body)).toBeGreaterThanOrEqual(frame.length);
  });

  it('fails the engine start when bodyBytesMax cannot fit in frameBytesMax, naming both and the fix', async () => {
    await expect(start({ http: { bodyBytesMax: 1024 * KiB } })).rejects.toThrow(
      /bodyBytesMax \(1048576 bytes\).*limits\.frameBytesMax \(262144 bytes\).*bodyBytesMax to at most \d+.*raise limits\.frameBytesMax/,
    );
    // With frames large enough, the same bodyBytesMax starts and a 400 KiB body is accepted.
    const engine = await start({ http: { bodyBytesMax: 1024 * KiB } }, { limits: { frameBytesMax: 2048 * KiB, ringBytes: 8192 * KiB } });
    const r = await fetch(`http://127.0.0.1:${portOf(engine)}/hi/counter/big`, {
      method: 'POST',
      headers: { 'Content-Type': RAW },
      body: new Uint8Array(400 * KiB),
    });
    expect(r.status).toBe(202);
    await (engine.app.egresses.get('hi/out') as MemoryEgress).waitFor(1, 20_000);
    expect(engine.stats().deadLetters).toBe(0);
    await engine.stop();
  });
});

describe('module.yaml settings of the HTTP ingress', () => {
  const parse = (spec: string): HttpIngressDocument =>
    parseModuleYaml(
      `kind: io.statefn.http.v1/ingress\nspec:\n  id: web/in\n${spec}`,
      'module.yaml',
      {},
      builtinConnectorKinds,
    )[0] as HttpIngressDocument;

  it('reads the limits with their units, and leaves bodyBytesMax to follow the frame limit when unset', () => {
    expect(parse('')).not.toHaveProperty('bodyBytesMax');
    const d = parse(
      '  bodyBytesMax: 128kb\n  connectionsMax: 2048\n  connectionsPerClientMax: 64\n  headersTimeoutMs: 5s\n' +
        '  requestTimeoutMs: 1 min\n  idempotencyKeysMax: 50000\n  idempotencyKeyAgeMs: 12h\n',
    );
    expect(d).toMatchObject({
      bodyBytesMax: 128 * KiB,
      connectionsMax: 2048,
      connectionsPerClientMax: 64,
      headersTimeoutMs: 5_000,
      requestTimeoutMs: 60_000,
      idempotencyKeysMax: 50_000,
      idempotencyKeyAgeMs: 12 * 3_600_000,
    });
    expect(() => parse('  idempotencyKeyAgeMs: 60d\n')).toThrow(/spec\.idempotencyKeyAgeMs/);
  });
});

// ---- slow clients: the ingress on its own, against raw sockets ----

class Context implements IngressContext<RoutedMessage> {
  readonly records: RoutedMessage[] = [];
  readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  readonly logger: Logger = { info: () => {}, warn: () => {}, error: () => {} };
  submit(records: readonly RoutedMessage[]): boolean {
    this.records.push(...records);
    return true;
  }
  whenWritable(): Promise<void> {
    return Promise.resolve();
  }
  reject(): void {}
  hasFunction(): boolean {
    return true;
  }
  whenDurable(): Promise<void> {
    return Promise.resolve();
  }
}

const opened: HttpIngress[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const i of opened.splice(0)) await i.stop();
});

async function startIngress(options: Partial<HttpIngressOptions>): Promise<{ ingress: HttpIngress; port: number }> {
  const ingress = new HttpIngress({ id: 'test/slow', ...options });
  opened.push(ingress);
  await ingress.start(new Context());
  return { ingress, port: ingress.address().port };
}

/** What a raw socket saw: the bytes it received, and how it ended. */
interface Seen {
  data: string;
  error: string | undefined;
  closed: Promise<void>;
}

function connect(port: number, localAddress = '127.0.0.1'): { socket: net.Socket; seen: Seen; connected: Promise<void> } {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  sockets.push(socket);
  const seen: Seen = { data: '', error: undefined, closed: new Promise((r) => socket.once('close', () => r())) };
  socket.on('data', (d: Buffer) => (seen.data += d.toString('latin1')));
  socket.on('error', (e: NodeJS.ErrnoException) => (seen.error = e.code ?? e.message));
  return { socket, seen, connected: new Promise((r) => socket.once('connect', () => r())) };
}

/** A slow-loris client: the request line and headers, one byte every `everyMs`, never finished. */
function slowLoris(port: number, localAddress?: string, everyMs = 50): { seen: Seen; connected: Promise<void> } {
  const c = connect(port, localAddress);
  const text = 'POST /com.example/greeter/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.com.example/Raw\r\nX-Padding: ';
  let i = 0;
  const timer = setInterval(() => {
    if (c.socket.destroyed) return clearInterval(timer);
    c.socket.write(i < text.length ? text[i++]! : 'a');
  }, everyMs);
  void c.seen.closed.then(() => clearInterval(timer));
  return { seen: c.seen, connected: c.connected };
}

async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A normal client: POSTs until it is not told to retry (503), at most `attempts` times. */
async function postUntilServed(port: number, localAddress?: string, attempts = 200): Promise<number> {
  for (let i = 0; i < attempts; i++) {
    const status = await new Promise<number>((resolve) => {
      const c = connect(port, localAddress);
      c.socket.write(
        'POST /com.example/greeter/bob HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.com.example/Raw\r\nContent-Length: 1\r\n\r\nx',
      );
      void c.seen.closed.then(() => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(c.seen.data)?.[1] ?? 0)));
      c.socket.on('data', () => {
        if (/\r\n\r\n/.test(c.seen.data)) c.socket.end();
      });
    });
    if (status !== 503 && status !== 0) return status;
    await new Promise((r) => setTimeout(r, 50));
  }
  return 0;
}

describe('HTTP ingress against slow clients', () => {
  it('serves a normal client while slow-loris connections fill connectionsMax; the one beyond gets 503, not a reset', async () => {
    const N = 16;
    const { ingress, port } = await startIngress({ connectionsMax: N, headersTimeoutMs: 1_000 });
    const slow = Array.from({ length: N }, () => slowLoris(port));
    await Promise.all(slow.map((s) => s.connected));
    await until(() => ingress.stats().connectionsOpen === N, `${N} connections accepted`);

    const extra = connect(port);
    await extra.seen.closed;
    expect(extra.seen.error).toBeUndefined(); // not ECONNRESET
    expect(extra.seen.data).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(extra.seen.data).toMatch(/\r\nRetry-After: \d+\r\n/i);
    expect(extra.seen.data).toContain(ErrorCode.OVERLOADED);

    // A normal client gets in (a slow connection is closed by the header timeout, or gives way).
    expect(await postUntilServed(port)).toBe(202);
    // Every slow-loris connection is closed by the server, none is left holding a slot.
    await Promise.all(slow.map((s) => s.seen.closed));
    expect(ingress.stats().connectionsRejected).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('bounds the connections of one client (remote address), so others are served at once', async () => {
    const { ingress, port } = await startIngress({ connectionsMax: 64, connectionsPerClientMax: 4, headersTimeoutMs: 30_000 });
    const slow = Array.from({ length: 4 }, () => slowLoris(port, '127.0.0.2'));
    await Promise.all(slow.map((s) => s.connected));
    await until(() => ingress.stats().connectionsOpen === 4, '4 connections accepted');
    const fifth = connect(port, '127.0.0.2');
    await fifth.seen.closed;
    expect(fifth.seen.error).toBeUndefined();
    expect(fifth.seen.data).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(fifth.seen.data).toMatch(/connectionsPerClientMax/);
    // Another client is served on its first attempt, the slow ones still open.
    expect(await postUntilServed(port, '127.0.0.1', 1)).toBe(202);
    expect(ingress.stats().connectionsOpen).toBeGreaterThanOrEqual(4);
  });
});
