/**
 * The module.yaml loader: reads a StateFun 3.x module file (one YAML document per component,
 * each `{kind, spec}`) and hands each document to the kind registered for its `kind:` (config's
 * own: StateFun endpoints and the engine config; the connectors' kinds are passed in), which
 * returns a typed, validated, defaulted descriptor. Everything is checked here, once, eagerly: a
 * bad file fails at startup with a message naming the file, the line and column, the document
 * (number and kind), the path inside it, what was expected, what was found and, where we can
 * tell, the fix.
 *
 * Compatibility notes (checked against apache/flink-statefun 3.3): field names, defaults and
 * value formats follow the upstream binders. Where upstream silently ignores something (unknown
 * keys, a `classpath:` certificate, a misspelled key), statefn rejects it, because a file that
 * "works" while ignoring what its author wrote is worse than one that fails with a clear message.
 * statefn also adds environment-variable interpolation (`${VAR}`, `${VAR:-default}`, `$${` for a
 * literal `${`), which StateFun's users asked for.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, isMap, isScalar, parseAllDocuments } from 'yaml';
import type { Document, Node as YamlSourceNode } from 'yaml';
import type { ConnectorKind, ModuleDescriptor, ModuleYamlDocument, YamlPos } from '../api/connector_kind.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { endpointKind } from './endpoint_kind.js';
import { engineConfigKind } from './engine_config_kind.js';
import { type ModuleIdentity, type ModuleKind, connectorModuleKind } from './module_kind.js';
import { moduleDocumentsMax, moduleFileBytesMax } from '../shared/limits.js';
import { Reader, didYouMean } from './yaml_reader.js';
import { DocContext, found, toTree } from './yaml_tree.js';

/** The largest module file read (kept under its former name for callers). */
export const MODULE_FILE_BYTES_MAX = moduleFileBytesMax;

/** Any document's descriptor; each kind's own type (EndpointDocument, KafkaIngressDocument, ...) narrows it. */
export type ModuleDocument = ModuleDescriptor;

/** Upstream kinds statefn knows about but does not run; named in their error. */
const UPSTREAM_UNSUPPORTED_KINDS: readonly string[] = ['io.statefun.kinesis.v1/ingress', 'io.statefun.kinesis.v1/egress'];

/** One parsed document with the kind that read it (and builds it). */
export interface ParsedModuleDocument {
  readonly descriptor: ModuleDescriptor;
  readonly kind: ModuleKind;
  readonly ctx: DocContext;
  readonly identity: ModuleIdentity;
}

/** The kinds a file may use: config's own, and `connectorKinds`, endpoints first and the engine config last. */
export function moduleKinds(connectorKinds: readonly ConnectorKind[]): readonly ModuleKind[] {
  const all: ModuleKind[] = [endpointKind, ...connectorKinds.map(connectorModuleKind), engineConfigKind];
  const seen = new Set<string>();
  for (const k of all) {
    for (const name of k.kinds) {
      if (seen.has(name))
        throw new StatefnError(ErrorCode.CONFIG_INVALID, `module kind '${name}' is registered twice (EngineOptions.connectorKinds)`);
      seen.add(name);
    }
  }
  return all;
}

/** Every `kind:` name a file may use with these connector kinds, in the order error messages list them. */
export function moduleKindNames(connectorKinds: readonly ConnectorKind[]): readonly string[] {
  return moduleKinds(connectorKinds).flatMap((k) => k.kinds);
}

/** Read and parse a module file. Every problem is a CONFIG_INVALID or MODULE_KIND_UNSUPPORTED StatefnError. */
export async function loadModuleYaml(
  file: string,
  env: Record<string, string | undefined> = process.env,
  connectorKinds: readonly ConnectorKind[] = [],
): Promise<ModuleDocument[]> {
  return (await loadModule(file, connectorKinds, env)).map((p) => p.descriptor);
}

/** Read a module file into its documents and their kinds. */
export async function loadModule(
  file: string,
  connectorKinds: readonly ConnectorKind[],
  env: Record<string, string | undefined> = process.env,
): Promise<ParsedModuleDocument[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${file}: cannot read the module file: ${why}`, { cause: err });
  }
  if (bytes.length > moduleFileBytesMax) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `${file}: module file is ${bytes.length} bytes; expected at most ${moduleFileBytesMax} (is this the right file?)`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${file}: module file is not valid UTF-8 text`, { cause: err });
  }
  return parseModule(text, file, connectorKinds, env);
}

/**
 * Parse module YAML text. `file` names the source in messages; `env` (default `process.env`)
 * supplies `${VAR}` interpolation; `connectorKinds` are the kinds besides config's own.
 */
export function parseModuleYaml(
  text: string,
  file: string,
  env: Record<string, string | undefined> = process.env,
  connectorKinds: readonly ConnectorKind[] = [],
): ModuleDocument[] {
  return parseModule(text, file, connectorKinds, env).map((p) => p.descriptor);
}

/** Parse module YAML text into its documents and their kinds. */
export function parseModule(
  text: string,
  file: string,
  connectorKinds: readonly ConnectorKind[],
  env: Record<string, string | undefined> = process.env,
): ParsedModuleDocument[] {
  if (text.length > moduleFileBytesMax) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `${file}: module text is ${text.length} characters; expected at most ${moduleFileBytesMax}`,
    );
  }
  const lineCounter = new LineCounter();
  // `uniqueKeys` (the default) makes a key written twice a parse error rather than "last one wins".
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (!Array.isArray(docs)) return []; // an empty stream (only comments or nothing)
  if (docs.length > moduleDocumentsMax) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `${file}: ${docs.length} YAML documents; expected at most ${moduleDocumentsMax}`);
  }

  const kinds = moduleKinds(connectorKinds);
  const parsed: ParsedModuleDocument[] = [];
  docs.forEach((doc, i) => {
    const item = parseDocument(doc, i + 1, file, lineCounter, env, kinds);
    if (item) parsed.push(item);
  });
  checkDuplicates(parsed);
  return parsed;
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
  'Each entry of the old module.spec.endpoints/ingresses/egresses becomes its own document ' +
  '(see the StateFun 3.1 docs, "Module Configuration")';

function parseDocument(
  doc: Document.Parsed,
  index: number,
  file: string,
  lc: LineCounter,
  env: Record<string, string | undefined>,
  kinds: readonly ModuleKind[],
): ParsedModuleDocument | undefined {
  const contents = doc.contents as YamlSourceNode | null;
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
    ctx.fail(
      '',
      root.pos,
      `expected a component {kind, spec}, got the legacy StateFun 2.x/3.0 module format (top-level 'version:${v}' and ` +
        `'module:'), which statefn does not read`,
      {
        fix: LEGACY_FORMAT_HELP,
      },
    );
  }

  const r = new Reader(ctx);
  r.onlyKeys(root, '', ['kind', 'spec']);
  const names = kinds.flatMap((k) => k.kinds);
  const kindEntry = r.required(root, 'kind', '', `a component kind, one of ${names.join(', ')}`);
  const kindName = r.string(kindEntry.value, 'kind', 'the component kind');
  ctx.kind = kindName;
  const kind = kinds.find((k) => k.kinds.includes(kindName));
  if (kind === undefined) return unknownKind(ctx, kindName, kindEntry.value.pos, names);

  const specEntry = r.required(root, 'spec', '', `the ${kindName} specification (a mapping)`);
  const spec = r.map(specEntry.value, 'spec', `the ${kindName} specification`);
  const document: ModuleYamlDocument = { kind: kindName, spec, source: ctx.source };
  const descriptor = kind.parse(document, r);
  return { descriptor, kind, ctx, identity: kind.identity(descriptor, document) };
}

function unknownKind(ctx: DocContext, kind: string, pos: YamlPos, supported: readonly string[]): never {
  const near = didYouMean(kind, supported);
  const list = `statefn supports: ${supported.join(', ')}`;
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

// ---- across documents ----------------------------------------------------------------------------

function checkDuplicates(parsed: readonly ParsedModuleDocument[]): void {
  const groups = new Map<string, Map<string, ParsedModuleDocument>>();
  for (const p of parsed) {
    const id = p.identity;
    let group = groups.get(id.group);
    if (group === undefined) groups.set(id.group, (group = new Map<string, ParsedModuleDocument>()));
    const first = group.get(id.key);
    if (first !== undefined) {
      p.ctx.fail(id.path, id.pos, `duplicate ${id.what}: already defined by ${first.ctx.describe()}`, { fix: id.fix });
    }
    group.set(id.key, p);
  }
}
