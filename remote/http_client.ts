/**
 * The HTTP side of remote-function calls, one `RemoteHttpClient` per endpoint per worker thread:
 * a keep-alive connection pool (node:http/https agents, `poolSize` sockets), a connect timeout,
 * bounded response bodies, and retries with exponential backoff within the call timeout.
 *
 * A failed attempt is a network error, a timeout, a non-2xx status, a response that is not
 * `application/octet-stream`, or a body over the payload bound. Statuses 400-499 other than 408
 * and 429 are not retried (the function refuses the request; repeating it changes nothing).
 */
import http from 'node:http';
import https from 'node:https';
import { backoffDelayMs } from '../shared/backoff.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { remoteRetryBackoffBaseMs, remoteRetryBackoffMaxMs } from '../shared/limits.js';
import type { EndpointUrl, RemoteEndpoint } from '../api/endpoint.js';

export interface RemoteCallStats {
  calls: number;
  attempts: number;
  retries: number;
  failures: number;
}

/** A remote call that failed for good: every field a log line or a dead letter needs. */
export class RemoteCallError extends StatefnError {
  constructor(
    message: string,
    readonly url: string,
    readonly status: number | undefined,
    readonly attempts: number,
    options: { cause?: unknown; retriable?: boolean } = {},
  ) {
    super(ErrorCode.REMOTE_FAILED, message, options);
  }
}

interface Attempt {
  ok: boolean;
  body?: Uint8Array;
  status?: number;
  error: string;
  retriable: boolean;
}

export class RemoteHttpClient {
  readonly stats: RemoteCallStats = { calls: 0, attempts: 0, retries: 0, failures: 0 };
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private closed = false;
  /** Abort callbacks of the attempts in flight (one listener on `signal` for all of them). */
  private readonly inflight = new Set<() => void>();

  /** `signal` (optional) cuts every call short, e.g. when the worker stops. */
  constructor(
    private readonly endpoint: RemoteEndpoint,
    private readonly signal?: AbortSignal,
  ) {
    const opts = {
      keepAlive: true,
      maxSockets: endpoint.poolSize,
      maxFreeSockets: endpoint.poolSize,
      timeout: endpoint.poolTtlMs,
      scheduling: 'lifo' as const,
    };
    this.httpAgent = new http.Agent(opts);
    this.httpsAgent = new https.Agent(opts);
    signal?.addEventListener(
      'abort',
      () => {
        for (const abort of [...this.inflight]) abort();
      },
      { once: true },
    );
  }

  /**
   * POST `body` to `url` and return the response body; retries with exponential backoff until
   * the endpoint's call timeout. Throws a RemoteCallError naming the URL, the last status or
   * error and the number of attempts. `tally.attempts` (optional) grows by one per HTTP attempt,
   * whether the call then succeeds or fails (a caller that makes several calls for one batch adds
   * them up).
   */
  async call(url: EndpointUrl, body: Uint8Array, tally?: { attempts: number }): Promise<Uint8Array> {
    const signal = this.signal;
    this.stats.calls++;
    const deadline = Date.now() + this.endpoint.callTimeoutMs;
    let last: Attempt | undefined;
    let attempts = 0;
    for (let attempt = 1; ; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed || signal?.aborted) break;
      this.stats.attempts++;
      attempts++;
      if (tally !== undefined) tally.attempts++;
      last = await this.attempt(url, body, left);
      if (last.ok) return last.body!;
      if (!last.retriable) break;
      const backoff = backoffDelayMs({ baseMs: remoteRetryBackoffBaseMs, maxMs: remoteRetryBackoffMaxMs }, attempt - 1);
      if (Date.now() + backoff >= deadline) break;
      this.stats.retries++;
      await new Promise((r) => setTimeout(r, backoff));
    }
    this.stats.failures++;
    const why = last === undefined ? (this.closed ? 'the client was closed' : 'the call timeout passed before an attempt') : last.error;
    const within = last?.retriable === false ? '' : ` within the call timeout (${this.endpoint.callTimeoutMs} ms)`;
    const after = attempts === 1 ? 'after 1 attempt' : `after ${attempts} attempts`;
    throw new RemoteCallError(`remote call to ${url.text} failed ${after}${within}: ${why}`, url.text, last?.status, attempts, {
      retriable: last?.retriable ?? true,
    });
  }

  private attempt(url: EndpointUrl, body: Uint8Array, timeLeftMs: number): Promise<Attempt> {
    const max = this.endpoint.payloadMaxBytes;
    if (body.length > max) {
      return Promise.resolve({
        ok: false,
        error: `the request is ${body.length} bytes, over the endpoint's payload bound ${max}`,
        retriable: false,
      });
    }
    return new Promise((resolve) => {
      let settled = false;
      const done = (a: Attempt): void => {
        if (settled) return;
        settled = true;
        clearTimeout(overall);
        this.inflight.delete(onAbort);
        resolve(a);
      };
      const onAbort = (): void => {
        req.destroy();
        done({ ok: false, error: 'aborted (the worker is stopping)', retriable: false });
      };
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request({
        method: 'POST',
        agent: url.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
        ...(url.socketPath !== undefined ? { socketPath: url.socketPath } : { hostname: url.hostname, port: url.port }),
        path: url.path,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length },
      });
      this.inflight.add(onAbort);
      // The whole attempt is bounded by what is left of the call timeout.
      const overall = setTimeout(() => {
        req.destroy();
        done({ ok: false, error: `no response within ${timeLeftMs} ms (the rest of the call timeout)`, retriable: true });
      }, timeLeftMs);
      req.on('socket', (socket) => {
        if (socket.connecting) {
          const t = setTimeout(() => {
            req.destroy();
            done({ ok: false, error: `connect timeout (${this.endpoint.connectTimeoutMs} ms)`, retriable: true });
          }, this.endpoint.connectTimeoutMs);
          socket.once('connect', () => clearTimeout(t));
          socket.once('close', () => clearTimeout(t));
        }
      });
      req.on('error', (e) => done({ ok: false, error: `${(e as NodeJS.ErrnoException).code ?? 'error'}: ${e.message}`, retriable: true }));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > max) {
            res.destroy();
            done({ ok: false, status, error: `the response is over the endpoint's payload bound (${max} bytes)`, retriable: false });
            return;
          }
          chunks.push(c);
        });
        res.on('error', (e) => done({ ok: false, status, error: `reading the response: ${e.message}`, retriable: true }));
        res.on('end', () => {
          if (status < 200 || status > 299) {
            const text = Buffer.concat(chunks).subarray(0, 300).toString('utf8').replace(/\s+/g, ' ').trim();
            const retriable = status >= 500 || status === 408 || status === 429;
            done({ ok: false, status, error: `HTTP ${status}${text ? `: ${text}` : ''}`, retriable });
            return;
          }
          const type = String(res.headers['content-type'] ?? '');
          if (!type.toLowerCase().startsWith('application/octet-stream')) {
            done({
              ok: false,
              status,
              error:
                `HTTP ${status} with content type '${type}', expected application/octet-stream ` +
                '(is the URL a StateFun request-reply endpoint?)',
              retriable: true,
            });
            return;
          }
          const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          done({ ok: true, status, body: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), error: '', retriable: false });
        });
      });
      req.end(body);
    });
  }

  close(): void {
    this.closed = true;
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
