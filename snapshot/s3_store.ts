/**
 * A snapshot store in an S3 bucket (or an S3-compatible server: MinIO, moto, Ceph...), through
 * @aws-sdk/client-s3. Objects are sealed with the same checksum header as every store (see
 * snapshot_store.ts); the hex SHA-256 is also set as `x-amz-meta-statefn-sha256` so an operator
 * can see it with a HEAD, but only the header is trusted on read.
 *
 * Every request has bounded connection and request timeouts, and the SDK's own retries are
 * bounded (`maxAttempts`), their delays drawn by shared/backoff.ts; failures of the store surface
 * as retriable `SnapshotError`s and the checkpoint coordinator retries whole operations with
 * backoff.
 */
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { StandardRetryStrategy } from '@smithy/core/retry';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { backoffDelayMs, type BackoffPolicy } from '../shared/backoff.js';
import {
  s3AttemptsMax,
  s3ConnectTimeoutMs,
  s3RequestTimeoutMs,
  s3RetryBaseMs,
  s3RetryMaxMs,
  s3ThrottledRetryBaseMs,
} from '../shared/limits.js';
import {
  missingObject,
  openObject,
  sealObject,
  sha256Hex,
  SnapshotError,
  storeUnavailable,
  validateKey,
  type SnapshotStore,
} from './snapshot_store.js';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket (no leading or trailing `/` needed). */
  prefix?: string;
  /** An S3-compatible endpoint, e.g. `http://127.0.0.1:9000`. Default: AWS for `region`. */
  endpoint?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`). Default: true when `endpoint` is set. */
  forcePathStyle?: boolean;
  /** Default: the SDK's standard provider chain (env, shared config files, SSO, IMDS...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Time to establish a TCP connection. Default `s3ConnectTimeoutMs` (5000). */
  connectionTimeoutMs?: number;
  /** Time for a whole request once connected. Default `s3RequestTimeoutMs` (60000). */
  requestTimeoutMs?: number;
  /** Attempts per request inside the SDK (1 = no SDK retry). Default `s3AttemptsMax` (3). */
  maxAttempts?: number;
}

/** DeleteObjects accepts at most this many keys per request (a limit of the S3 API). */
const DELETE_BATCH_KEYS_MAX = 1000;

/** S3 error names that retrying will not fix: the configuration is wrong. */
const TERMINAL_ERRORS = new Set([
  'NoSuchBucket',
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidBucketName',
  'PermanentRedirect',
]);

/**
 * The SDK's retry delays, from the one backoff helper. Full jitter (a uniform draw in [0, delay])
 * with the SDK's own bases and cap, so the delays are distributed as with the SDK's default
 * strategy: throttling errors back off from a longer base than other retriable errors.
 */
function sdkRetryBackoff(): { computeNextBackoffDelay(retry: number): number; setDelayBase(ms: number): void } {
  let baseMs = s3RetryBaseMs;
  return {
    computeNextBackoffDelay(retry: number): number {
      const policy: BackoffPolicy = { baseMs, maxMs: Math.max(baseMs, s3RetryMaxMs), jitter: 1 };
      return backoffDelayMs(policy, retry);
    },
    setDelayBase(ms: number): void {
      // The SDK sets its throttling base for throttling errors and its default base otherwise;
      // map both onto ours.
      baseMs = ms > s3RetryBaseMs ? s3ThrottledRetryBaseMs : s3RetryBaseMs;
    },
  };
}

export class S3Store implements SnapshotStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  private readonly description: string;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    const maxAttempts = options.maxAttempts ?? s3AttemptsMax;
    const config: S3ClientConfig = {
      region: options.region ?? 'us-east-1',
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      maxAttempts,
      retryStrategy: new StandardRetryStrategy({ maxAttempts, backoff: sdkRetryBackoff() }),
      requestHandler: new NodeHttpHandler({
        connectionTimeout: options.connectionTimeoutMs ?? s3ConnectTimeoutMs,
        requestTimeout: options.requestTimeoutMs ?? s3RequestTimeoutMs,
      }),
      // Our own SHA-256 covers integrity end to end; the SDK's extra CRC checksums are not
      // supported by every S3-compatible server, so send them only where S3 requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (options.endpoint !== undefined) config.endpoint = options.endpoint;
    if (options.credentials !== undefined) config.credentials = options.credentials;
    this.client = new S3Client(config);
    this.description = `s3://${this.bucket}/${this.prefix}${options.endpoint ? ` at ${options.endpoint}` : ''}`;
  }

  describe(): string {
    return this.description;
  }

  private objectKey(key: string): string {
    validateKey(this.description, key);
    return this.prefix === '' ? key : `${this.prefix}/${key}`;
  }

  private fail(op: string, key: string, e: unknown): SnapshotError {
    const name = (e as { name?: string }).name ?? '';
    const err = storeUnavailable(this.description, op, key, e);
    if (!TERMINAL_ERRORS.has(name)) return err;
    return new SnapshotError(
      'unavailable',
      this.description,
      key,
      `${err.message.replace(/; this is retried.*$/, '')}; fix the bucket name or credentials`,
      {
        cause: e,
        retriable: false,
      },
    );
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const Key = this.objectKey(key);
    const sealed = sealObject(body);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: sealed,
          ContentLength: sealed.length,
          ContentType: 'application/octet-stream',
          Metadata: { 'statefn-sha256': sha256Hex(body) },
        }),
      );
    } catch (e) {
      throw this.fail('write', key, e);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    const Key = this.objectKey(key);
    let sealed: Uint8Array;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      if (res.Body === undefined) throw new Error('response has no body');
      sealed = await res.Body.transformToByteArray();
    } catch (e) {
      const name = (e as { name?: string }).name;
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (name === 'NoSuchKey' || (name === 'NotFound' && status === 404)) throw missingObject(this.description, key, e);
      throw this.fail('read', key, e);
    }
    return openObject(this.description, key, sealed);
  }

  async list(prefix: string): Promise<string[]> {
    const full = this.prefix === '' ? prefix : `${this.prefix}/${prefix}`;
    const strip = this.prefix === '' ? 0 : this.prefix.length + 1;
    const out: string[] = [];
    let token: string | undefined;
    // Each page is at most 1000 keys; follow continuation tokens to the end.
    for (;;) {
      let res;
      try {
        res = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ContinuationToken: token }));
      } catch (e) {
        throw this.fail('list', prefix, e);
      }
      for (const o of res.Contents ?? []) if (o.Key !== undefined) out.push(o.Key.slice(strip));
      if (!res.IsTruncated) break;
      token = res.NextContinuationToken;
      if (token === undefined) throw this.fail('list', prefix, new Error('truncated listing without a continuation token'));
    }
    return out.sort();
  }

  async copy(from: string, to: string): Promise<void> {
    const source = this.objectKey(from);
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(to),
          // CopySource is "bucket/key" with the key URL-encoded (keys here are [A-Za-z0-9/_.-]).
          CopySource: `${this.bucket}/${encodeURI(source)}`,
        }),
      );
    } catch (e) {
      const name = (e as { name?: string }).name;
      if (name === 'NoSuchKey') throw missingObject(this.description, from, e);
      throw this.fail('copy', from, e);
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH_KEYS_MAX) {
      const batch = keys.slice(i, i + DELETE_BATCH_KEYS_MAX);
      let res;
      try {
        res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((k) => ({ Key: this.objectKey(k) })), Quiet: true },
          }),
        );
      } catch (e) {
        if (e instanceof SnapshotError) throw e;
        throw this.fail('delete', batch[0] ?? '', e);
      }
      const first = res.Errors?.[0];
      if (first !== undefined) {
        throw this.fail(
          'delete',
          first.Key ?? '',
          new Error(`${res.Errors?.length} of ${batch.length} deletes failed, first: ${first.Code}: ${first.Message}`),
        );
      }
    }
  }

  /** Close the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }
}
