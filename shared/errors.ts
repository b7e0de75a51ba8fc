/**
 * One error hierarchy for statefn. Conditions of the world (bad input, bad config, a peer that
 * fails) are `StatefnError`s with a stable `code`; bugs in statefn itself are `InvariantError`s
 * raised by `assert`. Anything thrown across a boundary is normalised with `toStatefnError`.
 */

/** Stable error codes. Never rename one: users match on them. */
export const ErrorCode = {
  /** A configuration value or file is invalid. Terminal until the config is fixed. */
  CONFIG_INVALID: 'STATEFN_CONFIG_INVALID',
  /** A module.yaml document has a kind statefn does not support (yet). */
  MODULE_KIND_UNSUPPORTED: 'STATEFN_MODULE_KIND_UNSUPPORTED',
  /** A message was addressed to a function type nobody registered. */
  UNKNOWN_FUNCTION_TYPE: 'STATEFN_UNKNOWN_FUNCTION_TYPE',
  /** An egress id nobody registered. */
  UNKNOWN_EGRESS: 'STATEFN_UNKNOWN_EGRESS',
  /** An address or type name is malformed. */
  ADDRESS_INVALID: 'STATEFN_ADDRESS_INVALID',
  /** A typed value could not be (de)serialized or has the wrong type. */
  TYPE_MISMATCH: 'STATEFN_TYPE_MISMATCH',
  /** A message or frame larger than the configured bound. */
  PAYLOAD_TOO_LARGE: 'STATEFN_PAYLOAD_TOO_LARGE',
  /** A frame on a ring could not be decoded. */
  FRAME_MALFORMED: 'STATEFN_FRAME_MALFORMED',
  /** A user handler threw or rejected. */
  HANDLER_FAILED: 'STATEFN_HANDLER_FAILED',
  /** State declared by a function does not match what is stored. */
  STATE_INVALID: 'STATEFN_STATE_INVALID',
  /** A delayed-message cancellation token is already in use by a pending message. */
  TOKEN_IN_USE: 'STATEFN_TOKEN_IN_USE',
  /** An ingress record could not be routed or decoded. */
  INGRESS_RECORD_INVALID: 'STATEFN_INGRESS_RECORD_INVALID',
  /** An egress connector failed to write. Retriable. */
  EGRESS_FAILED: 'STATEFN_EGRESS_FAILED',
  /** A worker thread died. */
  WORKER_DIED: 'STATEFN_WORKER_DIED',
  /** The engine is stopping or stopped. */
  ENGINE_STOPPED: 'STATEFN_ENGINE_STOPPED',
  /** The state directory is locked by another running engine, or its layout is unusable. */
  STATE_DIR_INVALID: 'STATEFN_STATE_DIR_INVALID',
  /** The state directory or a local snapshot directory is on a read-only file system (EROFS). */
  STORAGE_READ_ONLY: 'STATEFN_STORAGE_READ_ONLY',
  /** The state directory or a local snapshot directory may not be written by this process (EACCES, EPERM). */
  STORAGE_PERMISSION_DENIED: 'STATEFN_STORAGE_PERMISSION_DENIED',
  /** The file system of the state directory or a local snapshot directory is full (ENOSPC, EDQUOT). */
  STORAGE_FULL: 'STATEFN_STORAGE_FULL',
  /** Back-pressure: the engine cannot accept more right now. Retriable. */
  OVERLOADED: 'STATEFN_OVERLOADED',
  /** A request to a server statefn runs was invalid. */
  REQUEST_INVALID: 'STATEFN_REQUEST_INVALID',
  /** An Idempotency-Key was sent again with another request (another target, type or body). */
  IDEMPOTENCY_KEY_REUSED: 'STATEFN_IDEMPOTENCY_KEY_REUSED',
  /** A Kafka broker refused or failed an operation (connect, produce, commit). Usually retriable. */
  KAFKA_FAILED: 'STATEFN_KAFKA_FAILED',
  /** A Kafka topic a connector needs does not exist. Terminal until the topic is created. */
  KAFKA_TOPIC_MISSING: 'STATEFN_KAFKA_TOPIC_MISSING',
  /** A call to a remote function failed after its retries (network, timeout, HTTP status). */
  REMOTE_FAILED: 'STATEFN_REMOTE_FAILED',
  /** A remote function's reply is not valid StateFun request-reply protobuf. */
  REMOTE_PROTOCOL: 'STATEFN_REMOTE_PROTOCOL',
  /** An internal invariant failed: a bug in statefn. */
  INVARIANT: 'STATEFN_INVARIANT',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface StatefnErrorOptions {
  cause?: unknown;
  /** True when retrying the same operation later may succeed (a broker or S3 hiccup). */
  retriable?: boolean;
}

export class StatefnError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: StatefnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StatefnError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/**
 * True for a StatefnError from any copy of statefn (an app may load statefn's sources while the
 * engine runs compiled, so `instanceof` is not enough at that boundary).
 */
export function isStatefnError(e: unknown): e is StatefnError {
  return (
    e instanceof StatefnError ||
    (e instanceof Error &&
      typeof (e as StatefnError).code === 'string' &&
      (e as StatefnError).code.startsWith('STATEFN_') &&
      typeof (e as StatefnError).retriable === 'boolean')
  );
}

/** Raised when an invariant fails: always a bug in statefn, never a user error. */
export class InvariantError extends Error {
  readonly code = ErrorCode.INVARIANT;
  constructor(message: string) {
    super(`invariant violated: ${message} (this is a bug in statefn; please report it)`);
    this.name = 'InvariantError';
  }
}

/** Assert an invariant. Use for conditions that cannot fail unless statefn's code is wrong. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === 'function' ? message() : message);
}

/** Normalise anything thrown into a StatefnError carrying `code` (keeps the original as cause). */
export function toStatefnError(err: unknown, code: ErrorCode, context?: string): StatefnError {
  if (err instanceof StatefnError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new StatefnError(code, context ? `${context}: ${detail}` : detail, { cause: err });
}

/** A plain, structured-clone-safe description of an error, for frames, logs and dead letters. */
export interface ErrorInfo {
  code: string;
  message: string;
  stack?: string;
}

export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const info: ErrorInfo = { code: typeof code === 'string' ? code : ErrorCode.HANDLER_FAILED, message: err.message };
    if (err.stack !== undefined) info.stack = err.stack;
    return info;
  }
  return { code: ErrorCode.HANDLER_FAILED, message: String(err) };
}
