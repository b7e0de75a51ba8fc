// Proves engine limits validate eagerly: defaults are valid, and every bad value (unknown key,
// non-integer, out of bounds, non-power-of-two ring, broken cross-field relationship) is a
// STATEFN_CONFIG_INVALID naming the key path.
import { describe, expect, it } from 'vitest';
import { ErrorCode, StatefnError } from '../../shared/errors.js';
import { LIMIT_SPECS, defaultLimits, resolveEngineLimits, type LimitName } from '../../shared/limits.js';
import { RingProducer, allocateRing } from '../../shared/ring_buffer.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function configError(fn: () => unknown): StatefnError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a StatefnError').toBeInstanceOf(StatefnError);
  expect((caught as StatefnError).code).toBe(ErrorCode.CONFIG_INVALID);
  expect((caught as StatefnError).code).toBe('STATEFN_CONFIG_INVALID');
  expect((caught as StatefnError).retriable).toBe(false);
  return caught as StatefnError;
}

/** The error must start with the key path, e.g. `options.ringBytes: ...`. */
function expectInvalid(overrides: Record<string, unknown>, path: string, where?: string): StatefnError {
  const err = configError(() => resolveEngineLimits(overrides, where));
  expect(err.message.startsWith(`${path}: `), err.message).toBe(true);
  return err;
}

const names = Object.keys(LIMIT_SPECS) as LimitName[];

describe('defaults', () => {
  it('are valid: resolving no overrides gives exactly the defaults', () => {
    const d = defaultLimits();
    expect(resolveEngineLimits()).toEqual(d);
    expect(resolveEngineLimits({})).toEqual(d);
    expect(Object.keys(d).sort()).toEqual([...names].sort());
  });

  it('each spec has a description, integer bounds, and a default inside them', () => {
    for (const name of names) {
      const spec = LIMIT_SPECS[name] as { default: number; min: number; max: number; powerOfTwo?: boolean; description: string };
      expect(spec.description.length, name).toBeGreaterThan(10);
      expect(Number.isInteger(spec.min) && Number.isInteger(spec.max) && Number.isInteger(spec.default), name).toBe(true);
      expect(spec.min <= spec.default && spec.default <= spec.max, name).toBe(true);
      if (spec.powerOfTwo) expect(spec.default & (spec.default - 1), name).toBe(0);
    }
  });

  it('respect the relationships (a frame fits half a ring, low <= high water, dirty <= cache)', () => {
    const d = defaultLimits();
    expect(d.frameBytesMax).toBeLessThanOrEqual(d.ringBytes / 2);
    expect(d.outboxBytesLowWater).toBeLessThanOrEqual(d.outboxBytesHighWater);
    expect(d.dirtyEntriesMax).toBeLessThanOrEqual(d.stateCacheEntriesMax);
  });

  it('a default-sized frame fits a default-sized ring', () => {
    const d = defaultLimits();
    const ring = new RingProducer(allocateRing(d.ringBytes));
    expect(ring.maxPayload).toBeGreaterThanOrEqual(d.frameBytesMax);
  });
});

describe('overrides', () => {
  it('are applied, and the rest stay at their defaults', () => {
    const l = resolveEngineLimits({ ringBytes: 4 * MiB, batchMessagesMax: 64 });
    expect(l.ringBytes).toBe(4 * MiB);
    expect(l.batchMessagesMax).toBe(64);
    expect(l.keyGroups).toBe(defaultLimits().keyGroups);
  });

  it('accept numeric strings (from YAML, env or CLI flags)', () => {
    const l = resolveEngineLimits({ ringBytes: '65536', keyGroups: ' 512 ', checkpointIntervalMs: '2e3', frameBytesMax: '0x4000' });
    expect(l.ringBytes).toBe(65536);
    expect(l.keyGroups).toBe(512);
    expect(l.checkpointIntervalMs).toBe(2000);
    expect(l.frameBytesMax).toBe(16384);
  });

  it('treat undefined as "not set"', () => {
    expect(resolveEngineLimits({ ringBytes: undefined })).toEqual(defaultLimits());
  });

  it('accept each bound itself where no relationship forbids it', () => {
    expect(resolveEngineLimits({ keyGroups: 1 }).keyGroups).toBe(1);
    expect(resolveEngineLimits({ keyGroups: 32768 }).keyGroups).toBe(32768);
    expect(resolveEngineLimits({ ringBytes: 256 * MiB }).ringBytes).toBe(256 * MiB);
    expect(resolveEngineLimits({ ringBytes: 4 * KiB, frameBytesMax: 1 * KiB }).ringBytes).toBe(4 * KiB);
    expect(resolveEngineLimits({ handlerRetryBackoffMs: 0 }).handlerRetryBackoffMs).toBe(0);
    expect(resolveEngineLimits({ outboxBytesLowWater: 0, outboxBytesHighWater: 0 }).outboxBytesHighWater).toBe(0);
  });
});

describe('invalid values are STATEFN_CONFIG_INVALID naming the key path', () => {
  it('an unknown key, listing the known ones', () => {
    const err = expectInvalid({ ringSize: 1024 }, 'options.ringSize');
    expect(err.message).toMatch(/unknown limit/);
    expect(err.message).toMatch(/ringBytes/);
    expectInvalid({ ringbytes: 1024 }, 'statefn.yaml#engine.ringbytes', 'statefn.yaml#engine');
  });

  it('a value that is not an integer', () => {
    for (const bad of [1.5, '1.5', 'abc', '', '   ', true, null, [], {}, NaN, Infinity, -Infinity]) {
      const err = expectInvalid({ batchMessagesMax: bad }, 'options.batchMessagesMax');
      expect(err.message).toMatch(/expected an integer/);
    }
  });

  it('every key just outside its bounds', () => {
    for (const name of names) {
      const spec = LIMIT_SPECS[name];
      const below = expectInvalid({ [name]: spec.min - 1 }, `options.${name}`);
      expect(below.message).toContain(`[${spec.min}, ${spec.max}]`);
      expectInvalid({ [name]: spec.max + 1 }, `options.${name}`);
    }
  });

  it('a ring size that is not a power of two, suggesting the nearest one', () => {
    const err = expectInvalid({ ringBytes: 3 * MiB }, 'options.ringBytes');
    expect(err.message).toMatch(/power of two/);
    expect(err.message).toContain(String(4 * MiB));
    expectInvalid({ ringBytes: '100000' }, 'options.ringBytes');
  });

  it('frameBytesMax above ringBytes/2', () => {
    const err = expectInvalid({ ringBytes: 64 * KiB, frameBytesMax: 32 * KiB + 1 }, 'options.frameBytesMax');
    expect(err.message).toMatch(/ringBytes\/2/);
    expectInvalid({ ringBytes: 4 * KiB }, 'options.frameBytesMax'); // default 256 KiB frame, 4 KiB ring
  });

  it('outboxBytesLowWater above outboxBytesHighWater', () => {
    const err = expectInvalid({ outboxBytesLowWater: 3 * MiB, outboxBytesHighWater: 1 * MiB }, 'options.outboxBytesLowWater');
    expect(err.message).toMatch(/outboxBytesHighWater/);
  });

  it('dirtyEntriesMax above stateCacheEntriesMax', () => {
    expectInvalid({ dirtyEntriesMax: 1000, stateCacheEntriesMax: 999 }, 'options.dirtyEntriesMax');
  });

  it("uses the caller's `where` as the root of the path", () => {
    expectInvalid({ keyGroups: 0 }, 'module.yaml spec.engine.keyGroups', 'module.yaml spec.engine');
  });
});

describe('regressions', () => {
  // limits.ts accepts frameBytesMax up to ringBytes/2, but a ring's largest payload is
  // ringBytes/2 - 4 (the u32 length word shares the half-ring bound; see ring_buffer.ts). So a
  // config the validator accepts lets the engine build a frame the ring refuses with an
  // InvariantError. Every accepted config must let a frame of frameBytesMax bytes into its ring.
  it('every accepted (ringBytes, frameBytesMax) lets a frameBytesMax frame into the ring', () => {
    const rejected: string[] = [];
    for (const ringBytes of [4 * KiB, 64 * KiB, 1 * MiB]) {
      for (const frameBytesMax of [ringBytes / 2 - 8, ringBytes / 2 - 4, ringBytes / 2 - 3, ringBytes / 2 - 1, ringBytes / 2]) {
        let accepted = true;
        try {
          resolveEngineLimits({ ringBytes, frameBytesMax });
        } catch {
          accepted = false;
        }
        if (!accepted) continue;
        const ring = new RingProducer(allocateRing(ringBytes));
        let pushed: boolean | string;
        try {
          pushed = ring.tryPush(new Uint8Array(frameBytesMax));
        } catch (e) {
          pushed = (e as Error).message;
        }
        if (pushed !== true) rejected.push(`ringBytes=${ringBytes} frameBytesMax=${frameBytesMax}: ${String(pushed)}`);
      }
    }
    expect(rejected).toEqual([]);
  });

  // `key in LIMIT_SPECS` also finds Object.prototype's members, so these keys are silently
  // ignored instead of being reported as unknown.
  it('keys inherited from Object.prototype are unknown limits, not silently ignored', () => {
    expectInvalid({ constructor: 5 }, 'options.constructor');
    expectInvalid({ toString: 5 }, 'options.toString');
    expectInvalid(JSON.parse('{"__proto__": 5}') as Record<string, unknown>, 'options.__proto__');
  });

  // The "expected an integer" message formats the raw value with JSON.stringify, which throws a
  // TypeError for a BigInt (YAML parsers can produce them) or a circular object, so the caller
  // gets a TypeError instead of a CONFIG_INVALID naming the key.
  it('a BigInt or circular value is reported as CONFIG_INVALID, not a TypeError from formatting', () => {
    // A BigInt may be accepted as its number value or rejected, but never with a TypeError.
    let limits: ReturnType<typeof resolveEngineLimits> | undefined;
    try {
      limits = resolveEngineLimits({ batchMessagesMax: 10n });
    } catch {
      expectInvalid({ batchMessagesMax: 10n }, 'options.batchMessagesMax');
    }
    if (limits !== undefined) expect(limits.batchMessagesMax).toBe(10);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expectInvalid({ batchMessagesMax: circular }, 'options.batchMessagesMax');
  });
});
