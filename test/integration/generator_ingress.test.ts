// Proves GeneratorIngress submits exactly `count` deterministic records, that seek() regenerates
// identical records, and that it honours back-pressure, its rate limit and stop.
import { describe, expect, it } from 'vitest';
import type { IngressContext, Logger } from '../../api/connector_api.js';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { GeneratorIngress } from '../../connectors/generator/generator_ingress.js';
import type { Rng } from '../../connectors/generator/rng.js';

/** The engine side, reduced to what an ingress sees: collects batches, back-pressure on demand. */
class CollectingContext<R> implements IngressContext<R> {
  readonly batches: R[][] = [];
  /** 'submit' | 'whenWritable' | 'released', in order. */
  readonly events: string[] = [];
  readonly logs: { level: string; msg: string }[] = [];
  readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  readonly logger: Logger = {
    info: (msg) => this.logs.push({ level: 'info', msg }),
    warn: (msg) => this.logs.push({ level: 'warn', msg }),
    error: (msg) => this.logs.push({ level: 'error', msg }),
  };
  /** What submit returns. */
  writable = true;
  private writableWaiters: (() => void)[] = [];
  private submitWaiters: { count: number; resolve: () => void }[] = [];

  get records(): R[] {
    return this.batches.flat();
  }

  submit(records: readonly R[]): boolean {
    this.batches.push([...records]);
    this.events.push('submit');
    this.submitWaiters = this.submitWaiters.filter((w) => (this.batches.length >= w.count ? (w.resolve(), false) : true));
    return this.writable;
  }

  whenWritable(): Promise<void> {
    this.events.push('whenWritable');
    if (this.writable) return Promise.resolve();
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }

  /** Resolve pending whenWritable() calls; `stayWritable` also makes later submits return true. */
  release(stayWritable: boolean): void {
    this.writable = stayWritable;
    this.events.push('released');
    for (const w of this.writableWaiters.splice(0)) w();
  }

  /** Resolves once `count` submit calls have happened. */
  submits(count: number): Promise<void> {
    if (this.batches.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.submitWaiters.push({ count, resolve }));
  }

  reject(): void {
    throw new Error('the generator never rejects records');
  }

  whenDurable(): Promise<void> {
    return Promise.resolve();
  }

  hasFunction(): boolean {
    return true;
  }
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Rec {
  index: number;
  a: number;
  b: number;
  key: number;
}
const make = (index: number, rng: Rng): Rec => ({ index, a: rng.next(), b: rng.int(1000), key: rng.zipf(10_000, 1) });

describe('GeneratorIngress', () => {
  it('submits exactly `count` records, indices 0..count-1, in batches of at most batchSize', async () => {
    const gen = new GeneratorIngress<Rec>({ id: 'test/gen', count: 1000, batchSize: 64, seed: 7, make });
    const ctx = new CollectingContext<Rec>();
    gen.start(ctx);
    await gen.done;
    expect(ctx.records.map((r) => r.index)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Math.max(...ctx.batches.map((b) => b.length))).toBe(64);
    expect(gen.position()).toBe(1000);
    await gen.stop();
    expect(ctx.batches.length).toBe(Math.ceil(1000 / 64));
  });

  it('seek(i) regenerates exactly the records a full run produced from i on, whatever the batch size', async () => {
    const full = new GeneratorIngress<Rec>({ id: 'test/gen', count: 500, batchSize: 100, seed: 42, make });
    const ctxFull = new CollectingContext<Rec>();
    full.start(ctxFull);
    await full.done;

    const resumed = new GeneratorIngress<Rec>({ id: 'test/gen', count: 500, batchSize: 7, seed: 42, make });
    resumed.seek(237);
    expect(resumed.position()).toBe(237);
    const ctxResumed = new CollectingContext<Rec>();
    resumed.start(ctxResumed);
    await resumed.done;
    expect(ctxResumed.records).toEqual(ctxFull.records.slice(237));

    const otherSeed = new GeneratorIngress<Rec>({ id: 'test/gen', count: 10, seed: 43, make });
    const ctxOther = new CollectingContext<Rec>();
    otherSeed.start(ctxOther);
    await otherSeed.done;
    expect(ctxOther.records.map((r) => r.a)).not.toEqual(ctxFull.records.slice(0, 10).map((r) => r.a));
  });

  it('holds after submit returns false until whenWritable resolves', async () => {
    const gen = new GeneratorIngress<Rec>({ id: 'test/gen', count: 100, batchSize: 10, make });
    const ctx = new CollectingContext<Rec>();
    ctx.writable = false;
    gen.start(ctx);
    for (let round = 1; round <= 3; round++) {
      await ctx.submits(round);
      // Give a misbehaving generator ample chance to submit more; a correct one stays put.
      await settle(30);
      expect(ctx.batches.length).toBe(round);
      expect(gen.position()).toBe(round * 10);
      ctx.release(round === 3);
    }
    await gen.done;
    expect(ctx.records.length).toBe(100);
    // Every 'whenWritable' of a back-pressured submit is followed by 'released' before the next submit.
    const trace = ctx.events.join(' ');
    expect(trace.startsWith('submit whenWritable released submit whenWritable released submit whenWritable released submit')).toBe(true);
    expect(ctx.events.filter((e) => e === 'whenWritable').length).toBe(3);
  });

  it('roughly honours ratePerSec, in bursts no larger than rateBurstMs allows', async () => {
    const ratePerSec = 200;
    const gen = new GeneratorIngress<Rec>({ id: 'test/gen', count: 60, ratePerSec, rateBurstMs: 50, make });
    const ctx = new CollectingContext<Rec>();
    const t0 = performance.now();
    gen.start(ctx);
    await gen.done;
    const elapsedMs = performance.now() - t0;
    expect(ctx.records.length).toBe(60);
    // 60 records at 200/s take at least ~300 ms (the bucket starts empty); only a lower bound
    // is asserted, a loaded machine may be slower.
    expect(elapsedMs).toBeGreaterThanOrEqual(250);
    // Burst cap: 200/s * 50 ms = 10 records.
    expect(Math.max(...ctx.batches.map((b) => b.length))).toBeLessThanOrEqual(10);
  });

  it('stops on stop() and on the engine signal: no submit after stop resolves, done resolves', async () => {
    const gen = new GeneratorIngress<Rec>({ id: 'test/gen', batchSize: 16, make });
    const ctx = new CollectingContext<Rec>();
    gen.start(ctx);
    await ctx.submits(5);
    await gen.stop();
    const submitted = ctx.batches.length;
    await settle(20);
    expect(ctx.batches.length).toBe(submitted);
    expect(gen.position()).toBe(ctx.records.length);
    await gen.done;

    const gen2 = new GeneratorIngress<Rec>({ id: 'test/gen2', batchSize: 16, make });
    const ctx2 = new CollectingContext<Rec>();
    ctx2.writable = false; // parked in whenWritable when the engine stops
    gen2.start(ctx2);
    await ctx2.submits(1);
    ctx2.controller.abort();
    await gen2.done;
    expect(ctx2.batches.length).toBe(1);
  });

  it('rejects seek after start and bad options with the option named', async () => {
    const gen = new GeneratorIngress<Rec>({ id: 'test/gen', count: 10, make });
    const ctx = new CollectingContext<Rec>();
    gen.start(ctx);
    expect(() => gen.seek(3)).toThrow(/seek\(3\) after start/);
    await gen.done;
    expect(() => new GeneratorIngress<Rec>({ id: 'test/gen', count: 10, make }).seek(11)).toThrow(StatefnError);
    expect(() => new GeneratorIngress<Rec>({ id: 'test/gen', batchSize: 0, make })).toThrow(/options\.batchSize/);
    expect(() => new GeneratorIngress<Rec>({ id: 'test/gen', ratePerSec: -1, make })).toThrow(/options\.ratePerSec/);
    expect(() => new GeneratorIngress<Rec>({ id: 'test/gen', seed: 0.5, make })).toThrow(/options\.seed/);
  });

  it('fails at the record whose make() throws, without skipping it, and reports it', async () => {
    const gen = new GeneratorIngress<number>({
      id: 'test/gen',
      count: 100,
      batchSize: 10,
      make: (i) => {
        if (i === 25) throw new Error('boom');
        return i;
      },
    });
    const ctx = new CollectingContext<number>();
    gen.start(ctx);
    const err = await gen.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StatefnError);
    expect((err as StatefnError).code).toBe(ErrorCode.INGRESS_RECORD_INVALID);
    expect((err as StatefnError).message).toMatch(/make\(25\) threw: boom/);
    expect(ctx.records).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(gen.position()).toBe(20);
    expect(ctx.logs.some((l) => l.level === 'error')).toBe(true);
    await gen.stop();
  });
});
