// Proves MemoryIngress delivers pushed records in order, in batches, honouring back-pressure and
// its queue bound, and MemoryEgress collects records and resolves or times out waitFor.
import { describe, expect, it } from 'vitest';
import type { EgressRecord, IngressContext, Logger } from '../../api/connector_api.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { MemoryEgress } from '../../connectors/memory/memory_egress.js';
import { MemoryIngress } from '../../connectors/memory/memory_ingress.js';

/** The engine side, reduced to what an ingress sees: collects batches, back-pressure on demand. */
class CollectingContext<R> implements IngressContext<R> {
  readonly batches: R[][] = [];
  readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  readonly logger: Logger = { info: () => {}, warn: () => {}, error: () => {} };
  writable = true;
  private writableWaiters: (() => void)[] = [];
  private submitWaiters: { count: number; resolve: () => void }[] = [];

  get records(): R[] {
    return this.batches.flat();
  }
  submit(records: readonly R[]): boolean {
    this.batches.push([...records]);
    this.submitWaiters = this.submitWaiters.filter((w) => (this.batches.length >= w.count ? (w.resolve(), false) : true));
    return this.writable;
  }
  whenWritable(): Promise<void> {
    if (this.writable) return Promise.resolve();
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }
  release(): void {
    this.writable = true;
    for (const w of this.writableWaiters.splice(0)) w();
  }
  submits(count: number): Promise<void> {
    if (this.batches.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.submitWaiters.push({ count, resolve }));
  }
  reject(): void {}
  whenDurable(): Promise<void> {
    return Promise.resolve();
  }

  hasFunction(): boolean {
    return true;
  }
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const out = (s: string): EgressRecord => ({ egressId: 'test/out', message: Message.of(Types.string, s) });

describe('MemoryIngress', () => {
  it('delivers records pushed before and after start, in order, in batches of batchSize', async () => {
    const ingress = new MemoryIngress<number>({ id: 'test/mem', batchSize: 4 });
    ingress.push(0, 1, 2, 3, 4, 5);
    const ctx = new CollectingContext<number>();
    ingress.start(ctx);
    await ingress.drained();
    ingress.pushAll(Array.from({ length: 10 }, (_, i) => 6 + i));
    await ingress.drained();
    expect(ctx.records).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(Math.max(...ctx.batches.map((b) => b.length))).toBe(4);
    expect(ingress.queued).toBe(0);
    await ingress.stop();
  });

  it('holds after submit returns false until whenWritable resolves', async () => {
    const ingress = new MemoryIngress<number>({ id: 'test/mem', batchSize: 2 });
    const ctx = new CollectingContext<number>();
    ctx.writable = false;
    ingress.start(ctx);
    ingress.push(1, 2, 3, 4, 5);
    await ctx.submits(1);
    await settle(30);
    expect(ctx.batches).toEqual([[1, 2]]);
    expect(ingress.queued).toBe(3);
    ctx.release();
    await ingress.drained();
    expect(ctx.records).toEqual([1, 2, 3, 4, 5]);
    await ingress.stop();
  });

  it('throws OVERLOADED (retriable) past queueRecordsMax and queues none of that push', () => {
    const ingress = new MemoryIngress<number>({ id: 'test/mem', queueRecordsMax: 3 });
    ingress.push(1, 2);
    let err: unknown;
    try {
      ingress.push(3, 4);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StatefnError);
    expect((err as StatefnError).code).toBe(ErrorCode.OVERLOADED);
    expect((err as StatefnError).retriable).toBe(true);
    expect((err as StatefnError).message).toMatch(/queueRecordsMax \(3\)/);
    expect(ingress.queued).toBe(2);
    ingress.push(3);
    expect(ingress.queued).toBe(3);
  });

  it('stops on stop() and on the engine signal; drained() rejects when records were left', async () => {
    const ingress = new MemoryIngress<number>({ id: 'test/mem', batchSize: 1 });
    const ctx = new CollectingContext<number>();
    ctx.writable = false;
    ingress.start(ctx);
    ingress.push(1, 2, 3);
    await ctx.submits(1);
    const drained = ingress.drained();
    ctx.controller.abort();
    await expect(drained).rejects.toThrow(/stopped with 2 records not delivered/);
    await ingress.stop();
    expect(ctx.batches.length).toBe(1);
    expect(() => ingress.push(4)).toThrow(/push after stop/);
  });
});

describe('MemoryEgress', () => {
  it('collects records in order and resolves waitFor(count) and waitFor(predicate)', async () => {
    const egress = new MemoryEgress({ id: 'test/out' });
    const byCount = egress.waitFor(3, 5_000);
    const byPredicate = egress.waitFor((rs) => rs.some((r) => r.message.asString() === 'b'), 5_000);
    egress.write([out('a')]);
    egress.write([out('b'), out('c')]);
    await Promise.all([byCount, byPredicate]);
    expect(egress.records.map((r) => r.message.asString())).toEqual(['a', 'b', 'c']);
    await egress.waitFor(2, 0); // already true: resolves at once, even with no time to wait
    egress.clear();
    expect(egress.records).toEqual([]);
  });

  it('rejects waitFor after timeoutMs with what was awaited and what arrived', async () => {
    const egress = new MemoryEgress({ id: 'test/out' });
    egress.write([out('only')]);
    const err = await egress.waitFor(2, 20).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StatefnError);
    expect((err as StatefnError).message).toMatch(/waitFor\(2 records\) timed out after 20 ms with 1 records; last: .*"only"/);
    await expect(
      egress.waitFor(() => {
        throw new Error('bad predicate');
      }, 1000),
    ).rejects.toThrow('bad predicate');
    await expect(egress.waitFor(-1, 10)).rejects.toThrow(/record count >= 0/);
  });

  it('rejects writes past recordsMax with OVERLOADED until cleared', () => {
    const egress = new MemoryEgress({ id: 'test/out', recordsMax: 2 });
    egress.write([out('a'), out('b')]);
    expect(() => egress.write([out('c')])).toThrow(/recordsMax \(2\)/);
    egress.clear();
    egress.write([out('c')]);
    expect(egress.records.length).toBe(1);
  });
});
