/**
 * `HttpIngress`: messages in over HTTP, in the convention of StateFun's playground ingress.
 *
 *   POST|PUT /<namespace>/<type>/<id>
 *   Content-Type: application/vnd.<message typename>      e.g. application/vnd.io.statefun.types/string
 *   body: the value's bytes in StateFun's wire format (for JSON types, the JSON text)
 *
 * The three path segments are URL-decoded; the target function type is `<namespace>/<type>`. The
 * message becomes `new Message(typename, payload)`, where the payload is the decoded native value
 * for built-in types and the body bytes otherwise. Replies:
 *
 *   202 {"status":"accepted"}   handed to the engine
 *   400 bad path, type name or body (a built-in type that does not decode)
 *   404 no function of that type       405 wrong method       413 body larger than bodyBytesMax
 *   415 missing or non-`application/vnd.` content type
 *   503 + Retry-After           requestsInFlightMax reached, or the engine is stopping
 *   GET /healthz -> 200 {"status":"ok"}
 * Every error body is `{"code": <StatefnError code>, "message": <what is wrong and how to fix it>}`.
 *
 * Back-pressure slows clients instead of buffering: when `ctx.submit` returns false the ingress
 * closes a gate until `ctx.whenWritable()` resolves. The request that hit it gets its reply only
 * then, and requests behind the gate wait before their body is read (TCP pushes back on the
 * client). Every request holds one of `requestsInFlightMax` slots from header to reply, so the
 * memory held is at most `requestsInFlightMax * bodyBytesMax`; beyond that clients get 503.
 *
 * Replies to accepted requests go through one method, `replyWhenAccepted`: in the durable mode
 * (the default) it answers 202 only once the checkpoint covering the record completed, and 503
 * when the engine fails or stops first.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IngressConnector, IngressContext, RoutedMessage } from '../../api/connector_api.js';
import { ErrorCode, StatefnError, errorInfo } from '../../shared/errors.js';
import { Message } from '../../api/message.js';
import {
  ABORTED,
  type ErrorReply,
  outcomeOrStop,
  STOPPED,
  StopFanout,
  TOO_LARGE,
  decodePayload,
  parseContentType,
  parsePath,
  readBody,
} from './http_request.js';

/** Options of an {@link HttpIngress}. */
export interface HttpIngressOptions {
  /** The ingress id, `namespace/name`. */
  id: string;
  /** Interface to listen on. Default `127.0.0.1` (loopback only); set `0.0.0.0` to accept remote clients. */
  host?: string;
  /** TCP port; 0 (the default) picks a free ephemeral port, see `address()`. */
  port?: number;
  /** Largest request body accepted; larger bodies get 413 without being read further. Default 1 MiB. */
  bodyBytesMax?: number;
  /** Requests handled at once (from headers received to reply sent); beyond it, 503. Default 256. */
  requestsInFlightMax?: number;
  /** Open TCP connections; the server drops connections beyond it at accept. Default 1024. */
  connectionsMax?: number;
  /** Time a client has to send a whole request (headers and body); then 408. Default 30 s. */
  requestTimeoutMs?: number;
  /**
   * When to answer 202: `durable` (default) once the checkpoint covering the message is complete,
   * so an acknowledged message survives any crash (a waiting request starts that checkpoint within
   * the engine's `durableWaitMs`: group commit); `accepted` as soon as the engine took it.
   */
  replyWhen?: 'durable' | 'accepted';
  /**
   * Idempotency keys remembered (header `Idempotency-Key`): a request whose key was seen answers
   * like the first one without submitting again. In memory only: a key is forgotten at a restart.
   * Default 100,000.
   */
  idempotencyKeysMax?: number;
}

/** Counters of an {@link HttpIngress}, for metrics. */
export interface HttpIngressStats {
  /** Requests answered 202. */
  requestsAccepted: number;
  /** Requests answered 4xx. */
  requestsRejected: number;
  /** Requests answered 503 (in-flight cap reached or stopping). */
  requestsOverloaded: number;
  /** Requests being handled now. */
  requestsInFlight: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  bodyBytesMax: 1 * MiB,
  requestsInFlightMax: 256,
  connectionsMax: 1024,
  requestTimeoutMs: 30_000,
  idempotencyKeysMax: 100_000,
} as const;
/** Headers must arrive within this, or within requestTimeoutMs if that is shorter. */
const HEADERS_TIMEOUT_MS_MAX = 60_000;
/** Seconds a 503 asks clients to wait before retrying. */
const RETRY_AFTER_SECONDS = 1;

function intOption(
  id: string,
  options: HttpIngressOptions,
  key: keyof typeof DEFAULTS & keyof HttpIngressOptions,
  min: number,
  max: number,
): number {
  const v = options[key] ?? DEFAULTS[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `http ingress '${id}': options.${key}: expected an integer in [${min}, ${max}], got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

export class HttpIngress implements IngressConnector<RoutedMessage> {
  readonly id: string;
  private readonly host: string;
  private readonly port: number;
  private readonly bodyBytesMax: number;
  private readonly requestsInFlightMax: number;
  private readonly connectionsMax: number;
  private readonly requestTimeoutMs: number;
  private readonly replyWhen: 'durable' | 'accepted';
  private readonly idempotencyKeysMax: number;
  /** Idempotency key -> when the first request with it became durable (bounded, oldest evicted). */
  private readonly idempotency = new Map<string, Promise<void>>();

  private server: http.Server | undefined;
  private ctx: IngressContext<RoutedMessage> | undefined;
  private bound: { host: string; port: number } | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  /** Waits that end when the ingress or the engine stops. */
  private readonly stopFanout = new StopFanout();
  private readonly fireStop = (): void => this.stopFanout.fire();
  /** Closed (a promise) while the engine is back-pressured; undefined when open. */
  private gate: Promise<void> | undefined;
  private readonly handling = new Set<Promise<void>>();
  private readonly counters: HttpIngressStats = { requestsAccepted: 0, requestsRejected: 0, requestsOverloaded: 0, requestsInFlight: 0 };

  constructor(options: HttpIngressOptions) {
    const id = options?.id;
    if (typeof id !== 'string' || id.length === 0) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `http ingress: options.id: expected an ingress id 'namespace/name', got ${JSON.stringify(id)}`,
      );
    }
    this.id = id;
    const host = options.host ?? DEFAULTS.host;
    if (typeof host !== 'string' || host.length === 0) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `http ingress '${id}': options.host: expected an interface address such as '127.0.0.1', got ${JSON.stringify(host)}`,
      );
    }
    this.host = host;
    this.port = intOption(id, options, 'port', 0, 65535);
    this.bodyBytesMax = intOption(id, options, 'bodyBytesMax', 0, 1024 * MiB);
    this.requestsInFlightMax = intOption(id, options, 'requestsInFlightMax', 1, 1 << 20);
    this.connectionsMax = intOption(id, options, 'connectionsMax', 1, 1 << 20);
    this.requestTimeoutMs = intOption(id, options, 'requestTimeoutMs', 1, 3_600_000);
    this.idempotencyKeysMax = intOption(id, options, 'idempotencyKeysMax', 0, 10_000_000);
    if (options.replyWhen !== undefined && options.replyWhen !== 'durable' && options.replyWhen !== 'accepted') {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `http ingress '${id}': replyWhen must be 'durable' or 'accepted', got ${JSON.stringify(options.replyWhen)}`,
      );
    }
    this.replyWhen = options.replyWhen ?? 'durable';
  }

  /** The address the server listens on; available once `start()` resolved. */
  address(): { host: string; port: number } {
    if (!this.bound) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `http ingress '${this.id}': address() called before start() resolved; await start() first`,
      );
    }
    return { ...this.bound };
  }

  stats(): HttpIngressStats {
    return { ...this.counters };
  }

  /** Listen; resolves once the server accepts connections. */
  async start(ctx: IngressContext<RoutedMessage>): Promise<void> {
    if (this.server) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `http ingress '${this.id}': started twice; create one HttpIngress per engine`);
    }
    this.ctx = ctx;
    if (ctx.signal.aborted) this.fireStop();
    else ctx.signal.addEventListener('abort', this.fireStop, { once: true });
    const server = http.createServer({
      requestTimeout: this.requestTimeoutMs,
      headersTimeout: Math.min(this.requestTimeoutMs, HEADERS_TIMEOUT_MS_MAX),
      // Node checks the two timeouts above on this interval (30 s by default), which would
      // stretch a short requestTimeoutMs; check often enough to honour it within ~25%.
      connectionsCheckingInterval: Math.max(10, Math.min(30_000, Math.floor(this.requestTimeoutMs / 4))),
    });
    server.maxConnections = this.connectionsMax;
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const p = this.handle(req, res).catch((err: unknown) => this.internalError(res, err));
      this.handling.add(p);
      void p.finally(() => this.handling.delete(p));
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        server.off('listening', onListening);
        reject(
          new StatefnError(
            ErrorCode.CONFIG_INVALID,
            `http ingress '${this.id}': cannot listen on ${this.host}:${this.port} (${err.code ?? err.message}); choose ` +
              `another options.port, or 0 for an ephemeral one`,
            { cause: err },
          ),
        );
      };
      const onListening = (): void => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(this.port, this.host);
    }).catch((err: unknown) => {
      this.server = undefined;
      throw err;
    });
    server.on('error', (err) => ctx.logger.error(`http ingress '${this.id}': server error`, { error: errorInfo(err) }));
    const a = server.address() as AddressInfo;
    this.bound = { host: a.address, port: a.port };
    ctx.logger.info(`http ingress '${this.id}' listening`, { host: a.address, port: a.port });
  }

  /**
   * Stop taking requests. No `submit` happens after this is called. Requests waiting at the gate
   * or still sending their body get 503; so do requests handed to the engine whose checkpoint has
   * not completed (durable mode: never a 202 before it); then every connection, including idle
   * keep-alive ones, is closed.
   */
  stop(): Promise<void> {
    this.stopping = true;
    this.stopController.abort();
    this.fireStop();
    this.stopped ??= this.closeServer();
    return this.stopped;
  }

  private async closeServer(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // Every handler finishes promptly now: waits end on the stop signal, body reads end with 503.
    await Promise.all([...this.handling]);
    server.closeAllConnections();
    await closed;
  }

  // ---- request handling ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const ctx = this.ctx!;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const method = req.method ?? '';

    if (path === '/healthz') {
      if (method !== 'GET' && method !== 'HEAD') {
        return this.fail(res, {
          status: 405,
          code: ErrorCode.REQUEST_INVALID,
          message: `${method} /healthz: use GET`,
          headers: { Allow: 'GET, HEAD' },
        });
      }
      if (this.isStopping()) return this.fail(res, this.stoppingReply());
      return this.send(res, 200, { status: 'ok' });
    }
    if (this.isStopping()) return this.fail(res, this.stoppingReply());
    if (method !== 'POST' && method !== 'PUT') {
      return this.fail(res, {
        status: 405,
        code: ErrorCode.REQUEST_INVALID,
        message: `${method} ${path}: send messages with POST or PUT /<namespace>/<type>/<id>`,
        headers: { Allow: 'POST, PUT' },
      });
    }
    const to = parsePath(path);
    if ('status' in to) return this.fail(res, to);
    const typename = parseContentType(req.headers['content-type']);
    if (typeof typename !== 'string') return this.fail(res, typename);
    if (!ctx.hasFunction(to.typename)) {
      return this.fail(res, {
        status: 404,
        code: ErrorCode.UNKNOWN_FUNCTION_TYPE,
        message: `${path}: no function of type '${to.typename}' is registered; check the namespace and type in the path`,
      });
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.bodyBytesMax) {
      return this.fail(res, this.tooLargeReply(`Content-Length ${declared}`));
    }
    if (this.counters.requestsInFlight >= this.requestsInFlightMax) {
      return this.fail(res, {
        status: 503,
        code: ErrorCode.OVERLOADED,
        message:
          `http ingress '${this.id}': ${this.requestsInFlightMax} requests in flight (requestsInFlightMax); retry later ` +
          `or raise requestsInFlightMax`,
        headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      });
    }

    this.counters.requestsInFlight++;
    try {
      // Behind a closed gate, do not even read the body: the client is slowed by TCP.
      if (!(await this.passGate())) return this.fail(res, this.stoppingReply());
      const body = await readBody(req, this.bodyBytesMax, this.stopFanout, this.stopController.signal);
      if (body === TOO_LARGE) return this.fail(res, this.tooLargeReply('the body'));
      if (body === ABORTED) return; // the client went away; nothing to answer
      if (body === STOPPED) return this.fail(res, this.stoppingReply());
      const decoded = decodePayload(typename, body);
      if ('status' in decoded) return this.fail(res, decoded);
      const routed: RoutedMessage = { to, message: new Message(typename, decoded.payload) };
      // The gate may have closed again while the body arrived; wait so that a burst released
      // by whenWritable does not all land at once.
      if (!(await this.passGate())) return this.fail(res, this.stoppingReply());
      // Checked synchronously right before submit: once stop() has been called, no submit.
      if (this.isStopping()) return this.fail(res, this.stoppingReply());
      const key = req.headers['idempotency-key'];
      if (typeof key === 'string' && key.length > 0) {
        if (key.length > 256)
          return this.fail(res, { status: 400, code: ErrorCode.REQUEST_INVALID, message: 'Idempotency-Key: at most 256 characters' });
        const seen = this.idempotency.get(key);
        if (seen !== undefined) {
          // The same request again: answer as the first one does, without a second submit.
          // The first request's checkpoint must complete for this one too: never a 202 before.
          const outcome = await outcomeOrStop(seen, this.stopFanout, this.isStopping());
          if (outcome !== 'done') return this.fail(res, this.notDurableReply(outcome));
          this.counters.requestsAccepted++;
          return this.send(res, 202, { status: 'duplicate' });
        }
      }
      const writable = ctx.submit([routed]);
      const accepted = writable ? Promise.resolve() : this.closeGate();
      const durable = this.replyWhen === 'durable' ? ctx.whenDurable({ soon: true }) : Promise.resolve();
      durable.catch(() => {});
      if (typeof key === 'string' && key.length > 0) this.remember(key, durable);
      await this.replyWhenAccepted(res, accepted, durable);
    } finally {
      this.counters.requestsInFlight--;
    }
  }

  /**
   * The one place a 202 is sent. `accepted` resolves when the engine can take more records (the
   * record itself was already handed over). In the durable mode `durable` is the checkpoint that
   * covers the record, and a 202 is sent only once it completed: when the engine fails, or the
   * ingress or engine stops before that, the reply is a 503 with Retry-After (the record may
   * still be applied by the final or a later checkpoint; a retry with the same Idempotency-Key
   * is how a client learns the outcome).
   */
  private async replyWhenAccepted(res: http.ServerResponse, accepted: Promise<void>, durable: Promise<void>): Promise<void> {
    await this.untilStopped(accepted);
    if (this.replyWhen === 'durable') {
      const outcome = await outcomeOrStop(durable, this.stopFanout, this.isStopping());
      if (outcome !== 'done') return this.fail(res, this.notDurableReply(outcome));
    }
    this.counters.requestsAccepted++;
    this.send(res, 202, { status: 'accepted' });
  }

  private notDurableReply(outcome: 'failed' | 'stopped'): ErrorReply {
    const why = outcome === 'failed' ? 'the checkpoint covering the message did not complete' : 'the engine stopped';
    return {
      status: 503,
      code: ErrorCode.ENGINE_STOPPED,
      message:
        `http ingress '${this.id}': ${why} before the message was durable; ` +
        'retry it (with the same Idempotency-Key) against the running or restarted engine',
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    };
  }

  private remember(key: string, durable: Promise<void>): void {
    this.idempotency.set(key, durable);
    // A Map iterates in insertion order: the first key is the oldest.
    if (this.idempotency.size > this.idempotencyKeysMax) this.idempotency.delete(this.idempotency.keys().next().value!);
  }

  /** Close the gate until the engine is writable again (one whenWritable for all requests). */
  private closeGate(): Promise<void> {
    if (!this.gate) {
      const gate: Promise<void> = this.ctx!.whenWritable().then(
        () => {
          if (this.gate === gate) this.gate = undefined;
        },
        (err: unknown) => {
          if (this.gate === gate) this.gate = undefined;
          this.ctx!.logger.warn(`http ingress '${this.id}': whenWritable() rejected; reopening`, { error: errorInfo(err) });
        },
      );
      this.gate = gate;
    }
    return this.gate;
  }

  /** Wait while the gate is closed; false if the ingress started stopping meanwhile. */
  private async passGate(): Promise<boolean> {
    while (this.gate && !this.isStopping()) await this.untilStopped(this.gate);
    return !this.isStopping();
  }

  private isStopping(): boolean {
    return this.stopping || this.stopFanout.fired || (this.ctx?.signal.aborted ?? false);
  }

  /** Resolves when `p` settles or the ingress or engine stops. */
  private untilStopped(p: Promise<void>): Promise<void> {
    if (this.isStopping()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.stopFanout.delete(done);
        resolve();
      };
      this.stopFanout.add(done);
      p.then(done, done);
    });
  }

  private stoppingReply(): ErrorReply {
    return {
      status: 503,
      code: ErrorCode.ENGINE_STOPPED,
      message: `http ingress '${this.id}': the engine is stopping; retry against the restarted engine`,
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    };
  }

  private tooLargeReply(what: string): ErrorReply {
    return {
      status: 413,
      code: ErrorCode.PAYLOAD_TOO_LARGE,
      message:
        `http ingress '${this.id}': ${what} exceeds bodyBytesMax (${this.bodyBytesMax} bytes); send a smaller value or ` +
        `raise bodyBytesMax`,
      // The rest of the body is not read, so the connection cannot be reused.
      headers: { Connection: 'close' },
    };
  }

  private fail(res: http.ServerResponse, e: ErrorReply): void {
    if (e.status === 503) this.counters.requestsOverloaded++;
    else if (e.status < 500) this.counters.requestsRejected++;
    this.send(res, e.status, { code: e.code, message: e.message }, e.headers);
  }

  private internalError(res: http.ServerResponse, err: unknown): void {
    this.ctx?.logger.error(`http ingress '${this.id}': request failed`, { error: errorInfo(err) });
    const info = errorInfo(err);
    if (err instanceof StatefnError && !err.retriable && err.code !== ErrorCode.INVARIANT) {
      // The engine refused the record itself (e.g. its validation): the client's input is wrong.
      this.counters.requestsRejected++;
      return this.send(res, 400, { code: info.code, message: info.message });
    }
    this.send(res, 500, { code: info.code, message: `http ingress '${this.id}': ${info.message}` });
  }

  private send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.statusCode = status;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    // While stopping, do not keep connections alive for another request.
    if (this.stopping) res.setHeader('Connection', 'close');
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(text));
    res.end(text);
  }
}
