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
 *   202 {"status":"accepted"}    handed to the engine (durable mode: its checkpoint completed)
 *   202 {"status":"duplicate"}   the Idempotency-Key was seen with this same request: nothing is
 *                                submitted; answered once the first request's checkpoint completed
 *   400 bad path, type name, body (a built-in type that does not decode) or Idempotency-Key
 *   404 no function of that type       405 wrong method
 *   408 headers not complete within headersTimeoutMs, or the request within requestTimeoutMs
 *   413 body larger than bodyBytesMax, or the message would not fit in a frame (frameBytesMax)
 *   415 missing or non-`application/vnd.` content type
 *   422 the Idempotency-Key was first used with another request (target, message type or body)
 *   503 + Retry-After           requestsInFlightMax reached, the engine is stopping, or it stopped
 *                               or failed before the message was durable; also, before any
 *                               request is read, a connection beyond connectionsMax or
 *                               connectionsPerClientMax (then closed)
 *   GET /healthz -> 200 {"status":"ok"}
 * Every error body is `{"code": <StatefnError code>, "message": <what is wrong and how to fix it>}`.
 *
 * Idempotency keys (header `Idempotency-Key`, at most 256 characters) are kept with the
 * checkpoint (idempotency_keys.ts): a key is in the checkpoint exactly when its message is, so a
 * retry after any restart answers `duplicate` when the first request's message survived, and is
 * applied when it did not. Kept: the newest idempotencyKeysMax keys, each for idempotencyKeyAgeMs.
 *
 * Slow clients (connection_gate.ts): headers must arrive within headersTimeoutMs; connections
 * beyond the limits get a 503 response, not a reset; when all are taken, a connection idle for a
 * while gives way to a new one.
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
import type { AddressInfo, Socket } from 'node:net';
import type { IngressConnector, IngressContext, RoutedMessage } from '../../api/connector_api.js';
import { ErrorCode, StatefnError, errorInfo } from '../../shared/errors.js';
import { systemClock, type Clock } from '../../shared/clock.js';
import { LIMIT_SPECS, httpRetryAfterSeconds, messageEnvelopeBytesMax } from '../../shared/limits.js';
import { Message } from '../../api/message.js';
import { ConnectionGate } from './connection_gate.js';
import { IdempotencyKeys, keyHash, requestHash, type IdempotencyPosition } from './idempotency_keys.js';
import {
  ABORTED,
  type ErrorReply,
  outcomeOrStop,
  STOPPED,
  StopFanout,
  TOO_LARGE,
  decodePayload,
  messageFrameBytes,
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
  /**
   * Largest request body in bytes; larger bodies get 413 without being read further. Default:
   * what fits in a frame, the engine's `limits.frameBytesMax` minus 8 KiB for the message's
   * address and type names (248 KiB with the default frames). A larger value fails the engine's
   * start: raise `limits.frameBytesMax` with it.
   */
  bodyBytesMax?: number;
  /** Requests handled at once (from headers received to reply sent); beyond it, 503. Default 256. */
  requestsInFlightMax?: number;
  /**
   * Open TCP connections at most. A connection beyond it gets a 503 response with Retry-After
   * and is closed, unless a connection idle for a second (no request in progress) gives way to it.
   * Default 1024.
   */
  connectionsMax?: number;
  /**
   * Open TCP connections from one remote address at most; beyond it, 503 and closed. Default:
   * connectionsMax (no bound of its own). Lower it when clients connect directly (not all
   * through one proxy), so one client cannot take every connection.
   */
  connectionsPerClientMax?: number;
  /**
   * Time in ms a client has to send a request's headers (from the connection, or the end of the
   * previous reply); then 408 and the connection is closed. Short, so that slow-loris clients
   * give their connection back soon. Default 10 s.
   */
  headersTimeoutMs?: number;
  /** Time in ms a client has to send a whole request (headers and body); then 408. Default 30 s. */
  requestTimeoutMs?: number;
  /**
   * When to answer 202: `durable` (default) once the checkpoint covering the message is complete,
   * so an acknowledged message survives any crash (a waiting request starts that checkpoint within
   * the engine's `durableWaitMs`: group commit); `accepted` as soon as the engine took it.
   */
  replyWhen?: 'durable' | 'accepted';
  /**
   * Idempotency keys remembered (header `Idempotency-Key`), the newest kept: a request whose key
   * was seen answers 202 `duplicate` without submitting again (422 if it is not the same request).
   * Kept with the checkpoint, so across restarts; each costs about 170 bytes of memory and 21.3
   * bytes in every checkpoint record and manifest (a full 100,000: 2.1 MB per checkpoint). 0 turns
   * idempotency off (the header is ignored). Default 100,000.
   */
  idempotencyKeysMax?: number;
  /** Time in ms a key is remembered after its first request (kept in whole seconds, rounded up). Default 24 h. */
  idempotencyKeyAgeMs?: number;
  /** Where the time of idempotency keys comes from (tests: a ManualClock). Default the system clock. */
  clock?: Clock;
}

/** Counters of an {@link HttpIngress}, for metrics. */
export interface HttpIngressStats {
  /** Requests answered 202 (duplicates included). */
  requestsAccepted: number;
  /** Requests answered 202 `duplicate`: their Idempotency-Key was seen, nothing submitted. */
  requestsDuplicate: number;
  /** Requests answered 4xx. */
  requestsRejected: number;
  /** Requests answered 503 (in-flight cap reached or stopping). */
  requestsOverloaded: number;
  /** Requests being handled now. */
  requestsInFlight: number;
  /** Idempotency keys remembered now. */
  idempotencyKeys: number;
  /** Connections open now. */
  connectionsOpen: number;
  /** Connections answered 503 because connectionsMax or connectionsPerClientMax was reached. */
  connectionsRejected: number;
  /** Idle connections closed to make room for new ones. */
  connectionsEvicted: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
/** Idempotency-Key header length at most (characters). */
const IDEMPOTENCY_KEY_LENGTH_MAX = 256;
const DAY_MS = 86_400_000;
const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  requestsInFlightMax: 256,
  connectionsMax: 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idempotencyKeysMax: 100_000,
  idempotencyKeyAgeMs: DAY_MS,
} as const;
/** Longest idempotencyKeyAgeMs: a key serves a client's retries; a longer age is likely a unit mistake. */
const IDEMPOTENCY_KEY_AGE_MS_MAX = 30 * DAY_MS;
const RETRY_AFTER_SECONDS = httpRetryAfterSeconds;

/** The options that are integers. */
type IntOption = {
  [K in keyof HttpIngressOptions]-?: NonNullable<HttpIngressOptions[K]> extends number ? K : never;
}[keyof HttpIngressOptions];

function intOption(id: string, options: HttpIngressOptions, key: IntOption, min: number, max: number, fallback: number): number {
  const v = options[key] ?? fallback;
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
  /** bodyBytesMax as configured; undefined: what fits in a frame (known at start). */
  private readonly bodyBytesMaxOption: number | undefined;
  /** The body limit in force, set at start from bodyBytesMax and the engine's frameBytesMax. */
  private bodyBytesMax = 0;
  private frameBytesMax = LIMIT_SPECS.frameBytesMax.default;
  private readonly requestsInFlightMax: number;
  private readonly connectionsMax: number;
  private readonly connectionsPerClientMax: number;
  private readonly headersTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly replyWhen: 'durable' | 'accepted';
  private readonly clock: Clock;
  /** Idempotency keys, kept with the checkpoint through position()/seek(). */
  private readonly keys: IdempotencyKeys;
  /** Key hash -> the durability of its first request, while that is pending. */
  private readonly pendingKeys = new Map<string, Promise<void>>();
  /** Admission of connections (slow and greedy clients), from start. */
  private connections: ConnectionGate | undefined;

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
  private readonly counters = {
    requestsAccepted: 0,
    requestsDuplicate: 0,
    requestsRejected: 0,
    requestsOverloaded: 0,
    requestsInFlight: 0,
  };

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
    this.port = intOption(id, options, 'port', 0, 65535, DEFAULTS.port);
    this.bodyBytesMaxOption = options.bodyBytesMax === undefined ? undefined : intOption(id, options, 'bodyBytesMax', 0, 1024 * MiB, 0);
    this.requestsInFlightMax = intOption(id, options, 'requestsInFlightMax', 1, 1 << 20, DEFAULTS.requestsInFlightMax);
    this.connectionsMax = intOption(id, options, 'connectionsMax', 1, 1 << 20, DEFAULTS.connectionsMax);
    this.connectionsPerClientMax = intOption(id, options, 'connectionsPerClientMax', 1, 1 << 20, this.connectionsMax);
    this.headersTimeoutMs = intOption(id, options, 'headersTimeoutMs', 1, 3_600_000, DEFAULTS.headersTimeoutMs);
    this.requestTimeoutMs = intOption(id, options, 'requestTimeoutMs', 1, 3_600_000, DEFAULTS.requestTimeoutMs);
    const keysMax = intOption(id, options, 'idempotencyKeysMax', 0, 10_000_000, DEFAULTS.idempotencyKeysMax);
    const keyAgeMs = intOption(id, options, 'idempotencyKeyAgeMs', 1000, IDEMPOTENCY_KEY_AGE_MS_MAX, DEFAULTS.idempotencyKeyAgeMs);
    this.keys = new IdempotencyKeys(keysMax, keyAgeMs);
    const clock = options.clock ?? systemClock;
    if (typeof clock?.now !== 'function') {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `http ingress '${id}': options.clock: expected a Clock ({ now(): number })`);
    }
    this.clock = clock;
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
    const connections = this.connections?.stats() ?? { connectionsOpen: 0, connectionsRejected: 0, connectionsEvicted: 0 };
    return { ...this.counters, idempotencyKeys: this.keys.size, ...connections };
  }

  /** The largest body accepted (bodyBytesMax, or what fits in a frame); available once start() resolved. */
  bodyLimit(): number {
    if (!this.bound) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `http ingress '${this.id}': bodyLimit() called before start() resolved; await start() first`,
      );
    }
    return this.bodyBytesMax;
  }

  /** The idempotency keys remembered, recorded with each checkpoint (see idempotency_keys.ts). */
  position(): IdempotencyPosition {
    return this.keys.position();
  }

  /** Continue with the idempotency keys of the checkpoint the engine recovered; before start(). */
  seek(position: unknown): void {
    this.keys.seek(position, `http ingress '${this.id}'`);
  }

  /**
   * The body limit in force, from bodyBytesMax and the engine's frameBytesMax: a body the engine
   * could not carry is refused with 413 before it is acknowledged, never dead-lettered after.
   */
  private resolveBodyLimit(ctx: IngressContext<RoutedMessage>): void {
    const frameBytesMax = ctx.limits?.frameBytesMax ?? LIMIT_SPECS.frameBytesMax.default;
    this.frameBytesMax = frameBytesMax;
    const fits = frameBytesMax - messageEnvelopeBytesMax;
    if (this.bodyBytesMaxOption === undefined) {
      // Tiny frames: half of one; the exact check per request still holds the rest.
      this.bodyBytesMax = Math.max(fits, Math.floor(frameBytesMax / 2));
      return;
    }
    if (this.bodyBytesMaxOption > fits) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `http ingress '${this.id}': bodyBytesMax (${this.bodyBytesMaxOption} bytes) cannot fit in a frame: ` +
          `limits.frameBytesMax (${frameBytesMax} bytes) minus ${messageEnvelopeBytesMax} bytes kept for the message's ` +
          `address and type names leaves ${Math.max(0, fits)}; lower bodyBytesMax to at most ${Math.max(0, fits)} (or leave it ` +
          `unset: it follows frameBytesMax), or raise limits.frameBytesMax to at least ` +
          `${this.bodyBytesMaxOption + messageEnvelopeBytesMax} (limits.ringBytes at least twice that)`,
      );
    }
    this.bodyBytesMax = this.bodyBytesMaxOption;
  }

  /** Listen; resolves once the server accepts connections. */
  async start(ctx: IngressContext<RoutedMessage>): Promise<void> {
    if (this.server) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `http ingress '${this.id}': started twice; create one HttpIngress per engine`);
    }
    this.resolveBodyLimit(ctx);
    this.ctx = ctx;
    if (ctx.signal.aborted) this.fireStop();
    else ctx.signal.addEventListener('abort', this.fireStop, { once: true });
    // Node requires headersTimeout <= requestTimeout.
    const headersTimeout = Math.min(this.headersTimeoutMs, this.requestTimeoutMs);
    const server = http.createServer({
      requestTimeout: this.requestTimeoutMs,
      headersTimeout,
      // Node checks the two timeouts above on this interval (30 s by default), which would
      // stretch a short timeout; check often enough to honour them within ~25%.
      connectionsCheckingInterval: Math.max(10, Math.min(30_000, Math.floor(headersTimeout / 4))),
    });
    // The gate goes in front of node's own connection listener (it parses HTTP on the socket):
    // node's maxConnections would drop a connection beyond the limit, where the gate answers 503.
    const nodeListeners = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    const gate = new ConnectionGate(this.id, this.connectionsMax, this.connectionsPerClientMax, (socket) => {
      for (const l of nodeListeners) l.call(server, socket);
    });
    server.on('connection', (socket: Socket) => gate.onConnection(socket));
    this.connections = gate;
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const socket = req.socket;
      gate.requestStarted(socket);
      res.once('close', () => gate.requestEnded(socket));
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
    this.connections?.closeRejected();
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
    const key = this.idempotencyKey(req);
    if (typeof key === 'object') return this.fail(res, key);
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
      // This message's own bound too: a decoded string may take more bytes than its wire form.
      const frameBytes = messageFrameBytes(to, typename, decoded.payload);
      if (frameBytes > this.frameBytesMax) return this.fail(res, this.overFrameReply(body.length, frameBytes));
      const routed: RoutedMessage = { to, message: new Message(typename, decoded.payload) };
      const keyed = key === undefined ? undefined : { hash: keyHash(key), request: requestHash(to.typename, to.id, typename, body) };
      // The gate may have closed again while the body arrived; wait so that a burst released
      // by whenWritable does not all land at once.
      if (!(await this.passGate())) return this.fail(res, this.stoppingReply());
      // Checked synchronously right before submit: once stop() has been called, no submit.
      if (this.isStopping()) return this.fail(res, this.stoppingReply());
      const now = this.clock.now();
      if (keyed !== undefined) {
        const seen = this.keys.lookup(keyed.hash, now);
        if (seen !== undefined) {
          if (seen !== keyed.request) return this.fail(res, this.keyReusedReply(key!));
          // The same request again: answer as the first one does, without a second submit.
          // While the first request's checkpoint is pending, wait for it: never a 202 before.
          const first = this.pendingKeys.get(keyed.hash);
          if (first !== undefined) {
            const outcome = await outcomeOrStop(first, this.stopFanout, this.isStopping());
            if (outcome !== 'done') return this.fail(res, this.notDurableReply(outcome));
          }
          this.counters.requestsAccepted++;
          this.counters.requestsDuplicate++;
          return this.send(res, 202, { status: 'duplicate' });
        }
      }
      const writable = ctx.submit([routed]);
      // In the same synchronous step as the submit: no checkpoint barrier (which takes the
      // position) can fall between the message and its key, so a checkpoint has both or neither.
      if (keyed !== undefined) this.keys.add(keyed.hash, keyed.request, now);
      const accepted = writable ? Promise.resolve() : this.closeGate();
      const durable = this.replyWhen === 'durable' ? ctx.whenDurable({ soon: true }) : Promise.resolve();
      durable.catch(() => {});
      if (keyed !== undefined) this.pendUntilDurable(keyed.hash, durable);
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

  /** The request's Idempotency-Key: undefined when absent (or idempotency is off), a 400 when invalid. */
  private idempotencyKey(req: http.IncomingMessage): string | undefined | ErrorReply {
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || key.length === 0 || !this.keys.enabled) return undefined;
    if (key.length > IDEMPOTENCY_KEY_LENGTH_MAX) {
      return {
        status: 400,
        code: ErrorCode.REQUEST_INVALID,
        message: `Idempotency-Key: at most ${IDEMPOTENCY_KEY_LENGTH_MAX} characters, got ${key.length}; send a shorter key (e.g. a UUID)`,
      };
    }
    return key;
  }

  /** Duplicates of a key wait on this until its first request's checkpoint completed (bounded by requests in flight). */
  private pendUntilDurable(hash: string, durable: Promise<void>): void {
    this.pendingKeys.set(hash, durable);
    const settled = (): void => {
      if (this.pendingKeys.get(hash) === durable) this.pendingKeys.delete(hash);
    };
    durable.then(settled, settled);
  }

  private keyReusedReply(key: string): ErrorReply {
    return {
      status: 422,
      code: ErrorCode.IDEMPOTENCY_KEY_REUSED,
      message:
        `http ingress '${this.id}': Idempotency-Key '${key}' was first used with another request (another target address, ` +
        `message type or body); nothing was submitted. Send a new key with a new request, or repeat the first request exactly`,
    };
  }

  private overFrameReply(bodyBytes: number, frameBytes: number): ErrorReply {
    return {
      status: 413,
      code: ErrorCode.PAYLOAD_TOO_LARGE,
      message:
        `http ingress '${this.id}': the message (a body of ${bodyBytes} bytes with its address and type names) takes ` +
        `${frameBytes} bytes in a frame, over limits.frameBytesMax (${this.frameBytesMax}); send a smaller value or raise ` +
        `limits.frameBytesMax`,
    };
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
        `raise bodyBytesMax (and limits.frameBytesMax with it: a body must fit in a frame)`,
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
