// Proves the S3 snapshot store against a real S3-compatible server (moto): the S3 behaviours it
// relies on, the shared store conformance suite, and retriable errors when S3 is unreachable.
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../snapshot/s3_store.js';
import { SnapshotError } from '../../snapshot/snapshot_store.js';
import { snapshotStoreConformance } from '../fixtures/snapshot_store_conformance.js';
import { freshBucket, rawS3Client, s3StoreFor } from '../fixtures/s3_test_env.js';

const raw = rawS3Client();
let bucket = '';
let n = 0;
beforeAll(async () => {
  bucket = await freshBucket(raw, 's3store');
});
afterAll(() => raw.destroy());

describe('the S3-compatible server behaves as S3Store relies on', () => {
  it('put/get bytes with user metadata, paginated ListObjectsV2, DeleteObjects', async () => {
    const body = Buffer.from([0, 1, 2, 255, 254]);
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'probe/bin', Body: body, Metadata: { 'statefn-sha256': 'abc' } }));
    const got = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'probe/bin' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
    const head = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'probe/bin' }));
    expect(head.Metadata?.['statefn-sha256']).toBe('abc');
    for (let i = 0; i < 5; i++) await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `probe/p${i}`, Body: 'x' }));
    const page1 = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'probe/p', MaxKeys: 2 }));
    expect(page1.IsTruncated).toBe(true);
    expect(page1.Contents?.map((c) => c.Key)).toEqual(['probe/p0', 'probe/p1']);
    const page2 = await raw.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: 'probe/p', MaxKeys: 10, ContinuationToken: page1.NextContinuationToken }),
    );
    expect(page2.IsTruncated).toBe(false);
    expect(page2.Contents?.map((c) => c.Key)).toEqual(['probe/p2', 'probe/p3', 'probe/p4']);
    const del = await raw.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'probe/bin' }, { Key: 'probe/none' }], Quiet: true } }),
    );
    expect(del.Errors ?? []).toEqual([]);
    await expect(raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'probe/bin' }))).rejects.toMatchObject({ name: 'NoSuchKey' });
  });
});

snapshotStoreConformance('S3Store', {
  // A fresh prefix per test in the shared bucket (prefixes are part of the store's contract too).
  make: () => Promise.resolve(s3StoreFor(bucket, `conf-${n++}/nested`)),
  overwriteRaw: async (store, key, bytes) => {
    const s = store as S3Store;
    await raw.send(new PutObjectCommand({ Bucket: s.bucket, Key: `${s.prefix}/${key}`, Body: bytes }));
  },
});

describe('S3Store failures', () => {
  it('an unreachable endpoint is a retriable error naming the store and the object', async () => {
    // Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once.
    const store = new S3Store({
      bucket: 'b',
      endpoint: 'http://127.0.0.1:9',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      maxAttempts: 1,
      connectionTimeoutMs: 1000,
    });
    const e = await store.get('manifests/1').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(SnapshotError);
    expect((e as SnapshotError).reason).toBe('unavailable');
    expect((e as SnapshotError).retriable).toBe(true);
    expect((e as SnapshotError).message).toContain('manifests/1');
    expect((e as SnapshotError).message).toContain('s3://b/');
    store.destroy();
  });

  it('a bucket that does not exist is a terminal error', async () => {
    const store = s3StoreFor(`${bucket}-absent`);
    const e = await store.put('x', new Uint8Array(1)).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((e as SnapshotError).reason).toBe('unavailable');
    expect((e as SnapshotError).retriable).toBe(false);
    store.destroy();
  });
});
