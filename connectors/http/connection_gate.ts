/**
 * Admission of TCP connections to the HTTP ingress, so that slow or greedy clients cannot lock
 * others out:
 *
 * - at most `connectionsMax` connections, and at most `connectionsPerClientMax` from one remote
 *   address; a connection beyond either gets a minimal `503 Service Unavailable` with Retry-After
 *   and is closed (node's `server.maxConnections` would drop it: the client saw a reset);
 * - when all connections are taken, the one idle longest (no request in progress: a keep-alive
 *   connection between requests, or one still sending its headers, e.g. a slow-loris client) gives
 *   way to the new one, once it has been idle `httpIdleConnectionEvictMs`. A connection in the
 *   middle of a request is never closed for another. So a client that sends its request promptly
 *   gets a connection within about that time even while slow clients hold every slot, and the
 *   header timeout (node's `headersTimeout`) closes the slow ones in any case.
 *
 * The gate sits in front of node's HTTP connection listener: `admit` hands it the connections
 * that may proceed. Rejected connections linger (bounded in number and time) only to deliver the
 * 503 and read what the client still sends: closing a socket with unread input resets it.
 */
import type net from 'node:net';
import { ErrorCode } from '../../shared/errors.js';
import { httpIdleConnectionEvictMs, httpRejectedConnectionLingerMs, httpRetryAfterSeconds } from '../../shared/limits.js';

/** Counters of a {@link ConnectionGate}. */
export interface ConnectionGateStats {
  /** Connections admitted and still open. */
  connectionsOpen: number;
  /** Connections answered 503 because a connection limit was reached. */
  connectionsRejected: number;
  /** Idle connections closed to make room for a new one. */
  connectionsEvicted: number;
}

export class ConnectionGate {
  private open = 0;
  private readonly perClient = new Map<string, number>();
  /** Admitted connections still holding a slot -> their remote address. */
  private readonly admitted = new Map<net.Socket, string>();
  /** Admitted connections without a request in progress -> since when (ms), the longest idle first. */
  private readonly idle = new Map<net.Socket, number>();
  /** Connections answered 503, until they close. */
  private readonly rejecting = new Set<net.Socket>();
  private rejected = 0;
  private evicted = 0;

  constructor(
    private readonly id: string,
    private readonly connectionsMax: number,
    private readonly connectionsPerClientMax: number,
    /** Hand an admitted connection to the HTTP server. */
    private readonly admit: (socket: net.Socket) => void,
  ) {}

  stats(): ConnectionGateStats {
    return { connectionsOpen: this.open, connectionsRejected: this.rejected, connectionsEvicted: this.evicted };
  }

  /** A new TCP connection. */
  onConnection(socket: net.Socket): void {
    const client = socket.remoteAddress ?? '';
    const mine = this.perClient.get(client) ?? 0;
    // A per-client bound as large as the global one binds only when the global one does: say that one.
    if (mine >= this.connectionsPerClientMax && this.connectionsPerClientMax < this.connectionsMax) {
      return this.reject(
        socket,
        `${mine} connections from ${client} are open (connectionsPerClientMax); reuse connections (keep-alive) or retry later`,
      );
    }
    if (this.open >= this.connectionsMax && !this.evictIdle()) {
      return this.reject(socket, `${this.open} connections are open (connectionsMax); retry later or raise connectionsMax`);
    }
    this.open++;
    // Counted again: the connection given way may have been this client's.
    this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
    this.admitted.set(socket, client);
    this.idle.set(socket, performance.now());
    socket.once('close', () => this.release(socket));
    this.admit(socket);
  }

  /** A request arrived on `socket` (its headers are complete): it is not idle until answered. */
  requestStarted(socket: net.Socket): void {
    this.idle.delete(socket);
  }

  /** The reply to the request on `socket` ended; it is idle again if it stays open. */
  requestEnded(socket: net.Socket): void {
    if (socket.destroyed || !this.admitted.has(socket)) return;
    this.idle.delete(socket);
    this.idle.set(socket, performance.now());
  }

  /** Close connections answered 503 that are still lingering (the ingress stops). */
  closeRejected(): void {
    for (const s of this.rejecting) s.destroy();
    this.rejecting.clear();
  }

  /** Close the connection idle longest, if it has been idle long enough; true if one was closed. */
  private evictIdle(): boolean {
    const first = this.idle.entries().next();
    if (first.done === true) return false;
    const [socket, since] = first.value;
    if (performance.now() - since < httpIdleConnectionEvictMs) return false;
    this.evicted++;
    // Its slot is free now, for the new connection (its 'close' comes later and finds it released).
    this.release(socket);
    socket.destroy();
    return true;
  }

  /** Give back the slot of an admitted connection (once: at its close, or when it is evicted). */
  private release(socket: net.Socket): void {
    const client = this.admitted.get(socket);
    if (client === undefined) return;
    this.admitted.delete(socket);
    this.idle.delete(socket);
    this.open--;
    const n = (this.perClient.get(client) ?? 1) - 1;
    if (n > 0) this.perClient.set(client, n);
    else this.perClient.delete(client);
  }

  private reject(socket: net.Socket, why: string): void {
    this.rejected++;
    socket.on('error', () => {});
    // Bound what rejected connections hold: beyond as many as may be open, drop at once.
    if (this.rejecting.size >= this.connectionsMax) {
      socket.destroy();
      return;
    }
    this.rejecting.add(socket);
    const body = JSON.stringify({ code: ErrorCode.OVERLOADED, message: `http ingress '${this.id}': ${why}` });
    socket.end(
      'HTTP/1.1 503 Service Unavailable\r\n' +
        `Retry-After: ${httpRetryAfterSeconds}\r\n` +
        'Connection: close\r\n' +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        '\r\n' +
        body,
    );
    // Read and discard what the client sends meanwhile: a socket closed with unread input is reset.
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), httpRejectedConnectionLingerMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      this.rejecting.delete(socket);
    });
  }
}
