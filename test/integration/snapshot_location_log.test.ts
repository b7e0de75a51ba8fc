// The engine says at start, in one INFO line, where its snapshots go: a local directory (absolute
// path), an S3 bucket and prefix with its endpoint, or off. A mistyped location that still parsed
// is then visible in the first lines of the log.
import { describe, expect, it, afterAll } from 'vitest';
import { join } from 'node:path';
import { Engine } from '../../index.js';
import { MemoryLogger, TempDirs } from '../fixtures/engine_harness.js';
import { freshBucket, rawS3Client, s3Credentials, s3Endpoint } from '../fixtures/s3_test_env.js';

const app = new URL('../fixtures/apps/counter_app.ts', import.meta.url).href;
const dirs = new TempDirs();
afterAll(() => dirs.removeAll());

async function startLines(options: Record<string, unknown>): Promise<string[]> {
  const logger = new MemoryLogger();
  const engine = await Engine.start(app, { workers: 1, logger, stateDir: dirs.make('snap-log'), ...options });
  await engine.stop();
  return logger.lines.filter((l) => l.level === 'info' && l.msg.startsWith('snapshots: ')).map((l) => l.msg);
}

describe('the start log line about snapshots', () => {
  it('names the local directory, S3 location with its endpoint, or off', async () => {
    const stateDir = dirs.make('snap-log-default');
    expect(await startLines({ stateDir })).toEqual([`snapshots: local directory ${join(stateDir, 'snapshots')}`]);
    expect(await startLines({ snapshots: false })).toEqual(['snapshots: off']);
    const bucket = await freshBucket(rawS3Client(), 'log');
    const credentials = s3Credentials();
    const snapshots = { type: 's3', bucket, prefix: 'app', endpoint: s3Endpoint(), ...(credentials ? { credentials } : {}) };
    expect(await startLines({ snapshots })).toEqual([`snapshots: s3://${bucket}/app (endpoint ${s3Endpoint()})`]);
  });
});
