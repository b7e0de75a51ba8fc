/**
 * The position-carrying tree a module.yaml document is read into (config/yaml_reader.ts reads
 * values from it): aliases expanded, `${VAR}` interpolated, every node knowing its line and
 * column, and `DocContext`, which words an error about any place in one document.
 */
import type { LineCounter } from 'yaml';
import { isAlias, isMap, isScalar, isSeq } from 'yaml';
import type { Document, Node as YamlSourceNode } from 'yaml';
import type { ModuleSource, ReaderFailOptions, YamlEntry, YamlNode, YamlPos } from '../api/connector_kind.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { moduleDocumentNodesMax, moduleNestingDepthMax } from '../shared/limits.js';

/** One document being read: knows how to word an error about any place in it. */
export class DocContext {
  /** The kind as written, once known: errors name it. */
  kind: string | undefined;
  /** Nodes built so far, aliases expanded (see moduleDocumentNodesMax). */
  nodes = 0;
  constructor(
    readonly file: string,
    readonly index: number,
    readonly line: number,
  ) {}

  get source(): ModuleSource {
    return { file: this.file, document: this.index, line: this.line };
  }

  /** `document #2 (io.statefun.kafka.v1/ingress, line 12)` */
  describe(): string {
    return `document #${this.index} (${this.kind === undefined ? '' : `${this.kind}, `}line ${this.line})`;
  }

  /** Throw the CONFIG_INVALID (or `opts.code`) error for the value at `path`. */
  fail(path: string, pos: YamlPos | undefined, message: string, opts: ReaderFailOptions = {}): never {
    const where = pos ? `${this.file}:${pos.line}:${pos.col}` : this.file;
    const at = path === '' ? '' : `, at ${path}`;
    const fix = opts.fix === undefined ? '' : `. Fix: ${opts.fix}`;
    throw new StatefnError(opts.code ?? ErrorCode.CONFIG_INVALID, `${where}: ${this.describe()}${at}: ${message}${fix}`, {
      cause: opts.cause,
    });
  }
}

/** The path of `key` under `base`: `spec.id`, or `spec["a b"]` for a key that is not an identifier. */
export function joinKey(base: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return base === '' ? key : `${base}.${key}`;
  return `${base}[${JSON.stringify(key)}]`;
}

/** The path of item `i` under `base`. */
export function joinIndex(base: string, i: number): string {
  return `${base}[${i}]`;
}

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Replace `${NAME}` and `${NAME:-default}` (default used when NAME is unset or empty, as in a
 * shell); `$${` is a literal `${`. The default is literal text up to the first `}`.
 */
function interpolate(s: string, env: Record<string, string | undefined>, fail: (message: string, fix: string) => never): string {
  if (!s.includes('${')) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    if (s.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (s.startsWith('${', i)) {
      const end = s.indexOf('}', i + 2);
      if (end < 0) {
        fail(`unterminated '\${' in ${JSON.stringify(s)}`, "close it with '}', or write '$${' for a literal '${'");
      }
      const body = s.slice(i + 2, end);
      const sep = body.indexOf(':-');
      const name = sep < 0 ? body : body.slice(0, sep);
      const fallback = sep < 0 ? undefined : body.slice(sep + 2);
      if (!VAR_NAME.test(name)) {
        fail(
          `'\${${body}}' in ${JSON.stringify(s)} is not a variable reference; expected \${NAME} or \${NAME:-default} with NAME ` +
            `made of letters, digits and '_'`,
          "write '$${' for a literal '${'",
        );
      }
      const value = env[name];
      if (value !== undefined && value !== '') out += value;
      else if (fallback !== undefined) out += fallback;
      else if (value === '') out += '';
      else {
        fail(
          `environment variable ${name} is not set and \${${name}} has no default`,
          `set ${name} in the environment, or give a default: \${${name}:-value}`,
        );
      }
      i = end + 1;
      continue;
    }
    out += s[i];
    i++;
  }
  return out;
}

function posOf(node: YamlSourceNode | null | undefined, lc: LineCounter, fallback: YamlPos): YamlPos {
  const offset = node?.range?.[0];
  if (offset === undefined) return fallback;
  const p = lc.linePos(offset);
  return { line: p.line, col: p.col };
}

/** Convert a yaml Node into the position-carrying tree, interpolating string scalars. */
export function toTree(
  node: YamlSourceNode | null | undefined,
  doc: Document.Parsed,
  ctx: DocContext,
  lc: LineCounter,
  env: Record<string, string | undefined>,
  path: string,
  fallback: YamlPos,
  depth: number,
): YamlNode {
  const pos = posOf(node, lc, fallback);
  if (depth > moduleNestingDepthMax) ctx.fail(path, pos, `nesting deeper than ${moduleNestingDepthMax} levels (a recursive alias?)`);
  if (++ctx.nodes > moduleDocumentNodesMax) {
    ctx.fail(
      path,
      pos,
      `more than ${moduleDocumentNodesMax} values once aliases are expanded; expected a module configuration (an alias bomb?)`,
    );
  }
  if (node === null || node === undefined) return { t: 'scalar', pos, value: null };
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (!target) ctx.fail(path, pos, `alias *${node.source} refers to no anchor`);
    return toTree(target, doc, ctx, lc, env, path, pos, depth + 1);
  }
  if (isMap(node)) {
    const entries = new Map<string, YamlEntry>();
    for (const pair of node.items) {
      const keyNode = pair.key as YamlSourceNode | null;
      const keyPos = posOf(keyNode, lc, pos);
      if (keyNode !== null && !isScalar(keyNode)) {
        ctx.fail(path, keyPos, 'expected a plain key, got a mapping or list used as a key');
      }
      const rawKey: unknown = keyNode === null ? null : keyNode.value;
      // A parsed key is null, a string, number, boolean or bigint, or an object (a tagged value).
      if (typeof rawKey !== 'string' && typeof rawKey !== 'number' && typeof rawKey !== 'boolean' && typeof rawKey !== 'bigint') {
        ctx.fail(path, keyPos, `expected a key, got ${rawKey === null || rawKey === undefined ? 'an empty key' : 'a non-scalar key'}`);
      }
      const key = String(rawKey);
      const childPath = joinKey(path, key);
      entries.set(key, {
        key,
        keyPos,
        value: toTree(pair.value as YamlSourceNode | null, doc, ctx, lc, env, childPath, keyPos, depth + 1),
      });
    }
    return { t: 'map', pos, entries };
  }
  if (isSeq(node)) {
    const items = node.items.map((item, i) => toTree(item as YamlSourceNode | null, doc, ctx, lc, env, joinIndex(path, i), pos, depth + 1));
    return { t: 'seq', pos, items };
  }
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'string') {
      const value = interpolate(v, env, (message, fix) => ctx.fail(path, pos, message, { fix }));
      return value === v ? { t: 'scalar', pos, value } : { t: 'scalar', pos, value, original: v };
    }
    if (v === null || v === undefined) return { t: 'scalar', pos, value: null };
    if (typeof v === 'number' || typeof v === 'boolean') return { t: 'scalar', pos, value: v };
    if (typeof v === 'bigint') return { t: 'scalar', pos, value: Number(v) };
    // Tagged values such as !!binary or a timestamp under another schema: keep their text.
    // A tagged Date or Uint8Array without source text prints through its own toString, which is the
    // text wanted here.
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a tagged value's own toString is meant
    return { t: 'scalar', pos, value: String(node.source ?? v) };
  }
  return ctx.fail(path, pos, 'expected a mapping, list or scalar');
}

/** A node described for an error message. */
export function found(node: YamlNode | undefined): string {
  if (node === undefined) return 'nothing (the key is missing)';
  if (node.t === 'map') return 'a mapping';
  if (node.t === 'seq') return `a list of ${node.items.length} item${node.items.length === 1 ? '' : 's'}`;
  const from = node.original === undefined ? '' : ` (interpolated from ${JSON.stringify(node.original)})`;
  if (node.value === null) return 'an empty value (null)';
  if (typeof node.value === 'string') return `${JSON.stringify(node.value)}${from}`;
  return `${String(node.value)} (a ${typeof node.value})`;
}
