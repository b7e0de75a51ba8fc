/**
 * Line-oriented egresses: `FileEgress` appends JSON lines to a file, `StdoutEgress` prints them
 * (or `egressId: value` text) to standard output.
 *
 * Line format (json-lines), one record per line:
 *   {"egress":"<egress id>","typename":"<message typename>","value":<message.toJSON()>}
 *
 * Both keep a bounded amount of data that was accepted but not yet handed to the OS: `write`
 * resolves at once while that amount is under its bound, and otherwise only once the data has
 * been handed to the OS, so a slow disk or a slow reader of stdout slows the engine's egress
 * instead of growing memory.
 */
import { mkdir, open, readFile, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import type { Writable } from 'node:stream';
import type { EgressConnector, EgressContext, EgressRecord, Logger } from '../../api/connector_api.js';
import { ErrorCode, StatefnError, errorInfo } from '../../shared/errors.js';
import { backoffDelayMs, type BackoffPolicy } from '../../shared/backoff.js';
import { fileWriteRetryBaseMs, fileWriteRetryMaxMs } from '../../shared/limits.js';

/** Options of a {@link FileEgress}. */
export interface FileEgressOptions {
  /** The egress id, `namespace/name`. */
  id: string;
  /** File to append to; its parent directories are created. */
  path: string;
  /** Line format. Only `json-lines` for now (the default). */
  format?: 'json-lines';
  /**
   * Bytes accepted by `write` but not yet handed to the OS above which `write` waits until its
   * data has been written. Default 1 MiB.
   */
  bufferBytesMax?: number;
  /**
   * Attempts of one OS write (e.g. while the disk is full) before the egress fails for good;
   * between attempts it waits 50 ms, doubling up to 2 s. Default 8 (about 5 s in all).
   */
  writeAttemptsMax?: number;
}

/** Options of a {@link StdoutEgress}. */
export interface StdoutEgressOptions {
  /** The egress id, `namespace/name`. */
  id: string;
  /** `json-lines` (default): one JSON object per record; `text`: `egressId: value` per record. */
  format?: 'json-lines' | 'text';
  /** Where to write; default `process.stdout`. The egress never closes it. */
  stream?: Writable;
}

const MiB = 1024 * 1024;
const BUFFER_BYTES_MAX_DEFAULT = 1 * MiB;
const WRITE_ATTEMPTS_MAX_DEFAULT = 8;
/**
 * Delays between attempts of a failing write: 50 ms doubling to 2 s, without jitter (one writer
 * per file, so there is no herd to spread).
 */
const WRITE_RETRY_BACKOFF: BackoffPolicy = { baseMs: fileWriteRetryBaseMs, maxMs: fileWriteRetryMaxMs, jitter: 0 };

/** The json-lines rendering of one egress record (without the newline). */
export function formatJsonLine(record: EgressRecord): string {
  return JSON.stringify({ egress: record.egressId, typename: record.message.typename, value: record.message.toJSON() });
}

/** The text rendering of one egress record: `egressId: value` (strings as they are, else JSON). */
export function formatTextLine(record: EgressRecord): string {
  const value = record.message.toJSON();
  return `${record.egressId}: ${typeof value === 'string' ? value : JSON.stringify(value)}`;
}

function render(records: readonly EgressRecord[], line: (r: EgressRecord) => string): string {
  let text = '';
  for (const r of records) text += line(r) + '\n';
  return text;
}

function checkId(kind: string, id: unknown): string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `${kind}: options.id: expected an egress id 'namespace/name', got ${JSON.stringify(id)}`,
    );
  }
  return id;
}

const consoleLogger: Logger = {
  info: (msg, fields) => console.info(msg, fields ?? ''),
  warn: (msg, fields) => console.warn(msg, fields ?? ''),
  error: (msg, fields) => console.error(msg, fields ?? ''),
};

interface Waiter {
  /** Resolve once this many bytes (counted from start) have been handed to the OS. */
  untilBytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class FileEgress implements EgressConnector {
  readonly id: string;
  /** The absolute path written to. */
  readonly path: string;
  private readonly bufferBytesMax: number;
  private readonly writeAttemptsMax: number;

  private fh: FileHandle | undefined;
  private logger: Logger = consoleLogger;
  private state: 'new' | 'started' | 'stopped' = 'new';
  /** Accepted data not yet taken by the writer, in order. */
  private pending: Buffer[] = [];
  /** Bytes accepted and bytes handed to the OS since start; their difference is the backlog. */
  private bytesAccepted = 0;
  private bytesWritten = 0;
  private writer: Promise<void> | undefined;
  /** Set when the writer gave up: every later call fails with it. */
  private failure: StatefnError | undefined;
  private waiters: Waiter[] = [];

  constructor(options: FileEgressOptions) {
    this.id = checkId('file egress', options?.id);
    const where = `file egress '${this.id}'`;
    if (typeof options.path !== 'string' || options.path.length === 0) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}: options.path: expected a file path, got ${JSON.stringify(options.path)}`);
    }
    if (options.format !== undefined && options.format !== 'json-lines') {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `${where}: options.format: expected 'json-lines', got ${JSON.stringify(options.format)}`,
      );
    }
    const bufferBytesMax = options.bufferBytesMax ?? BUFFER_BYTES_MAX_DEFAULT;
    if (!(Number.isInteger(bufferBytesMax) && bufferBytesMax >= 0 && bufferBytesMax <= 1024 * MiB)) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `${where}: options.bufferBytesMax: expected an integer in [0, ${1024 * MiB}], got ${JSON.stringify(bufferBytesMax)}`,
      );
    }
    const attempts = options.writeAttemptsMax ?? WRITE_ATTEMPTS_MAX_DEFAULT;
    if (!(Number.isInteger(attempts) && attempts >= 1 && attempts <= 100)) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `${where}: options.writeAttemptsMax: expected an integer in [1, 100], got ${JSON.stringify(attempts)}`,
      );
    }
    this.path = resolvePath(options.path);
    this.bufferBytesMax = bufferBytesMax;
    this.writeAttemptsMax = attempts;
  }

  async start(ctx?: EgressContext): Promise<void> {
    if (this.state !== 'new') {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `file egress '${this.id}': started twice; create one FileEgress per engine`);
    }
    if (ctx) this.logger = ctx.logger;
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await this.recoverEpoch();
      this.fh = await open(this.path, 'a');
    } catch (e) {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `file egress '${this.id}': cannot open ${this.path} for appending ` +
          `(${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path and its permissions`,
        { cause: e },
      );
    }
    this.state = 'started';
  }

  /**
   * Accept records, in order. Resolves at once while the unwritten backlog is within
   * bufferBytesMax, else once these records have been handed to the OS. Once accepted, records
   * are never dropped short of the egress failing for good (then every call rejects).
   */
  write(records: readonly EgressRecord[]): void | Promise<void> {
    this.checkUsable('write');
    if (records.length === 0) return;
    const bytes = Buffer.from(render(records, formatJsonLine), 'utf8');
    this.pending.push(bytes);
    this.bytesAccepted += bytes.length;
    this.startWriter();
    if (this.bytesAccepted - this.bytesWritten > this.bufferBytesMax) return this.whenWritten(this.bytesAccepted);
  }

  /**
   * The epoch marker beside the file (`<path>.statefn-epoch`: the last committed epoch and the
   * file's size then). Bytes after that size are a partly written epoch from before a crash:
   * `discardUncommitted` cuts them when the engine is about to write that epoch again.
   */
  private async recoverEpoch(): Promise<void> {
    const marker = `${this.path}.statefn-epoch`;
    const size = await stat(this.path).then(
      (s) => s.size,
      () => 0,
    );
    let m: { epoch: number; bytes: number } | undefined;
    try {
      m = JSON.parse(await readFile(marker, 'utf8')) as { epoch: number; bytes: number };
    } catch {
      m = undefined;
    }
    if (m === undefined || !Number.isInteger(m.epoch) || !Number.isInteger(m.bytes)) {
      // First use of this file: what is there already is not ours to cut.
      this.committed = 0;
      this.baseBytes = size;
      this.markerBytes = size;
      await this.writeMarker(0, size);
      return;
    }
    this.committed = m.epoch;
    this.markerBytes = m.bytes;
    this.baseBytes = size;
  }

  private markerBytes = 0;

  /** Cut what was written after the last committed epoch (before any write of this run). */
  async discardUncommitted(): Promise<void> {
    const size = this.baseBytes + this.bytesWritten;
    if (this.bytesAccepted > 0 || size <= this.markerBytes) return;
    this.logger.warn(
      `file egress '${this.id}': cutting ${size - this.markerBytes} bytes of ${this.path} written after ` +
        `epoch ${this.committed} (they are written again)`,
    );
    await this.fh!.truncate(this.markerBytes);
    this.baseBytes = this.markerBytes;
  }

  private committed = 0;
  private baseBytes = 0;

  committedEpoch(): number {
    return this.committed;
  }

  async commitEpoch(epoch: number): Promise<void> {
    await this.flush();
    this.markerBytes = this.baseBytes + this.bytesWritten;
    await this.writeMarker(epoch, this.markerBytes);
    this.committed = epoch;
  }

  private async writeMarker(epoch: number, bytes: number): Promise<void> {
    const marker = `${this.path}.statefn-epoch`;
    const fh = await open(`${marker}.tmp`, 'w');
    try {
      await fh.writeFile(JSON.stringify({ epoch, bytes }));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(`${marker}.tmp`, marker);
  }

  /** Hand everything accepted so far to the OS and `fdatasync` it. */
  async flush(): Promise<void> {
    this.checkUsable('flush');
    await this.whenWritten(this.bytesAccepted);
    try {
      await this.fh!.datasync();
    } catch (e) {
      throw new StatefnError(
        ErrorCode.EGRESS_FAILED,
        `file egress '${this.id}': fdatasync of ${this.path} failed ` +
          `(${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the disk`,
        { cause: e, retriable: true },
      );
    }
  }

  /** Flush and close the file. */
  async stop(): Promise<void> {
    if (this.state !== 'started') {
      this.state = 'stopped';
      return;
    }
    try {
      if (!this.failure) await this.flush();
    } finally {
      this.state = 'stopped';
      const fh = this.fh;
      this.fh = undefined;
      await this.writer?.catch(() => {});
      await fh?.close();
    }
  }

  private checkUsable(op: string): void {
    if (this.failure) throw this.failure;
    if (this.state !== 'started') {
      throw new StatefnError(
        ErrorCode.EGRESS_FAILED,
        `file egress '${this.id}': ${op}() ${this.state === 'new' ? 'before start(); call start() first' : 'after stop()'}`,
      );
    }
  }

  private whenWritten(untilBytes: number): Promise<void> {
    if (this.bytesWritten >= untilBytes) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ untilBytes, resolve, reject }));
  }

  private startWriter(): void {
    if (this.writer || this.failure) return;
    this.writer = this.drain().finally(() => {
      this.writer = undefined;
      // Data accepted while the last write finished: go on.
      if (this.pending.length > 0 && !this.failure && this.fh) this.startWriter();
    });
  }

  /** The only writer: one OS write at a time, appending, retrying a failing write with backoff. */
  private async drain(): Promise<void> {
    const fh = this.fh!;
    while (this.pending.length > 0) {
      const chunk = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      this.pending = [];
      let offset = 0;
      let attempt = 0;
      while (offset < chunk.length) {
        try {
          // Opened with 'a' (O_APPEND): every write lands at the end of the file.
          const { bytesWritten } = await fh.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
          this.bytesWritten += bytesWritten;
          attempt = 0;
          this.wakeWaiters();
        } catch (e) {
          attempt++;
          const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
          if (attempt >= this.writeAttemptsMax) {
            this.failure = new StatefnError(
              ErrorCode.EGRESS_FAILED,
              `file egress '${this.id}': writing ${this.path} failed ${attempt} times (${code}); ${chunk.length - offset} ` +
                `bytes were not written. Free disk space or fix permissions, then restart from the last checkpoint`,
              { cause: e },
            );
            this.logger.error(this.failure.message, { error: errorInfo(e) });
            for (const w of this.waiters.splice(0)) w.reject(this.failure);
            return;
          }
          const backoffMs = backoffDelayMs(WRITE_RETRY_BACKOFF, attempt - 1);
          this.logger.warn(`file egress '${this.id}': write to ${this.path} failed (${code}); retrying in ${backoffMs} ms`, { attempt });
          await new Promise((r) => setTimeout(r, backoffMs));
        }
      }
    }
  }

  private wakeWaiters(): void {
    // Waiters are in increasing order of untilBytes (bytesAccepted only grows).
    while (this.waiters.length > 0 && this.waiters[0]!.untilBytes <= this.bytesWritten) this.waiters.shift()!.resolve();
  }
}

export class StdoutEgress implements EgressConnector {
  readonly id: string;
  private readonly stream: Writable;
  private readonly line: (r: EgressRecord) => string;

  constructor(options: StdoutEgressOptions) {
    this.id = checkId('stdout egress', options?.id);
    const format = options.format ?? 'json-lines';
    if (format !== 'json-lines' && format !== 'text') {
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `stdout egress '${this.id}': options.format: expected 'json-lines' or 'text', got ${JSON.stringify(format)}`,
      );
    }
    this.line = format === 'text' ? formatTextLine : formatJsonLine;
    this.stream = options.stream ?? process.stdout;
  }

  /** Write the records; when the stream's buffer is over its high-water mark, resolve on 'drain'. */
  write(records: readonly EgressRecord[]): void | Promise<void> {
    if (records.length === 0) return;
    if (this.stream.destroyed || this.stream.writableEnded) {
      throw new StatefnError(ErrorCode.EGRESS_FAILED, `stdout egress '${this.id}': the output stream is closed; records cannot be printed`);
    }
    if (!this.stream.write(render(records, this.line))) return this.drained();
  }

  /** Resolves once the stream has taken everything written (no 'drain' pending). */
  flush(): void | Promise<void> {
    if (this.stream.writableNeedDrain) return this.drained();
  }

  private drained(): Promise<void> {
    const stream = this.stream;
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        stream.off('drain', onDrain);
        stream.off('error', onError);
        stream.off('close', onClose);
      };
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(
          new StatefnError(ErrorCode.EGRESS_FAILED, `stdout egress '${this.id}': the output stream failed (${err.message})`, {
            cause: err,
            retriable: false,
          }),
        );
      };
      const onClose = (): void => {
        cleanup();
        reject(new StatefnError(ErrorCode.EGRESS_FAILED, `stdout egress '${this.id}': the output stream closed before it drained`));
      };
      stream.on('drain', onDrain);
      stream.on('error', onError);
      stream.on('close', onClose);
    });
  }
}
