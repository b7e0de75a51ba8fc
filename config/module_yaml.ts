/**
 * The module.yaml loader: reads a StateFun 3.x module file (one YAML document per component,
 * each `{kind, spec}`) plus statefn's own kinds, and turns it into typed, validated, defaulted
 * descriptors. Everything is checked here, once, eagerly: a bad file fails at startup with a
 * message naming the file, the line and column, the document (number and kind), the path inside
 * it, what was expected, what was found and, where we can tell, the fix.
 *
 * Compatibility notes (checked against apache/flink-statefun 3.3, see the report that came with
 * this file): field names, defaults and value formats follow the upstream binders. Where upstream
 * silently ignores something (unknown keys, a `classpath:` certificate, a misspelled key), statefn
 * rejects it, because a file that "works" while ignoring what its author wrote is worse than one
 * that fails with a clear message. statefn also adds environment-variable interpolation
 * (`${VAR}`, `${VAR:-default}`, `$${` for a literal `${`), which StateFun's users asked for.
 */
import type { KafkaStartupPosition } from '../connectors/kafka/kafka_ingress.js';
import type { KafkaDeliverySemantic } from '../connectors/kafka/kafka_egress.js';
import { resolve } from 'node:path';
import { readFile } from 'node:fs/promises';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseAllDocuments } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { isTypeName } from '../api/address.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { LIMIT_SPECS, resolveEngineLimits } from '../shared/limits.js';
import { DURATION_FORMS, SIZE_FORMS, parseBytes, parseDurationMs } from './units.js';

// ================================================================================================
//  Descriptors
// ================================================================================================

/** Where a descriptor came from, for messages raised later (by connectors or the runtime). */
export interface ModuleSource {
  readonly file: string;
  /** 1-based position of the document in the file's YAML stream; empty documents count too. */
  readonly document: number;
  /** Line where the document's content starts. */
  readonly line: number;
}

/** How the remote-function runtime talks to an endpoint (StateFun's `transport` section). */
export interface HttpTransport {
  /**
   * Which StateFun transport the settings were written for: `async` (`io.statefun.transports.v1/
   * async`, the v2 default) or `okhttp` (v1, or v2 with `type: io.statefun.transports.v1/okhttp`).
   */
  readonly type: 'async' | 'okhttp';
  /** Whole call including retries and backoff; after it the call has failed. */
  readonly callMs: number;
  /** One TCP connect attempt. */
  readonly connectMs: number;
  /** Per read operation; only when written (`timeouts.read`) or for okhttp (default 10s). */
  readonly readMs?: number;
  /** Per write operation; only when written (`timeouts.write`) or for okhttp (default 10s). */
  readonly writeMs?: number;
  /** Life of a pooled connection; 0 disables pooling. */
  readonly poolTtlMs: number;
  readonly poolSize: number;
  /** Largest request or response body. */
  readonly payloadMaxBytes: number;
  /** Mutual TLS material (file paths), from `trust_cacerts`, `client_cert`, `client_key`, `client_key_password`. */
  readonly tls?: HttpTls;
}

export interface HttpTls {
  readonly trustCaCertsFile?: string;
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
  /** A file holding the client key's password. */
  readonly clientKeyPasswordFile?: string;
}

/** `io.statefun.endpoints.v1/http` and `io.statefun.endpoints.v2/http`. */
export interface EndpointDocument {
  readonly kind: 'endpoint';
  readonly source: ModuleSource;
  /** Which upstream kind the document used. */
  readonly version: 'v1' | 'v2';
  /** `namespace/name` for one function type, or `namespace/*` for every type in a namespace. */
  readonly functions: string;
  /** The URL; `{function.name}` is replaced by the name part of the function type. */
  readonly urlPathTemplate: string;
  /** Messages queued per address while a request is in flight before back-pressure. */
  readonly maxNumBatchRequests: number;
  readonly transport: HttpTransport;
  /** statefn extension: `dead-letter` (default) or `restore` (fail and restore the last checkpoint). */
  readonly onFailure: 'dead-letter' | 'restore';
}

export type { KafkaDeliverySemantic, KafkaStartupPosition };

export interface KafkaIngressTopic {
  readonly topic: string;
  /** Type name given to each record value; the value bytes are used as they are. */
  readonly valueType: string;
  /** Function types every record is sent to; the record key is the function id. */
  readonly targets: readonly string[];
}

/** `io.statefun.kafka.v1/ingress`. */
export interface KafkaIngressDocument {
  readonly kind: 'kafka-ingress';
  readonly source: ModuleSource;
  readonly id: string;
  /** Bootstrap brokers, `host:port[,host:port...]`. */
  readonly address: string;
  readonly consumerGroupId: string;
  readonly startupPosition: KafkaStartupPosition;
  readonly autoOffsetResetPosition: 'earliest' | 'latest';
  readonly topics: readonly KafkaIngressTopic[];
  /** Extra Kafka consumer properties, as strings. */
  readonly properties: Readonly<Record<string, string>>;
  /** statefn extension: the topic for records that cannot be decoded or routed. */
  readonly deadLetterTopic?: string;
}

/** `io.statefun.kafka.v1/egress`. */
export interface KafkaEgressDocument {
  readonly kind: 'kafka-egress';
  readonly source: ModuleSource;
  readonly id: string;
  readonly address: string;
  readonly deliverySemantic: KafkaDeliverySemantic;
  /** Extra Kafka producer properties, as strings. */
  readonly properties: Readonly<Record<string, string>>;
}

export type GeneratorKeyDistribution = 'uniform' | { readonly type: 'zipf'; readonly exponent: number };

/** `io.statefn.generator.v1/ingress`: synthetic load, deterministic from `seed`. */
export interface GeneratorIngressDocument {
  readonly kind: 'generator-ingress';
  readonly source: ModuleSource;
  readonly id: string;
  /** Records per second; 0 = as fast as back-pressure allows. */
  readonly ratePerSec: number;
  /** Records to produce before stopping; undefined = forever. */
  readonly count: number | undefined;
  /** Distinct function ids (`0` .. `keySpace-1`). */
  readonly keySpace: number;
  readonly seed: number;
  readonly batchSize: number;
  readonly targets: readonly string[];
  /**
   * `io.statefun.types/long` (the value is the record index), `io.statefun.types/string` (the
   * index as a string) or any other type name, whose values are JSON `{"seq": i, "key": "<id>"}`.
   */
  readonly valueType: string;
  readonly keyDistribution: GeneratorKeyDistribution;
}

/** `io.statefn.http.v1/ingress`: messages POSTed over HTTP. */
export interface HttpIngressDocument {
  readonly kind: 'http-ingress';
  readonly source: ModuleSource;
  readonly id: string;
  readonly host: string;
  /** 0 = any free port. */
  readonly port: number;
  readonly bodyBytesMax: number;
  readonly requestsInFlightMax: number;
}

/** `io.statefn.file.v1/egress`: one line per record. */
export interface FileEgressDocument {
  readonly kind: 'file-egress';
  readonly source: ModuleSource;
  readonly id: string;
  /** A file path, or `-` for standard output. */
  readonly path: string;
}

/** `io.statefn.engine.v1/config`: engine options (`workers`, `stateDir`, any limit of limits.ts). */
export interface EngineConfigDocument {
  readonly kind: 'engine-config';
  readonly source: ModuleSource;
  /** Only the options the file sets, already converted (durations to ms, sizes to bytes) and checked. */
  readonly options: Readonly<Record<string, unknown>>;
}

export type ModuleDocument =
  | EndpointDocument
  | KafkaIngressDocument
  | KafkaEgressDocument
  | GeneratorIngressDocument
  | HttpIngressDocument
  | FileEgressDocument
  | EngineConfigDocument;

// ================================================================================================
//  Kinds and bounds
// ================================================================================================

export const MODULE_KINDS = {
  endpointV1: 'io.statefun.endpoints.v1/http',
  endpointV2: 'io.statefun.endpoints.v2/http',
  kafkaIngress: 'io.statefun.kafka.v1/ingress',
  kafkaEgress: 'io.statefun.kafka.v1/egress',
  generatorIngress: 'io.statefn.generator.v1/ingress',
  httpIngress: 'io.statefn.http.v1/ingress',
  fileEgress: 'io.statefn.file.v1/egress',
  engineConfig: 'io.statefn.engine.v1/config',
} as const;

/** Every kind the loader accepts. */
export const SUPPORTED_MODULE_KINDS: readonly string[] = Object.values(MODULE_KINDS);

/** Upstream kinds statefn knows about but does not run; named in their error. */
const UPSTREAM_UNSUPPORTED_KINDS: readonly string[] = ['io.statefun.kinesis.v1/ingress', 'io.statefun.kinesis.v1/egress'];

const TRANSPORT_ASYNC = 'io.statefun.transports.v1/async';
const TRANSPORT_OKHTTP = 'io.statefun.transports.v1/okhttp';

/** Bounds. A module file is configuration, not data: anything beyond these is a mistake. */
export const MODULE_FILE_BYTES_MAX = 8 * 1024 * 1024;
const DOCUMENTS_MAX = 10_000;
const NESTING_DEPTH_MAX = 64;
/** Nodes per document after alias expansion: stops alias bombs ("billion laughs"). */
const DOCUMENT_NODES_MAX = 250_000;
const INT32_MAX = 2_147_483_647;
const MAX_NUM_BATCH_REQUESTS_MAX = 1 << 20;
const TIMEOUT_MS_MAX = 7 * 86_400_000;
const WORKERS_MAX = 1024;
const KAFKA_TOPIC_LENGTH_MAX = 249;

// Upstream defaults (NettyRequestReplySpec, DefaultHttpRequestReplyClientSpec, HttpFunctionEndpointSpec).
const ENDPOINT_DEFAULTS = {
  maxNumBatchRequests: 1000,
  asyncCallMs: 120_000,
  asyncConnectMs: 20_000,
  /** When a `timeouts` block is present, upstream takes call/connect from it, defaulting to these. */
  timeoutsBlockCallMs: 60_000,
  timeoutsBlockConnectMs: 10_000,
  okhttpCallMs: 60_000,
  okhttpConnectMs: 10_000,
  okhttpReadMs: 10_000,
  okhttpWriteMs: 10_000,
  poolTtlMs: 15_000,
  poolSize: 1024,
  payloadMaxBytes: 32 * 1024 * 1024,
} as const;

// ================================================================================================
//  Public entry points
// ================================================================================================

/** Read and parse a module file. Every problem is a CONFIG_INVALID or MODULE_KIND_UNSUPPORTED StatefnError. */
export async function loadModuleYaml(file: string, env: Record<string, string | undefined> = process.env): Promise<ModuleDocument[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${file}: cannot read the module file: ${why}`, { cause: err });
  }
  if (bytes.length > MODULE_FILE_BYTES_MAX) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `${file}: module file is ${bytes.length} bytes; expected at most ${MODULE_FILE_BYTES_MAX} (is this the right file?)`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${file}: module file is not valid UTF-8 text`, { cause: err });
  }
  return parseModuleYaml(text, file, env);
}

/**
 * Parse module YAML text. `file` names the source in messages; `env` (default `process.env`)
 * supplies `${VAR}` interpolation.
 */
export function parseModuleYaml(text: string, file: string, env: Record<string, string | undefined> = process.env): ModuleDocument[] {
  if (text.length > MODULE_FILE_BYTES_MAX) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${file}: module text is ${text.length} characters; expected at most ${MODULE_FILE_BYTES_MAX}`);
  }
  const lineCounter = new LineCounter();
  // `uniqueKeys` (the default) makes a key written twice a parse error rather than "last one wins".
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(docs)) return []; // an empty stream (only comments or nothing)
  if (docs.length > DOCUMENTS_MAX) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${file}: ${docs.length} YAML documents; expected at most ${DOCUMENTS_MAX}`);
  }

  const parsed: Parsed[] = [];
  docs.forEach((doc, i) => {
    const item = parseDocument(doc, i + 1, file, lineCounter, env);
    if (item) parsed.push(item);
  });
  checkDuplicates(parsed);
  return parsed.map((p) => p.doc);
}

/** True if `typename` (`namespace/name`) is served by this endpoint. */
export function endpointMatches(endpoint: Pick<EndpointDocument, 'functions'>, typename: string): boolean {
  const slash = endpoint.functions.lastIndexOf('/');
  const name = endpoint.functions.slice(slash + 1);
  if (name !== '*') return endpoint.functions === typename;
  const t = typename.lastIndexOf('/');
  return t > 0 && typename.slice(0, t) === endpoint.functions.slice(0, slash);
}

/** The URL for a function type: `{function.name}` replaced by the type's name (as upstream's UrlPathTemplate). */
export function endpointUrl(endpoint: Pick<EndpointDocument, 'urlPathTemplate'>, typename: string): string {
  const name = typename.slice(typename.lastIndexOf('/') + 1);
  return endpoint.urlPathTemplate.split(FUNCTION_NAME_PLACEHOLDER).join(name);
}

// ================================================================================================
//  A position-carrying tree of the YAML, with interpolation applied
// ================================================================================================

interface Pos {
  readonly line: number;
  readonly col: number;
}

interface YMap {
  readonly t: 'map';
  readonly pos: Pos;
  /** Insertion-ordered. */
  readonly entries: ReadonlyMap<string, YEntry>;
}
interface YEntry {
  readonly key: string;
  readonly keyPos: Pos;
  readonly value: YNode;
}
interface YSeq {
  readonly t: 'seq';
  readonly pos: Pos;
  readonly items: readonly YNode[];
}
interface YScalar {
  readonly t: 'scalar';
  readonly pos: Pos;
  readonly value: string | number | boolean | null;
  /** The text before interpolation, when interpolation changed it. */
  readonly original?: string;
}
type YNode = YMap | YSeq | YScalar;

/** One document being read: knows how to word an error about any place in it. */
class DocContext {
  kind: string | undefined;
  /** Nodes built so far, aliases expanded (see DOCUMENT_NODES_MAX). */
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

  fail(path: string, pos: Pos | undefined, message: string, opts: { fix?: string; code?: ErrorCode; cause?: unknown } = {}): never {
    const where = pos ? `${this.file}:${pos.line}:${pos.col}` : this.file;
    const at = path === '' ? '' : `, at ${path}`;
    const fix = opts.fix === undefined ? '' : `. Fix: ${opts.fix}`;
    throw new StatefnError(opts.code ?? ErrorCode.CONFIG_INVALID, `${where}: ${this.describe()}${at}: ${message}${fix}`, {
      cause: opts.cause,
    });
  }
}

function joinKey(base: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return base === '' ? key : `${base}.${key}`;
  return `${base}[${JSON.stringify(key)}]`;
}

function joinIndex(base: string, i: number): string {
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
          `'\${${body}}' in ${JSON.stringify(s)} is not a variable reference; expected \${NAME} or \${NAME:-default} with NAME made of letters, digits and '_'`,
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

function posOf(node: YamlNode | null | undefined, lc: LineCounter, fallback: Pos): Pos {
  const offset = node?.range?.[0];
  if (offset === undefined) return fallback;
  const p = lc.linePos(offset);
  return { line: p.line, col: p.col };
}

/** Convert a yaml Node into the position-carrying tree, interpolating string scalars. */
function toTree(
  node: YamlNode | null | undefined,
  doc: Document.Parsed,
  ctx: DocContext,
  lc: LineCounter,
  env: Record<string, string | undefined>,
  path: string,
  fallback: Pos,
  depth: number,
): YNode {
  const pos = posOf(node, lc, fallback);
  if (depth > NESTING_DEPTH_MAX) ctx.fail(path, pos, `nesting deeper than ${NESTING_DEPTH_MAX} levels (a recursive alias?)`);
  if (++ctx.nodes > DOCUMENT_NODES_MAX) {
    ctx.fail(path, pos, `more than ${DOCUMENT_NODES_MAX} values once aliases are expanded; expected a module configuration (an alias bomb?)`);
  }
  if (node === null || node === undefined) return { t: 'scalar', pos, value: null };
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (!target) ctx.fail(path, pos, `alias *${node.source} refers to no anchor`);
    return toTree(target, doc, ctx, lc, env, path, pos, depth + 1);
  }
  if (isMap(node)) {
    const entries = new Map<string, YEntry>();
    for (const pair of node.items) {
      const keyNode = pair.key as YamlNode | null;
      const keyPos = posOf(keyNode, lc, pos);
      if (keyNode !== null && !isScalar(keyNode)) {
        ctx.fail(path, keyPos, 'expected a plain key, got a mapping or list used as a key');
      }
      const rawKey = keyNode === null ? null : keyNode.value;
      if (rawKey === null || rawKey === undefined || typeof rawKey === 'object') {
        ctx.fail(path, keyPos, `expected a key, got ${rawKey === null || rawKey === undefined ? 'an empty key' : 'a non-scalar key'}`);
      }
      const key = String(rawKey);
      const childPath = joinKey(path, key);
      entries.set(key, { key, keyPos, value: toTree(pair.value as YamlNode | null, doc, ctx, lc, env, childPath, keyPos, depth + 1) });
    }
    return { t: 'map', pos, entries };
  }
  if (isSeq(node)) {
    const items = node.items.map((item, i) => toTree(item as YamlNode | null, doc, ctx, lc, env, joinIndex(path, i), pos, depth + 1));
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
    return { t: 'scalar', pos, value: String(node.source ?? v) };
  }
  return ctx.fail(path, pos, 'expected a mapping, list or scalar');
}

// ================================================================================================
//  Reading values with clear errors
// ================================================================================================

function found(node: YNode | undefined): string {
  if (node === undefined) return 'nothing (the key is missing)';
  if (node.t === 'map') return 'a mapping';
  if (node.t === 'seq') return `a list of ${node.items.length} item${node.items.length === 1 ? '' : 's'}`;
  const from = node.original === undefined ? '' : ` (interpolated from ${JSON.stringify(node.original)})`;
  if (node.value === null) return 'an empty value (null)';
  if (typeof node.value === 'string') return `${JSON.stringify(node.value)}${from}`;
  return `${String(node.value)} (a ${typeof node.value})`;
}

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
function didYouMean(input: string, candidates: readonly string[]): string | undefined {
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

interface IntBounds {
  min: number;
  max: number;
}

/** Typed reads of one document's tree. Every failure goes through `ctx.fail`. */
class Reader {
  constructor(readonly ctx: DocContext) {}

  map(node: YNode | undefined, path: string, what: string, at?: Pos): YMap {
    if (node?.t !== 'map') this.ctx.fail(path, node?.pos ?? at, `expected a mapping (${what}), got ${found(node)}`);
    return node;
  }

  list(node: YNode | undefined, path: string, what: string, minItems: number, at?: Pos): readonly YNode[] {
    if (node?.t !== 'seq') this.ctx.fail(path, node?.pos ?? at, `expected a list (${what}), got ${found(node)}`);
    if (node.items.length < minItems) {
      this.ctx.fail(path, node.pos, `expected a list of at least ${minItems} item${minItems === 1 ? '' : 's'} (${what}), got an empty list`);
    }
    return node.items;
  }

  /**
   * Reject keys outside `allowed`. `hints` explains keys that exist elsewhere or used to exist;
   * otherwise the message lists the allowed keys and suggests the nearest one.
   */
  onlyKeys(map: YMap, path: string, allowed: readonly string[], hints: Readonly<Record<string, string>> = {}): void {
    for (const entry of map.entries.values()) {
      if (allowed.includes(entry.key)) continue;
      const hint = hints[entry.key];
      const near = hint === undefined ? didYouMean(entry.key, allowed) : undefined;
      this.ctx.fail(
        joinKey(path, entry.key),
        entry.keyPos,
        `unknown key '${entry.key}'; allowed keys here are: ${allowed.join(', ')}`,
        { fix: hint ?? (near === undefined ? 'remove it' : `did you mean '${near}'?`) },
      );
    }
  }

  required(map: YMap, key: string, path: string, what: string): YEntry {
    const entry = map.entries.get(key);
    if (entry === undefined) {
      this.ctx.fail(joinKey(path, key), map.pos, `required key '${key}' is missing; expected ${what}`);
    }
    return entry;
  }

  /** A string; numbers are accepted as their text (as StateFun's Jackson `asText()` does). */
  string(node: YNode, path: string, what: string, opts: { allowEmpty?: boolean } = {}): string {
    if (node.t !== 'scalar' || node.value === null || typeof node.value === 'boolean') {
      this.ctx.fail(path, node.pos, `expected a string (${what}), got ${found(node)}`);
    }
    const s = String(node.value);
    if (!opts.allowEmpty && s.trim() === '') this.ctx.fail(path, node.pos, `expected a non-empty string (${what}), got ${found(node)}`);
    return s;
  }

  /** An integer; a string of digits counts (interpolated values are strings). */
  int(node: YNode, path: string, what: string, bounds: IntBounds): number {
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
  number(node: YNode, path: string, what: string, bounds: IntBounds & { minExclusive?: boolean }): number {
    let v: number | undefined;
    if (node.t === 'scalar') {
      if (typeof node.value === 'number') v = node.value;
      else if (typeof node.value === 'string' && node.value.trim() !== '' && Number.isFinite(Number(node.value))) v = Number(node.value);
    }
    if (v === undefined || !Number.isFinite(v)) this.ctx.fail(path, node.pos, `expected a number (${what}), got ${found(node)}`);
    const low = bounds.minExclusive ? v <= bounds.min : v < bounds.min;
    if (low || v > bounds.max) {
      this.ctx.fail(path, node.pos, `expected a number in ${bounds.minExclusive ? '(' : '['}${bounds.min}, ${bounds.max}] (${what}), got ${v}`);
    }
    return v;
  }

  duration(node: YNode, path: string, what: string, bounds: IntBounds): number {
    let ms: number;
    const raw = node.t === 'scalar' ? node.value : undefined;
    try {
      if (raw === undefined || raw === null || typeof raw === 'boolean') throw new Error('not a scalar');
      ms = parseDurationMs(raw);
    } catch {
      return this.ctx.fail(path, node.pos, `expected a duration (${what}) as ${DURATION_FORMS}, got ${found(node)}`);
    }
    if (ms < bounds.min || ms > bounds.max) {
      this.ctx.fail(path, node.pos, `expected a duration between ${bounds.min}ms and ${bounds.max}ms (${what}), got ${found(node)} = ${ms}ms`);
    }
    return ms;
  }

  bytes(node: YNode, path: string, what: string, bounds: IntBounds): number {
    let n: number;
    const raw = node.t === 'scalar' ? node.value : undefined;
    try {
      if (raw === undefined || raw === null || typeof raw === 'boolean') throw new Error('not a scalar');
      n = parseBytes(raw);
    } catch {
      return this.ctx.fail(path, node.pos, `expected a byte size (${what}) as ${SIZE_FORMS}, got ${found(node)}`);
    }
    if (n < bounds.min || n > bounds.max) {
      this.ctx.fail(path, node.pos, `expected a byte size between ${bounds.min} and ${bounds.max} bytes (${what}), got ${found(node)} = ${n} bytes`);
    }
    return n;
  }

  typeName(node: YNode, path: string, what: string): string {
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

  oneOf<T extends string>(node: YNode, path: string, what: string, values: readonly T[], opts: { caseInsensitive?: boolean } = {}): T {
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
  properties(node: YNode | undefined, path: string): Record<string, string> {
    const out: Record<string, string> = {};
    if (node === undefined) return out;
    const put = (entry: YEntry, entryPath: string): void => {
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
        this.ctx.fail(itemPath, item.pos, `expected a one-key mapping (e.g. '- max.poll.records: 500'), got ${item.t === 'map' ? `a mapping with ${item.entries.size} keys` : found(item)}`);
      }
      const entry = [...item.entries.values()][0]!;
      put(entry, joinKey(itemPath, entry.key));
    });
    return out;
  }
}

// ================================================================================================
//  Documents
// ================================================================================================

interface Parsed {
  readonly doc: ModuleDocument;
  readonly ctx: DocContext;
  /** Position of the id (or `functions`) for duplicate messages. */
  readonly idPos: Pos;
}

const LEGACY_FORMAT_HELP =
  "statefn reads the StateFun 3.1+ module format: one YAML document per component, separated by '---', " +
  "each a mapping with 'kind' and 'spec', e.g.\n" +
  '  kind: io.statefun.endpoints.v2/http\n' +
  '  spec:\n' +
  '    functions: com.example/*\n' +
  '    urlPathTemplate: http://functions:8000/{function.name}\n' +
  '  ---\n' +
  '  kind: io.statefun.kafka.v1/ingress\n' +
  '  spec: ...\n' +
  "Each entry of the old module.spec.endpoints/ingresses/egresses becomes its own document " +
  '(see the StateFun 3.1 docs, "Module Configuration")';

function parseDocument(
  doc: Document.Parsed,
  index: number,
  file: string,
  lc: LineCounter,
  env: Record<string, string | undefined>,
): Parsed | undefined {
  const contents = doc.contents as YamlNode | null;
  const startOffset = contents?.range?.[0] ?? doc.range[0];
  const start = lc.linePos(startOffset);
  const ctx: DocContext = new DocContext(file, index, start.line);

  // Label errors with the kind as written, before anything else can fail.
  if (isMap(contents)) {
    for (const pair of contents.items) {
      if (isScalar(pair.key) && pair.key.value === 'kind' && isScalar(pair.value) && typeof pair.value.value === 'string') {
        ctx.kind = pair.value.value;
      }
    }
  }

  const parseError = doc.errors[0];
  if (parseError !== undefined) {
    const lp = parseError.linePos?.[0];
    const firstLine = parseError.message.split('\n')[0] ?? parseError.message;
    ctx.fail('', lp ? { line: lp.line, col: lp.col } : undefined, `invalid YAML (${parseError.code}): ${firstLine}`, {
      cause: parseError,
    });
  }

  // Empty documents (nothing, or only comments, between two '---') are skipped, as upstream does.
  if (contents === null || (isScalar(contents) && (contents.value === null || contents.value === undefined))) return undefined;

  const root = toTree(contents, doc, ctx, lc, env, '', { line: start.line, col: start.col }, 0);
  if (root.t !== 'map') {
    ctx.fail('', root.pos, `expected a mapping with 'kind' and 'spec', got ${found(root)}`, {
      fix: 'write the component as\n  kind: <kind>\n  spec:\n    ...',
    });
  }

  if (!root.entries.has('kind') && (root.entries.has('version') || root.entries.has('module'))) {
    const version = root.entries.get('version')?.value;
    const v = version?.t === 'scalar' && version.value !== null ? ` ${JSON.stringify(String(version.value))}` : '';
    ctx.fail('', root.pos, `expected a component {kind, spec}, got the legacy StateFun 2.x/3.0 module format (top-level 'version:${v}' and 'module:'), which statefn does not read`, {
      fix: LEGACY_FORMAT_HELP,
    });
  }

  const r = new Reader(ctx);
  r.onlyKeys(root, '', ['kind', 'spec']);
  const kindEntry = r.required(root, 'kind', '', `a component kind, one of ${SUPPORTED_MODULE_KINDS.join(', ')}`);
  const kind = r.string(kindEntry.value, 'kind', 'the component kind');
  ctx.kind = kind;
  checkKind(ctx, kind, kindEntry.value.pos);

  const specEntry = r.required(root, 'spec', '', `the ${kind} specification (a mapping)`);
  const spec = r.map(specEntry.value, 'spec', `the ${kind} specification`);

  switch (kind) {
    case MODULE_KINDS.endpointV1:
      return parseEndpoint(r, spec, 'v1');
    case MODULE_KINDS.endpointV2:
      return parseEndpoint(r, spec, 'v2');
    case MODULE_KINDS.kafkaIngress:
      return parseKafkaIngress(r, spec);
    case MODULE_KINDS.kafkaEgress:
      return parseKafkaEgress(r, spec);
    case MODULE_KINDS.generatorIngress:
      return parseGeneratorIngress(r, spec);
    case MODULE_KINDS.httpIngress:
      return parseHttpIngress(r, spec);
    case MODULE_KINDS.fileEgress:
      return parseFileEgress(r, spec);
    case MODULE_KINDS.engineConfig:
      return parseEngineConfig(r, spec);
    default:
      // checkKind rejected everything else.
      return ctx.fail('kind', kindEntry.value.pos, `unhandled kind ${kind}`);
  }
}

function checkKind(ctx: DocContext, kind: string, pos: Pos): void {
  if (SUPPORTED_MODULE_KINDS.includes(kind)) return;
  const near = didYouMean(kind, SUPPORTED_MODULE_KINDS);
  const list = `statefn supports: ${SUPPORTED_MODULE_KINDS.join(', ')}`;
  if (UPSTREAM_UNSUPPORTED_KINDS.includes(kind)) {
    ctx.fail('kind', pos, `kind '${kind}' (AWS Kinesis) is a StateFun kind that statefn does not support; ${list}`, {
      code: ErrorCode.MODULE_KIND_UNSUPPORTED,
      fix: 'remove this document; to keep the data flowing, bridge the stream to Kafka and use io.statefun.kafka.v1/ingress or egress',
    });
  }
  const fix = near === undefined ? undefined : `did you mean '${near}'?`;
  if (kind.startsWith('io.statefun.')) {
    ctx.fail('kind', pos, `kind '${kind}' is not a StateFun kind statefn supports; ${list}`, {
      code: ErrorCode.MODULE_KIND_UNSUPPORTED,
      fix: fix ?? 'remove this document or replace it with a supported kind',
    });
  }
  ctx.fail('kind', pos, `unknown kind '${kind}'; ${list}`, { fix: fix ?? 'use one of the supported kinds' });
}

// ---- endpoints ---------------------------------------------------------------------------------

const FUNCTION_NAME_PLACEHOLDER = '{function.name}';
const URL_SCHEMES = ['http:', 'https:', 'http+unix:', 'https+unix:'];

function parseFunctionsPattern(r: Reader, node: YNode, path: string): string {
  const s = r.string(node, path, "the function types served: 'namespace/name' or 'namespace/*'");
  const slash = s.lastIndexOf('/');
  const namespace = slash > 0 ? s.slice(0, slash) : '';
  const name = slash > 0 ? s.slice(slash + 1) : '';
  const valid = namespace !== '' && name !== '' && !namespace.includes('*') && (name === '*' || !name.includes('*')) && isTypeName(`${namespace}/${name === '*' ? 'x' : name}`);
  if (!valid) {
    r.ctx.fail(path, node.pos, `expected 'namespace/name' or 'namespace/*', got ${found(node)}`, {
      fix: slash < 0 ? `add the namespace, e.g. "${s}/*" or "com.example/${s}"` : "only a whole name may be '*' (upstream TargetFunctions)",
    });
  }
  return s;
}

function parseUrlTemplate(r: Reader, node: YNode, path: string): string {
  const template = r.string(node, path, 'the endpoint URL');
  for (const m of template.matchAll(/\{[^}]*\}/g)) {
    if (m[0] !== FUNCTION_NAME_PLACEHOLDER) {
      r.ctx.fail(path, node.pos, `unknown placeholder ${m[0]} in ${JSON.stringify(template)}; only ${FUNCTION_NAME_PLACEHOLDER} is replaced (by the function type's name)`);
    }
  }
  let url: URL;
  try {
    url = new URL(template.split(FUNCTION_NAME_PLACEHOLDER).join('fn'));
  } catch {
    return r.ctx.fail(path, node.pos, `expected an absolute URL such as http://functions:8000/{function.name}, got ${found(node)}`);
  }
  if (!URL_SCHEMES.includes(url.protocol)) {
    r.ctx.fail(path, node.pos, `expected a URL with scheme http, https, http+unix or https+unix, got ${found(node)} (scheme ${url.protocol.slice(0, -1)})`);
  }
  if (url.protocol.endsWith('+unix:')) {
    // Upstream (UnixDomainHttpEndpoint): the socket file is the first path segment ending in .sock.
    if (!url.pathname.split('/').some((seg) => seg.endsWith('.sock'))) {
      r.ctx.fail(path, node.pos, `expected a UNIX-socket URL whose path contains the socket file ending in '.sock', got ${found(node)}`, {
        fix: 'write it as http+unix:///path/to/socket.sock/url/path',
      });
    }
  } else if (url.hostname === '') {
    r.ctx.fail(path, node.pos, `expected a URL with a host, got ${found(node)}`);
  }
  return template;
}

function parseEndpoint(r: Reader, spec: YMap, version: 'v1' | 'v2'): Parsed {
  const allowed =
    version === 'v1'
      ? ['functions', 'urlPathTemplate', 'maxNumBatchRequests', 'timeouts', 'onFailure']
      : ['functions', 'urlPathTemplate', 'maxNumBatchRequests', 'transport', 'onFailure'];
  const hints: Record<string, string> =
    version === 'v1'
      ? { transport: `'transport' is read only by ${MODULE_KINDS.endpointV2}; change the kind, or move the timeouts to spec.timeouts` }
      : { timeouts: `in ${MODULE_KINDS.endpointV2} timeouts go under spec.transport (spec.transport.call / spec.transport.connect)` };
  r.onlyKeys(spec, 'spec', allowed, hints);

  const functionsEntry = r.required(spec, 'functions', 'spec', "the function types served: 'namespace/name' or 'namespace/*'");
  const functions = parseFunctionsPattern(r, functionsEntry.value, 'spec.functions');
  const urlPathTemplate = parseUrlTemplate(r, r.required(spec, 'urlPathTemplate', 'spec', 'the endpoint URL').value, 'spec.urlPathTemplate');
  const batch = spec.entries.get('maxNumBatchRequests');
  const maxNumBatchRequests = batch
    ? r.int(batch.value, 'spec.maxNumBatchRequests', 'messages queued per address before back-pressure', { min: 1, max: MAX_NUM_BATCH_REQUESTS_MAX })
    : ENDPOINT_DEFAULTS.maxNumBatchRequests;

  let transport: HttpTransport;
  if (version === 'v1') {
    // v1 hands the whole spec to the OkHttp transport, which reads only `timeouts`.
    transport = parseOkHttpTimeouts(r, spec.entries.get('timeouts')?.value, 'spec.timeouts');
  } else {
    const t = spec.entries.get('transport');
    transport = t === undefined ? defaultAsyncTransport() : parseTransport(r, r.map(t.value, 'spec.transport', 'the transport settings'), 'spec.transport');
  }

  // statefn extension: what happens to a batch whose call failed after its retries.
  const failEntry = spec.entries.get('onFailure');
  const onFailure = failEntry
    ? r.oneOf(failEntry.value, 'spec.onFailure', 'what happens to a batch whose call failed after its retries', ['dead-letter', 'restore'] as const)
    : 'dead-letter';

  const doc: EndpointDocument = {
    kind: 'endpoint',
    source: r.ctx.source,
    version,
    functions,
    urlPathTemplate,
    maxNumBatchRequests,
    transport,
    onFailure,
  };
  return { doc, ctx: r.ctx, idPos: functionsEntry.value.pos };
}

function defaultAsyncTransport(): HttpTransport {
  return {
    type: 'async',
    callMs: ENDPOINT_DEFAULTS.asyncCallMs,
    connectMs: ENDPOINT_DEFAULTS.asyncConnectMs,
    poolTtlMs: ENDPOINT_DEFAULTS.poolTtlMs,
    poolSize: ENDPOINT_DEFAULTS.poolSize,
    payloadMaxBytes: ENDPOINT_DEFAULTS.payloadMaxBytes,
  };
}

const TIMEOUT_BOUNDS = { min: 1, max: TIMEOUT_MS_MAX };
const ASYNC_KEYS = ['type', 'call', 'connect', 'pool_ttl', 'pool_size', 'payload_max_bytes', 'trust_cacerts', 'client_cert', 'client_key', 'client_key_password', 'timeouts'];

function parseTransport(r: Reader, transport: YMap, path: string): HttpTransport {
  const typeEntry = transport.entries.get('type');
  const type = typeEntry
    ? r.oneOf(typeEntry.value, `${path}.type`, 'the transport client', [TRANSPORT_ASYNC, TRANSPORT_OKHTTP])
    : TRANSPORT_ASYNC;

  if (type === TRANSPORT_OKHTTP) {
    const asyncOnly = Object.fromEntries(
      ASYNC_KEYS.filter((k) => k !== 'type' && k !== 'timeouts').map((k) => [
        k,
        `'${k}' is a setting of the async transport (${TRANSPORT_ASYNC}, the default); remove 'type: ${TRANSPORT_OKHTTP}' or remove '${k}'`,
      ]),
    );
    r.onlyKeys(transport, path, ['type', 'timeouts'], asyncOnly);
    return parseOkHttpTimeouts(r, transport.entries.get('timeouts')?.value, `${path}.timeouts`);
  }

  r.onlyKeys(transport, path, ASYNC_KEYS);
  const get = (key: string): YNode | undefined => transport.entries.get(key)?.value;

  // Upstream NettyRequestReplySpec: when a `timeouts` block is present its call/connect win, with
  // the OkHttp-era defaults (1 min / 10 s); otherwise the flat keys, defaulting to 2 min / 20 s.
  // Writing the same timeout both ways is ambiguous, so statefn rejects it.
  const timeoutsNode = get('timeouts');
  let nested: { call?: number; connect?: number; read?: number; write?: number } = {};
  if (timeoutsNode !== undefined) {
    const tmap = r.map(timeoutsNode, `${path}.timeouts`, 'call/connect/read/write timeouts');
    r.onlyKeys(tmap, `${path}.timeouts`, ['call', 'connect', 'read', 'write']);
    nested = readTimeouts(r, tmap, `${path}.timeouts`);
    for (const key of ['call', 'connect'] as const) {
      const flat = transport.entries.get(key);
      if (flat !== undefined && nested[key] !== undefined) {
        r.ctx.fail(`${path}.${key}`, flat.keyPos, `the ${key} timeout is set twice, as ${path}.${key} and ${path}.timeouts.${key}`, {
          fix: 'keep one of them',
        });
      }
    }
  }
  const flatCall = get('call');
  const flatConnect = get('connect');
  const callMs =
    nested.call ??
    (flatCall ? r.duration(flatCall, `${path}.call`, 'the whole call, including retries', TIMEOUT_BOUNDS) : undefined) ??
    (timeoutsNode ? ENDPOINT_DEFAULTS.timeoutsBlockCallMs : ENDPOINT_DEFAULTS.asyncCallMs);
  const explicitConnect =
    nested.connect ?? (flatConnect ? r.duration(flatConnect, `${path}.connect`, 'one connection attempt', TIMEOUT_BOUNDS) : undefined);
  const defaultConnect = timeoutsNode ? ENDPOINT_DEFAULTS.timeoutsBlockConnectMs : ENDPOINT_DEFAULTS.asyncConnectMs;
  if (explicitConnect !== undefined && explicitConnect > callMs) {
    const at = flatConnect ?? (timeoutsNode?.t === 'map' ? timeoutsNode.entries.get('connect')?.value : undefined);
    r.ctx.fail(`${path}.connect`, at?.pos, `connect timeout (${explicitConnect}ms) is longer than the call timeout (${callMs}ms)`, {
      fix: 'lower connect or raise call',
    });
  }
  // A defaulted connect timeout never exceeds the call timeout: the call bounds every attempt.
  const connectMs = explicitConnect ?? Math.min(defaultConnect, callMs);

  const poolTtl = get('pool_ttl');
  const poolSize = get('pool_size');
  const payload = get('payload_max_bytes');
  const result: {
    -readonly [K in keyof HttpTransport]: HttpTransport[K];
  } = {
    type: 'async',
    callMs,
    connectMs,
    poolTtlMs: poolTtl ? r.duration(poolTtl, `${path}.pool_ttl`, 'life of a pooled connection; 0 disables pooling', { min: 0, max: TIMEOUT_MS_MAX }) : ENDPOINT_DEFAULTS.poolTtlMs,
    poolSize: poolSize ? r.int(poolSize, `${path}.pool_size`, 'maximum connections in the pool', { min: 1, max: 1 << 20 }) : ENDPOINT_DEFAULTS.poolSize,
    payloadMaxBytes: payload
      ? r.bytes(payload, `${path}.payload_max_bytes`, 'largest request or response body', { min: 1, max: INT32_MAX })
      : ENDPOINT_DEFAULTS.payloadMaxBytes,
  };
  if (nested.read !== undefined) result.readMs = nested.read;
  if (nested.write !== undefined) result.writeMs = nested.write;

  const tls: { -readonly [K in keyof HttpTls]: HttpTls[K] } = {};
  const tlsKeys = [
    ['trust_cacerts', 'trustCaCertsFile', 'trusted CA certificates (PEM)'],
    ['client_cert', 'clientCertFile', 'client certificate (PEM)'],
    ['client_key', 'clientKeyFile', 'client private key (PKCS8)'],
    ['client_key_password', 'clientKeyPasswordFile', 'a file holding the client key password'],
  ] as const;
  for (const [key, field, what] of tlsKeys) {
    const node = get(key);
    if (node === undefined) continue;
    const value = r.string(node, `${path}.${key}`, what);
    if (value.startsWith('classpath:')) {
      r.ctx.fail(`${path}.${key}`, node.pos, `expected a file path (${what}), got ${found(node)}: 'classpath:' resources exist only inside a JVM`, {
        fix: 'point to the file on disk',
      });
    }
    tls[field] = value;
  }
  if (Object.keys(tls).length > 0) result.tls = tls;
  return result;
}

function readTimeouts(r: Reader, tmap: YMap, path: string): { call?: number; connect?: number; read?: number; write?: number } {
  const out: { call?: number; connect?: number; read?: number; write?: number } = {};
  const what = { call: 'the whole call', connect: 'one connection attempt', read: 'one read', write: 'one write' } as const;
  for (const key of ['call', 'connect', 'read', 'write'] as const) {
    const node = tmap.entries.get(key)?.value;
    // Upstream (requireNonZeroDuration): timeouts must be larger than 0.
    if (node !== undefined) out[key] = r.duration(node, `${path}.${key}`, `timeout of ${what[key]}, > 0`, TIMEOUT_BOUNDS);
  }
  return out;
}

/** OkHttp transport (`DefaultHttpRequestReplyClientSpec`): `timeouts.{call,connect,read,write}`, each at most `call`. */
function parseOkHttpTimeouts(r: Reader, node: YNode | undefined, path: string): HttpTransport {
  let t: { call?: number; connect?: number; read?: number; write?: number } = {};
  let tmap: YMap | undefined;
  if (node !== undefined) {
    tmap = r.map(node, path, 'call/connect/read/write timeouts');
    r.onlyKeys(tmap, path, ['call', 'connect', 'read', 'write']);
    t = readTimeouts(r, tmap, path);
  }
  const callMs = t.call ?? ENDPOINT_DEFAULTS.okhttpCallMs;
  // Upstream rejects any of connect/read/write above call, even a defaulted one (so `call: 5s`
  // alone fails there). statefn rejects only timeouts the file writes, and caps defaulted ones at
  // the call timeout, which bounds every attempt anyway.
  const timeouts = {
    connect: t.connect ?? Math.min(ENDPOINT_DEFAULTS.okhttpConnectMs, callMs),
    read: t.read ?? Math.min(ENDPOINT_DEFAULTS.okhttpReadMs, callMs),
    write: t.write ?? Math.min(ENDPOINT_DEFAULTS.okhttpWriteMs, callMs),
  };
  for (const key of ['connect', 'read', 'write'] as const) {
    if (timeouts[key] > callMs) {
      r.ctx.fail(`${path}.${key}`, tmap?.entries.get(key)?.value.pos ?? tmap?.pos, `${key} timeout (${timeouts[key]}ms) cannot be larger than the call timeout (${callMs}ms)`, {
        fix: `lower ${key} or raise call`,
      });
    }
  }
  return {
    type: 'okhttp',
    callMs,
    connectMs: timeouts.connect,
    readMs: timeouts.read,
    writeMs: timeouts.write,
    poolTtlMs: ENDPOINT_DEFAULTS.poolTtlMs,
    poolSize: ENDPOINT_DEFAULTS.poolSize,
    payloadMaxBytes: ENDPOINT_DEFAULTS.payloadMaxBytes,
  };
}

// ---- Kafka -------------------------------------------------------------------------------------

const BROKER = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

function checkBrokers(r: Reader, value: string, path: string, node: YNode): string {
  const parts = value.split(',').map((p) => p.trim());
  for (const part of parts) {
    const m = BROKER.exec(part);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      r.ctx.fail(path, node.pos, `expected host:port[,host:port...] (Kafka bootstrap brokers), got ${JSON.stringify(value)}: '${part}' is not host:port`, {
        fix: "write e.g. 'kafka-broker:9092' or 'k1:9092,k2:9092'",
      });
    }
  }
  return parts.join(',');
}

/** `address`, or `bootstrap.servers` in properties (named settings win, as upstream documents). */
function kafkaAddress(r: Reader, spec: YMap, properties: Record<string, string>): string {
  const entry = spec.entries.get('address');
  if (entry !== undefined) {
    const value = r.string(entry.value, 'spec.address', 'Kafka bootstrap brokers, host:port[,host:port...]');
    return checkBrokers(r, value, 'spec.address', entry.value);
  }
  const fromProps = properties['bootstrap.servers'];
  const propsNode = spec.entries.get('properties')?.value;
  if (fromProps !== undefined && propsNode !== undefined) {
    return checkBrokers(r, fromProps, 'spec.properties["bootstrap.servers"]', propsNode);
  }
  return r.ctx.fail('spec.address', spec.pos, "required key 'address' is missing; expected the Kafka bootstrap brokers, host:port[,host:port...]", {
    fix: "add e.g. 'address: kafka-broker:9092'",
  });
}

function parseTopicName(r: Reader, node: YNode, path: string): string {
  const topic = r.string(node, path, 'a Kafka topic name');
  if (topic.length > KAFKA_TOPIC_LENGTH_MAX || !/^[A-Za-z0-9._-]+$/.test(topic) || topic === '.' || topic === '..') {
    r.ctx.fail(path, node.pos, `expected a Kafka topic name (letters, digits, '.', '_', '-'; at most ${KAFKA_TOPIC_LENGTH_MAX} characters), got ${found(node)}`);
  }
  return topic;
}

const STARTUP_TYPES = ['earliest', 'latest', 'group-offsets', 'specific-offsets', 'date'] as const;

function parseStartupPosition(r: Reader, node: YNode, path: string): KafkaStartupPosition {
  const map = r.map(node, path, `the startup position, e.g. {type: earliest}; type is one of ${STARTUP_TYPES.join(', ')}`);
  const type = r.oneOf(r.required(map, 'type', path, `one of ${STARTUP_TYPES.join(', ')}`).value, `${path}.type`, 'where the ingress starts reading', STARTUP_TYPES);
  const hints = {
    offsets: `'offsets' is read only when type is specific-offsets`,
    date: `'date' is read only when type is date`,
  };
  switch (type) {
    case 'earliest':
    case 'latest':
    case 'group-offsets':
      r.onlyKeys(map, path, ['type'], hints);
      return { type };
    case 'specific-offsets': {
      r.onlyKeys(map, path, ['type', 'offsets'], hints);
      const offsetsNode = r.required(map, 'offsets', path, "a list of 'topic/partition: offset' entries").value;
      const offsets: Record<string, number> = {};
      const add = (entry: YEntry, entryPath: string): void => {
        const slash = entry.key.lastIndexOf('/');
        const partition = slash > 0 && /^\d+$/.test(entry.key.slice(slash + 1)) ? Number(entry.key.slice(slash + 1)) : -1;
        if (partition < 0 || partition > INT32_MAX) {
          r.ctx.fail(entryPath, entry.keyPos, `expected a 'topic/partition' key with a partition in [0, ${INT32_MAX}], got ${JSON.stringify(entry.key)}`, {
            fix: "write e.g. '- user-topic/0: 91'",
          });
        }
        if (Object.hasOwn(offsets, entry.key)) r.ctx.fail(entryPath, entry.keyPos, `partition ${entry.key} has two offsets`);
        offsets[entry.key] = r.int(entry.value, entryPath, 'a starting offset', { min: 0, max: Number.MAX_SAFE_INTEGER });
      };
      if (offsetsNode.t === 'map') {
        for (const e of offsetsNode.entries.values()) add(e, joinKey(`${path}.offsets`, e.key));
      } else {
        r.list(offsetsNode, `${path}.offsets`, "'topic/partition: offset' entries", 1).forEach((item, i) => {
          const itemPath = joinIndex(`${path}.offsets`, i);
          if (item.t !== 'map' || item.entries.size !== 1) {
            r.ctx.fail(itemPath, item.pos, `expected a one-key mapping 'topic/partition: offset' (e.g. '- user-topic/0: 91'), got ${found(item)}`);
          }
          const e = [...item.entries.values()][0]!;
          add(e, joinKey(itemPath, e.key));
        });
      }
      if (Object.keys(offsets).length === 0) r.ctx.fail(`${path}.offsets`, offsetsNode.pos, 'expected at least one topic/partition offset, got none');
      return { type, offsets };
    }
    case 'date': {
      r.onlyKeys(map, path, ['type', 'date'], hints);
      const dateNode = r.required(map, 'date', path, "a date such as '2020-02-01 04:15:00.000 +0000'").value;
      return { type, date: parseStartupDate(r, dateNode, `${path}.date`) };
    }
  }
}

/**
 * Upstream parses `yyyy-MM-dd HH:mm:ss.SSS Z` (e.g. `2020-02-01 04:15:00.000 +0000`). statefn
 * accepts that, with 0-9 fraction digits and `Z`/`+HH:MM` offsets, and ISO 8601 with a `T`. A zone
 * is required: a date without one means different instants on different hosts.
 */
function parseStartupDate(r: Reader, node: YNode, path: string): number {
  const s = r.string(node, path, 'a date');
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})$/.exec(s.trim());
  let ms = Number.NaN;
  if (m) {
    const [, y, mo, d, h, mi, sec, frac, zone] = m as unknown as [string, string, string, string, string, string, string, string | undefined, string];
    const millis = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
    const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), millis);
    const check = new Date(utc);
    const fieldsValid =
      check.getUTCFullYear() === Number(y) && check.getUTCMonth() === Number(mo) - 1 && check.getUTCDate() === Number(d) &&
      Number(h) < 24 && Number(mi) < 60 && Number(sec) < 60;
    let offsetMin = 0;
    if (zone !== 'Z') {
      const digits = zone.replace(':', '');
      offsetMin = (zone.startsWith('-') ? -1 : 1) * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
    }
    if (fieldsValid) ms = utc - offsetMin * 60_000;
  }
  if (!Number.isFinite(ms)) {
    r.ctx.fail(path, node.pos, `expected a date with a zone, as 'yyyy-MM-dd HH:mm:ss.SSS Z' (e.g. '2020-02-01 04:15:00.000 +0000') or ISO 8601 ('2020-02-01T04:15:00Z'), got ${found(node)}`);
  }
  return ms;
}

function parseKafkaIngress(r: Reader, spec: YMap): Parsed {
  r.onlyKeys(spec, 'spec', ['id', 'address', 'consumerGroupId', 'startupPosition', 'autoOffsetResetPosition', 'topics', 'properties', 'deadLetterTopic'], {
    topic: "topics are a list under 'topics', each {topic, valueType, targets}",
    groupId: "the consumer group is 'consumerGroupId'",
  });
  const idNode = r.required(spec, 'id', 'spec', "the ingress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the ingress id');
  const properties = r.properties(spec.entries.get('properties')?.value, 'spec.properties');
  const address = kafkaAddress(r, spec, properties);

  const groupEntry = spec.entries.get('consumerGroupId');
  let consumerGroupId: string;
  if (groupEntry !== undefined) consumerGroupId = r.string(groupEntry.value, 'spec.consumerGroupId', 'the Kafka consumer group');
  else if (properties['group.id'] !== undefined && properties['group.id'] !== '') consumerGroupId = properties['group.id'];
  else {
    return r.ctx.fail('spec.consumerGroupId', spec.pos, "required key 'consumerGroupId' is missing; expected the Kafka consumer group id (statefn's consumer needs one)", {
      fix: "add e.g. 'consumerGroupId: my-consumer-group'",
    });
  }

  const startEntry = spec.entries.get('startupPosition');
  // Upstream's code defaults to latest (KafkaIngressBuilder), though its docs say group-offsets.
  const startupPosition: KafkaStartupPosition = startEntry ? parseStartupPosition(r, startEntry.value, 'spec.startupPosition') : { type: 'latest' };
  const resetEntry = spec.entries.get('autoOffsetResetPosition');
  const autoOffsetResetPosition = resetEntry
    ? (r.oneOf(resetEntry.value, 'spec.autoOffsetResetPosition', 'where to start when a stored offset is out of range', ['earliest', 'latest'], { caseInsensitive: true }))
    : 'latest';

  const topicsNode = r.required(spec, 'topics', 'spec', 'a list of {topic, valueType, targets}').value;
  const seenTopics = new Map<string, number>();
  const topics = r.list(topicsNode, 'spec.topics', 'the topics to read, each {topic, valueType, targets}', 1).map((item, i): KafkaIngressTopic => {
    const path = joinIndex('spec.topics', i);
    const t = r.map(item, path, 'a topic: {topic, valueType, targets}');
    r.onlyKeys(t, path, ['topic', 'valueType', 'targets'], { target: "the key is 'targets' (a list)", type: "the key is 'valueType'" });
    const topicNode = r.required(t, 'topic', path, 'a Kafka topic name').value;
    const topic = parseTopicName(r, topicNode, `${path}.topic`);
    const previous = seenTopics.get(topic);
    if (previous !== undefined) {
      r.ctx.fail(`${path}.topic`, topicNode.pos, `topic '${topic}' is listed twice (also at spec.topics[${previous}])`, {
        fix: 'merge the two entries: one entry may list several targets',
      });
    }
    seenTopics.set(topic, i);
    const valueType = r.typeName(r.required(t, 'valueType', path, "the record value's type name").value, `${path}.valueType`, "the record value's type name");
    const seenTargets = new Set<string>();
    const targets = r.list(r.required(t, 'targets', path, 'a list of function types').value, `${path}.targets`, 'function types that receive each record', 1).map((tn, j) => {
      const target = r.typeName(tn, joinIndex(`${path}.targets`, j), 'a function type that receives each record');
      if (seenTargets.has(target)) r.ctx.fail(joinIndex(`${path}.targets`, j), tn.pos, `target '${target}' is listed twice; each record would be delivered to it twice`);
      seenTargets.add(target);
      return target;
    });
    return { topic, valueType, targets };
  });

  if (startupPosition.type === 'specific-offsets') {
    for (const key of Object.keys(startupPosition.offsets)) {
      const topic = key.slice(0, key.lastIndexOf('/'));
      if (!seenTopics.has(topic)) {
        const offsetsNode = startEntry?.value.t === 'map' ? startEntry.value.entries.get('offsets')?.value : undefined;
        r.ctx.fail('spec.startupPosition.offsets', offsetsNode?.pos, `offset given for '${key}', but topic '${topic}' is not in spec.topics (${[...seenTopics.keys()].join(', ')})`, {
          fix: 'fix the topic name or remove the entry',
        });
      }
    }
  }

  // statefn extension: where records that cannot be decoded or routed go (default: the engine's dead letters).
  const dltEntry = spec.entries.get('deadLetterTopic');
  const deadLetterTopic = dltEntry ? parseTopicName(r, dltEntry.value, 'spec.deadLetterTopic') : undefined;
  if (deadLetterTopic !== undefined && seenTopics.has(deadLetterTopic)) {
    r.ctx.fail('spec.deadLetterTopic', dltEntry!.value.pos, `the dead-letter topic '${deadLetterTopic}' is also read by this ingress; its records would come back`, {
      fix: 'use a topic this ingress does not read',
    });
  }

  const doc: KafkaIngressDocument = {
    kind: 'kafka-ingress',
    source: r.ctx.source,
    id,
    address,
    consumerGroupId,
    startupPosition,
    autoOffsetResetPosition,
    topics,
    properties,
    ...(deadLetterTopic !== undefined ? { deadLetterTopic } : {}),
  };
  return { doc, ctx: r.ctx, idPos: idNode.pos };
}

const DELIVERY_TYPES = ['exactly-once', 'at-least-once', 'none'] as const;

function parseKafkaEgress(r: Reader, spec: YMap): Parsed {
  r.onlyKeys(spec, 'spec', ['id', 'address', 'deliverySemantic', 'properties'], {
    topic: 'the topic of each record is chosen by the function (KafkaProducerRecord.topic), not in module.yaml',
    topics: 'the topic of each record is chosen by the function (KafkaProducerRecord.topic), not in module.yaml',
  });
  const idNode = r.required(spec, 'id', 'spec', "the egress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the egress id');
  const properties = r.properties(spec.entries.get('properties')?.value, 'spec.properties');
  const address = kafkaAddress(r, spec, properties);

  let deliverySemantic: KafkaDeliverySemantic = { type: 'at-least-once' }; // upstream default
  const dsEntry = spec.entries.get('deliverySemantic');
  if (dsEntry !== undefined) {
    const path = 'spec.deliverySemantic';
    const ds = r.map(dsEntry.value, path, `the delivery semantic, e.g. {type: at-least-once}; type is one of ${DELIVERY_TYPES.join(', ')}`);
    const type = r.oneOf(r.required(ds, 'type', path, `one of ${DELIVERY_TYPES.join(', ')}`).value, `${path}.type`, 'the delivery guarantee', DELIVERY_TYPES);
    if (type === 'exactly-once') {
      r.onlyKeys(ds, path, ['type', 'transactionTimeout', 'transactionTimeoutMillis']);
      const modern = ds.entries.get('transactionTimeout');
      // Deprecated upstream but still read (and preferred) there; its docs example writes a
      // duration (`15min`) in it, so it is read as a duration here too (a bare number is ms).
      const legacy = ds.entries.get('transactionTimeoutMillis');
      if (modern && legacy) {
        r.ctx.fail(`${path}.transactionTimeoutMillis`, legacy.keyPos, 'the transaction timeout is set twice (transactionTimeout and the deprecated transactionTimeoutMillis)', {
          fix: 'keep only transactionTimeout',
        });
      }
      const entry = modern ?? legacy;
      if (entry === undefined) {
        return r.ctx.fail(`${path}.transactionTimeout`, ds.pos, "required key 'transactionTimeout' is missing; expected the Kafka transaction timeout for exactly-once delivery", {
          fix: "add e.g. 'transactionTimeout: 15min' (at most the broker's transaction.max.timeout.ms)",
        });
      }
      const transactionTimeoutMs = r.duration(entry.value, `${path}.${entry.key}`, 'the Kafka transaction timeout', { min: 1, max: TIMEOUT_MS_MAX });
      deliverySemantic = { type, transactionTimeoutMs };
    } else {
      const hint = "'transactionTimeout' is read only when type is exactly-once";
      r.onlyKeys(ds, path, ['type'], { transactionTimeout: hint, transactionTimeoutMillis: hint });
      deliverySemantic = { type };
    }
  }

  const doc: KafkaEgressDocument = { kind: 'kafka-egress', source: r.ctx.source, id, address, deliverySemantic, properties };
  return { doc, ctx: r.ctx, idPos: idNode.pos };
}

// ---- statefn's own kinds ------------------------------------------------------------------------

const GENERATOR_BUILTIN_TYPES = ['io.statefun.types/long', 'io.statefun.types/string'];

function parseGeneratorIngress(r: Reader, spec: YMap): Parsed {
  r.onlyKeys(spec, 'spec', ['id', 'ratePerSec', 'count', 'keySpace', 'seed', 'batchSize', 'targets', 'valueType', 'keyDistribution']);
  const get = (k: string): YNode | undefined => spec.entries.get(k)?.value;
  const idNode = r.required(spec, 'id', 'spec', "the ingress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the ingress id');
  const ratePerSec = r.number(r.required(spec, 'ratePerSec', 'spec', 'records per second (0 = as fast as back-pressure allows)').value, 'spec.ratePerSec', 'records per second, 0 = as fast as back-pressure allows', { min: 0, max: 100_000_000 });
  const countNode = get('count');
  const count = countNode ? r.int(countNode, 'spec.count', 'records to produce before stopping', { min: 1, max: Number.MAX_SAFE_INTEGER }) : undefined;
  const keySpaceNode = get('keySpace');
  const keySpace = keySpaceNode ? r.int(keySpaceNode, 'spec.keySpace', 'distinct function ids', { min: 1, max: INT32_MAX }) : 1000;
  const seedNode = get('seed');
  const seed = seedNode ? r.int(seedNode, 'spec.seed', 'the random seed', { min: 0, max: 0xffffffff }) : 1;
  const batchNode = get('batchSize');
  const batchSize = batchNode ? r.int(batchNode, 'spec.batchSize', 'records handed to the engine at once', { min: 1, max: 65536 }) : 256;
  const targets = r.list(r.required(spec, 'targets', 'spec', 'a list of function types').value, 'spec.targets', 'function types that receive each record', 1).map((n, i) =>
    r.typeName(n, joinIndex('spec.targets', i), 'a function type that receives each record'),
  );
  const vtNode = get('valueType');
  const valueType = vtNode ? r.typeName(vtNode, 'spec.valueType', 'the value type') : 'io.statefun.types/long';
  if (valueType.startsWith('io.statefun.types/') && !GENERATOR_BUILTIN_TYPES.includes(valueType)) {
    r.ctx.fail('spec.valueType', vtNode?.pos, `expected ${GENERATOR_BUILTIN_TYPES.join(' or ')} or a JSON type name of your own, got ${found(vtNode)}`);
  }

  let keyDistribution: GeneratorKeyDistribution = 'uniform';
  const kdNode = get('keyDistribution');
  if (kdNode !== undefined) {
    const path = 'spec.keyDistribution';
    if (kdNode.t === 'scalar') {
      if (kdNode.value === 'zipf') r.ctx.fail(path, kdNode.pos, 'zipf needs an exponent', { fix: 'write keyDistribution: {type: zipf, exponent: 1.1}' });
      r.oneOf(kdNode, path, "how keys are drawn: 'uniform' or {type: zipf, exponent}", ['uniform']);
    } else {
      const kd = r.map(kdNode, path, "'uniform' or {type: zipf, exponent}");
      const type = r.oneOf(r.required(kd, 'type', path, 'uniform or zipf').value, `${path}.type`, 'how keys are drawn', ['uniform', 'zipf']);
      if (type === 'uniform') {
        r.onlyKeys(kd, path, ['type'], { exponent: "'exponent' is read only when type is zipf" });
      } else {
        r.onlyKeys(kd, path, ['type', 'exponent']);
        const exponent = r.number(r.required(kd, 'exponent', path, 'the zipf exponent, > 0').value, `${path}.exponent`, 'the zipf exponent', { min: 0, max: 10, minExclusive: true });
        keyDistribution = { type: 'zipf', exponent };
      }
    }
  }

  const doc: GeneratorIngressDocument = {
    kind: 'generator-ingress',
    source: r.ctx.source,
    id,
    ratePerSec,
    count,
    keySpace,
    seed,
    batchSize,
    targets,
    valueType,
    keyDistribution,
  };
  return { doc, ctx: r.ctx, idPos: idNode.pos };
}

function parseHttpIngress(r: Reader, spec: YMap): Parsed {
  r.onlyKeys(spec, 'spec', ['id', 'host', 'port', 'bodyBytesMax', 'requestsInFlightMax']);
  const get = (k: string): YNode | undefined => spec.entries.get(k)?.value;
  const idNode = r.required(spec, 'id', 'spec', "the ingress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the ingress id');
  const hostNode = get('host');
  const portNode = get('port');
  const bodyNode = get('bodyBytesMax');
  const inFlightNode = get('requestsInFlightMax');
  const doc: HttpIngressDocument = {
    kind: 'http-ingress',
    source: r.ctx.source,
    id,
    host: hostNode ? r.string(hostNode, 'spec.host', 'the address to listen on') : '127.0.0.1',
    port: portNode ? r.int(portNode, 'spec.port', 'the TCP port to listen on, 0 = any free port', { min: 0, max: 65535 }) : 8090,
    bodyBytesMax: bodyNode ? r.bytes(bodyNode, 'spec.bodyBytesMax', 'largest request body', { min: 1, max: 256 * 1024 * 1024 }) : 1024 * 1024,
    requestsInFlightMax: inFlightNode ? r.int(inFlightNode, 'spec.requestsInFlightMax', 'requests served concurrently', { min: 1, max: 65536 }) : 256,
  };
  return { doc, ctx: r.ctx, idPos: idNode.pos };
}

function parseFileEgress(r: Reader, spec: YMap): Parsed {
  r.onlyKeys(spec, 'spec', ['id', 'path'], { file: "the key is 'path'" });
  const idNode = r.required(spec, 'id', 'spec', "the egress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the egress id');
  const path = r.string(r.required(spec, 'path', 'spec', "a file path, or '-' for standard output").value, 'spec.path', "a file path, or '-' for standard output");
  const doc: FileEgressDocument = { kind: 'file-egress', source: r.ctx.source, id, path };
  return { doc, ctx: r.ctx, idPos: idNode.pos };
}

/** Limits whose value is a duration or a byte size, by the unit in their name. */
function limitUnit(name: string): 'ms' | 'bytes' | 'count' {
  if (name.endsWith('Ms')) return 'ms';
  if (/Bytes/.test(name)) return 'bytes';
  return 'count';
}

function parseEngineConfig(r: Reader, spec: YMap): Parsed {
  const limitNames = Object.keys(LIMIT_SPECS);
  r.onlyKeys(spec, 'spec', ['workers', 'stateDir', 'snapshots', 's3Endpoint', 's3Region', 'snapshotRetain', 'checkpointing', ...limitNames]);
  let s3Endpoint: string | undefined;
  let s3Region: string | undefined;
  const options: Record<string, unknown> = {};
  const limits: Record<string, number> = {};
  for (const entry of spec.entries.values()) {
    const path = joinKey('spec', entry.key);
    if (entry.key === 'workers') {
      options.workers = r.int(entry.value, path, 'worker threads', { min: 1, max: WORKERS_MAX });
    } else if (entry.key === 'stateDir') {
      options.stateDir = r.string(entry.value, path, 'the state directory');
    } else if (entry.key === 'snapshots') {
      const v = r.string(entry.value, path, "where checkpoints are uploaded: a directory, 's3://bucket/prefix', or 'off'");
      const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(v);
      options.snapshots = v === 'off' ? false : m !== null ? { type: 's3', bucket: m[1]!, prefix: m[2] ?? '' } : { type: 'local', dir: resolve(v) };
    } else if (entry.key === 's3Endpoint') {
      s3Endpoint = r.string(entry.value, path, 'an S3-compatible endpoint URL');
    } else if (entry.key === 's3Region') {
      s3Region = r.string(entry.value, path, 'an S3 region');
    } else if (entry.key === 'snapshotRetain') {
      options.snapshotRetain = r.int(entry.value, path, 'complete checkpoints kept in the snapshot store', { min: 1, max: 1000 });
    } else if (entry.key === 'checkpointing') {
      const v = r.string(entry.value, path, "'on' (exactly-once egress) or 'off' (egress at once)");
      if (v !== 'on' && v !== 'off') r.ctx.fail(path, entry.value.pos, `expected 'on' or 'off', got '${v}'`);
      options.checkpointing = v === 'on';
    } else {
      const limit = LIMIT_SPECS[entry.key as keyof typeof LIMIT_SPECS];
      const unit = limitUnit(entry.key);
      const v =
        unit === 'ms'
          ? r.duration(entry.value, path, limit.description, { min: 0, max: Number.MAX_SAFE_INTEGER })
          : unit === 'bytes'
            ? r.bytes(entry.value, path, limit.description, { min: 0, max: Number.MAX_SAFE_INTEGER })
            : r.int(entry.value, path, limit.description, { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
      limits[entry.key] = v;
    }
  }
  // Bounds and relationships between limits live in limits.ts; re-word its errors with our location.
  let resolved;
  try {
    resolved = resolveEngineLimits(limits, 'spec');
  } catch (err) {
    if (!(err instanceof StatefnError)) throw err;
    const m = /^spec\.([A-Za-z0-9_]+): ([\s\S]*)$/.exec(err.message);
    const entry = m ? spec.entries.get(m[1]!) : undefined;
    const message = m ? m[2]! : err.message;
    return r.ctx.fail(m ? `spec.${m[1]}` : 'spec', entry?.value.pos ?? spec.pos, message, { cause: err });
  }
  if (typeof options.workers === 'number' && options.workers > resolved.keyGroups) {
    r.ctx.fail('spec.workers', spec.entries.get('workers')?.value.pos, `${options.workers} workers but only ${resolved.keyGroups} key groups; each worker owns at least one key group`, {
      fix: `lower workers or raise keyGroups to at least ${options.workers}`,
    });
  }
  const snap = options.snapshots as { type: string } | false | undefined;
  if ((s3Endpoint !== undefined || s3Region !== undefined) && (snap === undefined || snap === false || snap.type !== 's3')) {
    r.ctx.fail('spec.s3Endpoint', spec.pos, 's3Endpoint and s3Region need snapshots: s3://bucket/prefix');
  }
  if (snap && snap.type === 's3') {
    Object.assign(snap, { region: s3Region ?? 'us-east-1' }, s3Endpoint === undefined ? {} : { endpoint: s3Endpoint, forcePathStyle: true });
  }
  Object.assign(options, limits);
  const doc: EngineConfigDocument = { kind: 'engine-config', source: r.ctx.source, options };
  return { doc, ctx: r.ctx, idPos: spec.pos };
}

// ---- across documents ----------------------------------------------------------------------------

function checkDuplicates(parsed: readonly Parsed[]): void {
  const groups = {
    ingress: new Map<string, Parsed>(),
    egress: new Map<string, Parsed>(),
    endpoint: new Map<string, Parsed>(),
    'engine config': new Map<string, Parsed>(),
  };
  for (const p of parsed) {
    const d = p.doc;
    const [group, key, what] =
      d.kind === 'endpoint'
        ? (['endpoint', d.functions, `spec.functions '${d.functions}'`] as const)
        : d.kind === 'engine-config'
          ? (['engine config', '', 'engine config'] as const)
          : d.kind === 'kafka-egress' || d.kind === 'file-egress'
            ? (['egress', d.id, `egress id '${d.id}'`] as const)
            : (['ingress', d.id, `ingress id '${d.id}'`] as const);
    const first = groups[group].get(key);
    if (first !== undefined) {
      const fix =
        group === 'engine config'
          ? `merge the two ${MODULE_KINDS.engineConfig} documents into one`
          : group === 'endpoint'
            ? 'keep one endpoint per function pattern'
            : `give each ${group} its own id`;
      p.ctx.fail(group === 'engine config' ? 'spec' : d.kind === 'endpoint' ? 'spec.functions' : 'spec.id', p.idPos, `duplicate ${what}: already defined by ${first.ctx.describe()}`, { fix });
    }
    groups[group].set(key, p);
  }
}
