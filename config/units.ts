/**
 * Durations and byte sizes as StateFun's module.yaml writes them.
 *
 * StateFun reads every duration with Flink's `TimeUtils.parseDuration`: an unsigned whole number,
 * optional blanks, then an optional unit label (case-insensitive); no label means milliseconds.
 * Byte sizes follow Flink's `MemorySize.parseBytes`: a whole number and an optional binary unit
 * (`k`/`kb` = 1024 bytes, `m`/`mb` = 1024 KiB, ...); no unit means bytes. Fractions and signs are
 * rejected, as upstream does, so a file that statefn accepts means the same thing to StateFun.
 */
import { ErrorCode, StatefnError } from '../shared/errors.js';

const MS_PER = { d: 86_400_000, h: 3_600_000, min: 60_000, s: 1000, ms: 1, us: 0.001, ns: 0.000001 } as const;

/**
 * Unit labels of Flink's TimeUtils (singular and plural forms). `m` for minutes is accepted too:
 * StateFun's own documentation writes `call: 2m`, and Flink releases after 1.14 accept it.
 */
const DURATION_UNITS: ReadonlyMap<string, number> = new Map<string, number>([
  ['d', MS_PER.d],
  ['day', MS_PER.d],
  ['days', MS_PER.d],
  ['h', MS_PER.h],
  ['hour', MS_PER.h],
  ['hours', MS_PER.h],
  ['m', MS_PER.min],
  ['min', MS_PER.min],
  ['minute', MS_PER.min],
  ['minutes', MS_PER.min],
  ['s', MS_PER.s],
  ['sec', MS_PER.s],
  ['secs', MS_PER.s],
  ['second', MS_PER.s],
  ['seconds', MS_PER.s],
  ['ms', MS_PER.ms],
  ['milli', MS_PER.ms],
  ['millis', MS_PER.ms],
  ['millisecond', MS_PER.ms],
  ['milliseconds', MS_PER.ms],
  ['µs', MS_PER.us],
  ['micro', MS_PER.us],
  ['micros', MS_PER.us],
  ['microsecond', MS_PER.us],
  ['microseconds', MS_PER.us],
  ['ns', MS_PER.ns],
  ['nano', MS_PER.ns],
  ['nanos', MS_PER.ns],
  ['nanosecond', MS_PER.ns],
  ['nanoseconds', MS_PER.ns],
]);

const KiB = 1024;
/** Flink's MemorySize units (all binary), plus the unambiguous IEC spellings `kib`, `mib`, ... */
const SIZE_UNITS: ReadonlyMap<string, number> = new Map<string, number>([
  ['b', 1],
  ['bytes', 1],
  ['k', KiB],
  ['kb', KiB],
  ['kib', KiB],
  ['kibibytes', KiB],
  ['m', KiB ** 2],
  ['mb', KiB ** 2],
  ['mib', KiB ** 2],
  ['mebibytes', KiB ** 2],
  ['g', KiB ** 3],
  ['gb', KiB ** 3],
  ['gib', KiB ** 3],
  ['gibibytes', KiB ** 3],
  ['t', KiB ** 4],
  ['tb', KiB ** 4],
  ['tib', KiB ** 4],
  ['tebibytes', KiB ** 4],
]);

/** A human-readable list of the accepted duration forms, for error messages. */
export const DURATION_FORMS = "a whole number with an optional unit: '500ms', '20s', '2m' or '2 min', '1h', '1d' (no unit = milliseconds)";
/** A human-readable list of the accepted size forms, for error messages. */
export const SIZE_FORMS = "a whole number with an optional binary unit: '512kb', '1mb', '2g' (no unit = bytes)";

function invalid(message: string): StatefnError {
  return new StatefnError(ErrorCode.CONFIG_INVALID, message);
}

function describe(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : `${String(v)} (${v === null ? 'null' : typeof v})`;
}

/** Split `"20 s"` into digits and a lower-cased label, as Flink does; undefined when malformed. */
function splitNumberAndUnit(text: string): { digits: string; unit: string } | undefined {
  const trimmed = text.trim();
  let pos = 0;
  while (pos < trimmed.length && trimmed.charCodeAt(pos) >= 48 && trimmed.charCodeAt(pos) <= 57) pos++;
  if (pos === 0) return undefined;
  return { digits: trimmed.slice(0, pos), unit: trimmed.slice(pos).trim().toLowerCase() };
}

/**
 * Parse a duration into whole milliseconds. A number (a YAML integer) is milliseconds. Sub-
 * millisecond units are rounded up to a whole millisecond so a positive duration never becomes 0.
 * Throws a CONFIG_INVALID StatefnError ("expected ..., got ...") without location: callers add it.
 */
export function parseDurationMs(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw invalid(`expected a duration (${DURATION_FORMS}), got ${describe(value)}`);
    }
    return value;
  }
  if (typeof value !== 'string') throw invalid(`expected a duration (${DURATION_FORMS}), got ${describe(value)}`);
  const parts = splitNumberAndUnit(value);
  if (!parts) throw invalid(`expected a duration (${DURATION_FORMS}), got ${describe(value)}`);
  const perUnit = parts.unit === '' ? 1 : DURATION_UNITS.get(parts.unit);
  if (perUnit === undefined) {
    throw invalid(
      `expected a duration (${DURATION_FORMS}), got ${describe(value)}: unknown unit '${parts.unit}'; ` +
        `known units are ${[...DURATION_UNITS.keys()].join(', ')}`,
    );
  }
  const ms = Math.ceil(Number(parts.digits) * perUnit);
  if (!Number.isSafeInteger(ms)) throw invalid(`duration ${describe(value)} is too large`);
  return ms;
}

/**
 * Parse a byte size into bytes. A number (a YAML integer) is bytes.
 * Throws a CONFIG_INVALID StatefnError ("expected ..., got ...") without location: callers add it.
 */
export function parseBytes(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw invalid(`expected a byte size (${SIZE_FORMS}), got ${describe(value)}`);
    return value;
  }
  if (typeof value !== 'string') throw invalid(`expected a byte size (${SIZE_FORMS}), got ${describe(value)}`);
  const parts = splitNumberAndUnit(value);
  if (!parts) throw invalid(`expected a byte size (${SIZE_FORMS}), got ${describe(value)}`);
  const multiplier = parts.unit === '' ? 1 : SIZE_UNITS.get(parts.unit);
  if (multiplier === undefined) {
    throw invalid(
      `expected a byte size (${SIZE_FORMS}), got ${describe(value)}: unknown unit '${parts.unit}'; ` +
        `known units are ${[...SIZE_UNITS.keys()].join(', ')}`,
    );
  }
  const bytes = Number(parts.digits) * multiplier;
  if (!Number.isSafeInteger(bytes)) throw invalid(`byte size ${describe(value)} is too large`);
  return bytes;
}

/** Format milliseconds with the largest unit that divides them exactly (`120000` → `2min`). */
export function formatDurationMs(ms: number): string {
  for (const [unit, per] of [
    ['d', MS_PER.d],
    ['h', MS_PER.h],
    ['min', MS_PER.min],
    ['s', MS_PER.s],
  ] as const) {
    if (ms !== 0 && ms % per === 0) return `${ms / per}${unit}`;
  }
  return `${ms}ms`;
}

/** Format bytes with the largest binary unit that divides them exactly (`1048576` → `1mb`). */
export function formatBytes(bytes: number): string {
  for (const [unit, per] of [
    ['tb', KiB ** 4],
    ['gb', KiB ** 3],
    ['mb', KiB ** 2],
    ['kb', KiB],
  ] as const) {
    if (bytes !== 0 && bytes % per === 0) return `${bytes / per}${unit}`;
  }
  return `${bytes}b`;
}
