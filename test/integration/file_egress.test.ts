// Proves FileEgress appends one JSON line per record to a real file (in order, across restarts,
// with a bounded unwritten backlog, failing loudly on a full disk) and StdoutEgress waits for
// 'drain'.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EgressRecord } from '../../api/connector_api.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { FileEgress, StdoutEgress } from '../../connectors/file/file_egress.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'statefn-file-egress-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rec = (egressId: string, message: Message): EgressRecord => ({ egressId, message });
const str = (s: string): EgressRecord => rec('test/out', Message.of(Types.string, s));

async function lines(path: string): Promise<unknown[]> {
  const text = await readFile(path, 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((l) => JSON.parse(l) as unknown);
}

describe('FileEgress', () => {
  it('creates parent directories and appends one JSON line per record', async () => {
    const path = join(dir, 'a', 'b', 'out.jsonl');
    const egress = new FileEgress({ id: 'test/out', path });
    await egress.start();
    await egress.write([
      str('hello\nworld'),
      rec('test/out', Message.of(Types.int, 7)),
      rec('test/out', Message.of(Types.json<{ n: number }>('com.example/Count'), { n: 3 })),
      rec('test/out', Message.of(Types.raw('com.example/Bytes'), Uint8Array.of(0xff, 0x00))),
    ]);
    await egress.flush();
    expect(await lines(path)).toEqual([
      { egress: 'test/out', typename: 'io.statefun.types/string', value: 'hello\nworld' },
      { egress: 'test/out', typename: 'io.statefun.types/int', value: 7 },
      { egress: 'test/out', typename: 'com.example/Count', value: { n: 3 } },
      { egress: 'test/out', typename: 'com.example/Bytes', value: { typename: 'com.example/Bytes', base64: '/wA=' } },
    ]);
    await egress.stop();
  });

  it('appends to an existing file, keeps order over many writes, and refuses writes after stop', async () => {
    const path = join(dir, 'out.jsonl');
    await writeFile(path, '{"earlier":true}\n');
    const egress = new FileEgress({ id: 'test/out', path, bufferBytesMax: 4096 });
    await egress.start();
    // Like the engine: each write awaited; most resolve at once, some wait for the disk.
    for (let w = 0; w < 500; w++) await egress.write(Array.from({ length: 10 }, (_, i) => str(`${w * 10 + i}`)));
    await egress.stop();
    const all = await lines(path);
    expect(all[0]).toEqual({ earlier: true });
    expect(all.slice(1).map((l) => (l as { value: string }).value)).toEqual(Array.from({ length: 5000 }, (_, i) => `${i}`));
    expect(() => egress.write([str('late')])).toThrow(/write\(\) after stop\(\)/);
  });

  it('with a full buffer, write resolves only once its data has been handed to the OS', async () => {
    const path = join(dir, 'out.jsonl');
    const egress = new FileEgress({ id: 'test/out', path, bufferBytesMax: 0 });
    await egress.start();
    const pending = egress.write([str('one')]);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    // No flush: the line is in the file because write waited for the OS write.
    expect(await lines(path)).toEqual([{ egress: 'test/out', typename: 'io.statefun.types/string', value: 'one' }]);
    await egress.stop();

    const roomy = new FileEgress({ id: 'test/out', path: join(dir, 'roomy.jsonl') });
    await roomy.start();
    expect(roomy.write([str('buffered')])).toBeUndefined(); // within bufferBytesMax: accepted at once
    await roomy.stop();
    expect((await lines(join(dir, 'roomy.jsonl'))).length).toBe(1);
  });

  it('retries a failing OS write, then fails for good with EGRESS_FAILED naming the file and the cause', async () => {
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    const logs: string[] = [];
    const logger = { info: () => {}, warn: (m: string) => logs.push(m), error: (m: string) => logs.push(m) };
    const egress = new FileEgress({ id: 'test/out', path: '/dev/full', bufferBytesMax: 0, writeAttemptsMax: 2 });
    await egress.start({ logger, signal: new AbortController().signal, deadLetter: () => {}, lineage: 'test' });
    const err = await Promise.resolve(egress.write([str('x')])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StatefnError);
    expect((err as StatefnError).code).toBe(ErrorCode.EGRESS_FAILED);
    expect((err as StatefnError).message).toMatch(/writing \/dev\/full failed 2 times \(ENOSPC\)/);
    expect(logs.some((m) => /retrying in 50 ms/.test(m))).toBe(true);
    expect(() => egress.write([str('y')])).toThrow(/ENOSPC/);
    await expect(egress.flush()).rejects.toThrow(/ENOSPC/);
    await egress.stop();
  });

  it('rejects an unusable path at start and bad options at construction, naming them', async () => {
    await writeFile(join(dir, 'file'), '');
    const egress = new FileEgress({ id: 'test/out', path: join(dir, 'file', 'out.jsonl') });
    await expect(egress.start()).rejects.toThrow(/cannot open .*file\/out\.jsonl for appending/);
    expect(() => new FileEgress({ id: 'test/out', path: '' })).toThrow(/options\.path/);
    expect(() => new FileEgress({ id: 'test/out', path: 'x', format: 'csv' as 'json-lines' })).toThrow(/options\.format/);
    expect(() => new FileEgress({ id: 'test/out', path: 'x' }).write([str('x')])).toThrow(/before start\(\)/);
  });
});

describe('StdoutEgress', () => {
  it('writes json-lines by default and `egressId: value` as text', async () => {
    const out = new PassThrough();
    const json = new StdoutEgress({ id: 'test/out', stream: out });
    await json.write([str('hi'), rec('test/out', Message.of(Types.long, 5))]);
    const text = new StdoutEgress({ id: 'test/out', format: 'text', stream: out });
    await text.write([str('hi'), rec('test/out', Message.of(Types.json('com.example/X'), { a: [1] }))]);
    await text.flush();
    expect(String(out.read())).toBe(
      '{"egress":"test/out","typename":"io.statefun.types/string","value":"hi"}\n' +
        '{"egress":"test/out","typename":"io.statefun.types/long","value":5}\n' +
        'test/out: hi\n' +
        'test/out: {"a":[1]}\n',
    );
  });

  it("waits for 'drain' when the stream is over its high-water mark", async () => {
    const out = new PassThrough({ highWaterMark: 64 });
    const egress = new StdoutEgress({ id: 'test/out', stream: out });
    let done = false;
    const writing = Promise.resolve(egress.write(Array.from({ length: 20 }, (_, i) => str(`line ${i}`)))).then(() => (done = true));
    // Nobody reads the stream yet: a correct egress keeps waiting.
    await settle(30);
    expect(done).toBe(false);
    let received = '';
    out.on('data', (d: Buffer) => (received += String(d)));
    await writing;
    expect(received.split('\n').length).toBe(21);
  });

  it('uses process.stdout by default and rejects an unknown format', () => {
    expect(() => new StdoutEgress({ id: 'test/out' })).not.toThrow();
    expect(() => new StdoutEgress({ id: 'test/out', format: 'xml' as 'text' })).toThrow(/options\.format/);
  });
});
