/**
 * Typed reads of a module.yaml document with clear errors: the {@link ModuleReader} every kind
 * (StateFun endpoints, the engine config, each connector) validates its `spec` with, plus the
 * did-you-mean hint. Every failure names the file, line and column, the document, the path of
 * the value, what was expected and what was found, as a STATEFN_CONFIG_INVALID StatefnError
 * (STATEFN_MODULE_KIND_UNSUPPORTED for a kind statefn knows of but does not run).
 */
import { isTypeName } from '../api/address.js';
import type {
  ModuleReader,
  ModuleSource,
  ReaderFailOptions,
  ValueBounds,
  YamlEntry,
  YamlMap,
  YamlNode,
  YamlPos,
} from '../api/connector_kind.js';
import { DURATION_FORMS, SIZE_FORMS, parseBytes, parseDurationMs } from './units.js';
import { type DocContext, found, joinIndex, joinKey } from './yaml_tree.js';

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The closest candidate if it is close enough to be a typo. */

/** The closest candidate if it is close enough to be a typo of `input`. */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = levenshtein(input.toLowerCase(), c.toLowerCase());
    // On a tie the later candidate wins: kinds are listed oldest first (v1 before v2).
    if (d <= bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const allowed = Math.max(2, Math.floor(input.length / 4));
  return best !== undefined && bestDistance <= allowed ? best : undefined;
}

/** Typed reads of one document's tree. Every failure goes through `ctx.fail`. */
export class Reader implements ModuleReader {
  constructor(readonly ctx: DocContext) {}

  get source(): ModuleSource {
    return this.ctx.source;
  }

  fail(path: string, pos: YamlPos | undefined, message: string, opts: ReaderFailOptions = {}): never {
    return this.ctx.fail(path, pos, message, opts);
  }

  found(node: YamlNode | undefined): string {
    return found(node);
  }

  didYouMean(input: string, candidates: readonly string[]): string | undefined {
    return didYouMean(input, candidates);
  }

  key(base: string, key: string): string {
    return joinKey(base, key);
  }

  index(base: string, i: number): string {
    return joinIndex(base, i);
  }

  map(node: YamlNode | undefined, path: string, what: string, at?: YamlPos): YamlMap {
    if (node?.t !== 'map') this.ctx.fail(path, node?.pos ?? at, `expected a mapping (${what}), got ${found(node)}`);
    return node;
  }

  list(node: YamlNode | undefined, path: string, what: string, minItems: number, at?: YamlPos): readonly YamlNode[] {
    if (node?.t !== 'seq') this.ctx.fail(path, node?.pos ?? at, `expected a list (${what}), got ${found(node)}`);
    if (node.items.length < minItems) {
      this.ctx.fail(
        path,
        node.pos,
        `expected a list of at least ${minItems} item${minItems === 1 ? '' : 's'} (${what}), got an empty list`,
      );
    }
    return node.items;
  }

  /**
   * Reject keys outside `allowed`. `hints` explains keys that exist elsewhere or used to exist;
   * otherwise the message lists the allowed keys and suggests the nearest one.
   */
  onlyKeys(map: YamlMap, path: string, allowed: readonly string[], hints: Readonly<Record<string, string>> = {}): void {
    for (const entry of map.entries.values()) {
      if (allowed.includes(entry.key)) continue;
      const hint = hints[entry.key];
      const near = hint === undefined ? didYouMean(entry.key, allowed) : undefined;
      this.ctx.fail(joinKey(path, entry.key), entry.keyPos, `unknown key '${entry.key}'; allowed keys here are: ${allowed.join(', ')}`, {
        fix: hint ?? (near === undefined ? 'remove it' : `did you mean '${near}'?`),
      });
    }
  }

  required(map: YamlMap, key: string, path: string, what: string): YamlEntry {
    const entry = map.entries.get(key);
    if (entry === undefined) {
      this.ctx.fail(joinKey(path, key), map.pos, `required key '${key}' is missing; expected ${what}`);
    }
    return entry;
  }

  /** A string; numbers are accepted as their text (as StateFun's Jackson `asText()` does). */
  string(node: YamlNode, path: string, what: string, opts: { allowEmpty?: boolean } = {}): string {
    if (node.t !== 'scalar' || node.value === null || typeof node.value === 'boolean') {
      this.ctx.fail(path, node.pos, `expected a string (${what}), got ${found(node)}`);
    }
    const s = String(node.value);
    if (!opts.allowEmpty && s.trim() === '') this.ctx.fail(path, node.pos, `expected a non-empty string (${what}), got ${found(node)}`);
    return s;
  }

  /** An integer; a string of digits counts (interpolated values are strings). */
  int(node: YamlNode, path: string, what: string, bounds: ValueBounds): number {
    let v: number | undefined;
    if (node.t === 'scalar') {
      if (typeof node.value === 'number') v = node.value;
      else if (typeof node.value === 'string' && /^\s*-?\d+\s*$/.test(node.value)) v = Number(node.value);
    }
    if (v === undefined || !Number.isSafeInteger(v)) this.ctx.fail(path, node.pos, `expected an integer (${what}), got ${found(node)}`);
    if (v < bounds.min || v > bounds.max) {
      this.ctx.fail(path, node.pos, `expected an integer in [${bounds.min}, ${bounds.max}] (${what}), got ${v}`);
    }
    return v;
  }

  /** A finite number (fractions allowed). */
  number(node: YamlNode, path: string, what: string, bounds: ValueBounds & { minExclusive?: boolean }): number {
    let v: number | undefined;
    if (node.t === 'scalar') {
      if (typeof node.value === 'number') v = node.value;
      else if (typeof node.value === 'string' && node.value.trim() !== '' && Number.isFinite(Number(node.value))) v = Number(node.value);
    }
    if (v === undefined || !Number.isFinite(v)) this.ctx.fail(path, node.pos, `expected a number (${what}), got ${found(node)}`);
    const low = bounds.minExclusive ? v <= bounds.min : v < bounds.min;
    if (low || v > bounds.max) {
      this.ctx.fail(
        path,
        node.pos,
        `expected a number in ${bounds.minExclusive ? '(' : '['}${bounds.min}, ${bounds.max}] (${what}), got ${v}`,
      );
    }
    return v;
  }

  duration(node: YamlNode, path: string, what: string, bounds: ValueBounds): number {
    let ms: number;
    const raw = node.t === 'scalar' ? node.value : undefined;
    try {
      if (raw === undefined || raw === null || typeof raw === 'boolean') throw new Error('not a scalar');
      ms = parseDurationMs(raw);
    } catch {
      return this.ctx.fail(path, node.pos, `expected a duration (${what}) as ${DURATION_FORMS}, got ${found(node)}`);
    }
    if (ms < bounds.min || ms > bounds.max) {
      this.ctx.fail(
        path,
        node.pos,
        `expected a duration between ${bounds.min}ms and ${bounds.max}ms (${what}), got ${found(node)} = ${ms}ms`,
      );
    }
    return ms;
  }

  bytes(node: YamlNode, path: string, what: string, bounds: ValueBounds): number {
    let n: number;
    const raw = node.t === 'scalar' ? node.value : undefined;
    try {
      if (raw === undefined || raw === null || typeof raw === 'boolean') throw new Error('not a scalar');
      n = parseBytes(raw);
    } catch {
      return this.ctx.fail(path, node.pos, `expected a byte size (${what}) as ${SIZE_FORMS}, got ${found(node)}`);
    }
    if (n < bounds.min || n > bounds.max) {
      this.ctx.fail(
        path,
        node.pos,
        `expected a byte size between ${bounds.min} and ${bounds.max} bytes (${what}), got ${found(node)} = ${n} bytes`,
      );
    }
    return n;
  }

  typeName(node: YamlNode, path: string, what: string): string {
    const s = node.t === 'scalar' && typeof node.value === 'string' ? node.value : undefined;
    if (s === undefined || !isTypeName(s) || s.includes('*')) {
      const fix =
        s !== undefined && !s.includes('/') && s.trim() !== ''
          ? `write the type with its namespace, e.g. "com.example/${s.trim()}"`
          : "write it as 'namespace/name', e.g. com.example/greeter";
      this.ctx.fail(path, node.pos, `expected a type name 'namespace/name' (${what}), got ${found(node)}`, { fix });
    }
    return s;
  }

  oneOf<T extends string>(node: YamlNode, path: string, what: string, values: readonly T[], opts: { caseInsensitive?: boolean } = {}): T {
    const s = node.t === 'scalar' && typeof node.value === 'string' ? node.value : undefined;
    const hit = s === undefined ? undefined : values.find((v) => (opts.caseInsensitive ? v.toLowerCase() === s.toLowerCase() : v === s));
    if (hit === undefined) {
      const near = s === undefined ? undefined : didYouMean(s, values);
      this.ctx.fail(path, node.pos, `expected one of ${values.join(', ')} (${what}), got ${found(node)}`, {
        fix: near === undefined ? undefined : `did you mean '${near}'?`,
      });
    }
    return hit;
  }

  /**
   * Kafka-style properties: StateFun writes them as a list of one-key mappings
   * (`- foo.config: bar`); a plain mapping is accepted too. Values become strings.
   */
  properties(node: YamlNode | undefined, path: string): Record<string, string> {
    const out: Record<string, string> = {};
    if (node === undefined) return out;
    const put = (entry: YamlEntry, entryPath: string): void => {
      const v = entry.value;
      if (v.t !== 'scalar' || v.value === null) {
        this.ctx.fail(entryPath, v.pos, `expected a string, number or boolean (a Kafka property value), got ${found(v)}`);
      }
      if (Object.hasOwn(out, entry.key)) this.ctx.fail(entryPath, entry.keyPos, `property '${entry.key}' is set twice`);
      out[entry.key] = String(v.value);
    };
    if (node.t === 'map') {
      for (const entry of node.entries.values()) put(entry, joinKey(path, entry.key));
      return out;
    }
    if (node.t !== 'seq') {
      this.ctx.fail(path, node.pos, `expected a list of one-key mappings (e.g. '- max.poll.records: 500'), got ${found(node)}`);
    }
    node.items.forEach((item, i) => {
      const itemPath = joinIndex(path, i);
      if (item.t !== 'map' || item.entries.size !== 1) {
        const got = item.t === 'map' ? `a mapping with ${item.entries.size} keys` : found(item);
        this.ctx.fail(itemPath, item.pos, `expected a one-key mapping (e.g. '- max.poll.records: 500'), got ${got}`);
      }
      const entry = [...item.entries.values()][0]!;
      put(entry, joinKey(itemPath, entry.key));
    });
    return out;
  }
}
