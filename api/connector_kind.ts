/**
 * A connector's module.yaml kind: the schema of its document and how to build the connector from
 * it. Each connector folder exports its kinds beside its class; `connectors/registry.ts` lists the
 * built-in ones; the engine receives the list (EngineOptions.connectorKinds) and never imports a
 * connector. A third-party connector plugs in the same way: implement {@link ConnectorKind} and
 * pass it in `EngineOptions.connectorKinds`.
 *
 * The YAML itself is read by config/ (positions, interpolation, error wording); a kind sees the
 * already-parsed tree below ({@link YamlNode}) and reads it through a {@link ModuleReader}, so
 * every kind's errors name the file, line, column, document and path the same way.
 */
import type { App } from './app.js';
import type { ErrorCode } from '../shared/errors.js';

/** A 1-based position in the module file. */
export interface YamlPos {
  readonly line: number;
  readonly col: number;
}

/** A YAML mapping with the positions of its keys and values. */
export interface YamlMap {
  readonly t: 'map';
  readonly pos: YamlPos;
  /** Insertion-ordered. */
  readonly entries: ReadonlyMap<string, YamlEntry>;
}

/** One key of a {@link YamlMap}. */
export interface YamlEntry {
  readonly key: string;
  readonly keyPos: YamlPos;
  readonly value: YamlNode;
}

/** A YAML sequence. */
export interface YamlSeq {
  readonly t: 'seq';
  readonly pos: YamlPos;
  readonly items: readonly YamlNode[];
}

/** A YAML scalar, after `${VAR}` interpolation. */
export interface YamlScalar {
  readonly t: 'scalar';
  readonly pos: YamlPos;
  readonly value: string | number | boolean | null;
  /** The text before interpolation, when interpolation changed it. */
  readonly original?: string;
}

/** Any node of a module document; aliases are already expanded. */
export type YamlNode = YamlMap | YamlSeq | YamlScalar;

/** Where a descriptor came from, for messages raised later (by connectors or the runtime). */
export interface ModuleSource {
  readonly file: string;
  /** 1-based position of the document in the file's YAML stream; empty documents count too. */
  readonly document: number;
  /** Line where the document's content starts. */
  readonly line: number;
}

/** What a kind's `parse` returns: a typed, validated, defaulted description of one document. */
export interface ModuleDescriptor {
  /** A short name of the descriptor's shape, e.g. `kafka-ingress` (not the module.yaml kind). */
  readonly kind: string;
  readonly source: ModuleSource;
}

/** One module.yaml document, handed to the kind that reads it. */
export interface ModuleYamlDocument {
  /** The `kind:` as written (one of the kind's `kinds`). */
  readonly kind: string;
  /** The `spec:` mapping. */
  readonly spec: YamlMap;
  readonly source: ModuleSource;
}

/** Inclusive bounds of a numeric value. */
export interface ValueBounds {
  readonly min: number;
  readonly max: number;
}

/** Extra wording of a {@link ModuleReader.fail} message. */
export interface ReaderFailOptions {
  /** How to fix it; appended as `. Fix: <fix>`. */
  readonly fix?: string | undefined;
  /** Default `STATEFN_CONFIG_INVALID`. */
  readonly code?: ErrorCode;
  readonly cause?: unknown;
}

/**
 * Typed reads of one document's tree. Every method that fails throws a StatefnError whose message
 * is `file:line:col: document #n (kind, line l), at <path>: <what was expected, what was found>`
 * (plus `. Fix: ...` where a fix is known). `path` is the dotted path of the value in the
 * document (`spec.topics[0].targets`), built with {@link ModuleReader.key} and {@link ModuleReader.index};
 * `what` says in words what the value is for.
 */
export interface ModuleReader {
  /** The document being read. */
  readonly source: ModuleSource;
  /** Throw the error for a value at `path` (position `pos`, or the file when unknown). */
  fail(path: string, pos: YamlPos | undefined, message: string, opts?: ReaderFailOptions): never;
  /** A node described for an error message: `"text"`, `5 (a number)`, `a mapping`, `nothing (the key is missing)`. */
  found(node: YamlNode | undefined): string;
  /** The closest candidate, if it is close enough to be a typo of `input`. */
  didYouMean(input: string, candidates: readonly string[]): string | undefined;
  /** The path of key `key` under `base` (`spec.id`, or `spec["a b"]` for an unusual key). */
  key(base: string, key: string): string;
  /** The path of item `i` under `base` (`spec.topics[2]`). */
  index(base: string, i: number): string;
  /** A mapping, else an error. `at` positions the error when `node` is missing. */
  map(node: YamlNode | undefined, path: string, what: string, at?: YamlPos): YamlMap;
  /** A list of at least `minItems` items. */
  list(node: YamlNode | undefined, path: string, what: string, minItems: number, at?: YamlPos): readonly YamlNode[];
  /**
   * Reject keys outside `allowed`. `hints` explains keys that exist elsewhere or used to exist;
   * otherwise the message lists the allowed keys and suggests the nearest one.
   */
  onlyKeys(map: YamlMap, path: string, allowed: readonly string[], hints?: Readonly<Record<string, string>>): void;
  /** The entry of a key that must be there. */
  required(map: YamlMap, key: string, path: string, what: string): YamlEntry;
  /** A string; numbers are accepted as their text (as StateFun's Jackson `asText()` does). */
  string(node: YamlNode, path: string, what: string, opts?: { allowEmpty?: boolean }): string;
  /** A safe integer within `bounds`; a string of digits counts (interpolated values are strings). */
  int(node: YamlNode, path: string, what: string, bounds: ValueBounds): number;
  /** A finite number (fractions allowed) within `bounds`. */
  number(node: YamlNode, path: string, what: string, bounds: ValueBounds & { minExclusive?: boolean }): number;
  /** A duration (`500ms`, `2s`, `1 min`, a bare number is ms), in ms within `bounds`. */
  duration(node: YamlNode, path: string, what: string, bounds: ValueBounds): number;
  /** A byte size (`512kb`, `2mb`, a bare number is bytes), within `bounds`. */
  bytes(node: YamlNode, path: string, what: string, bounds: ValueBounds): number;
  /** A type name `namespace/name` (no `*`). */
  typeName(node: YamlNode, path: string, what: string): string;
  /** One of `values`, with a did-you-mean hint for a near miss. */
  oneOf<T extends string>(node: YamlNode, path: string, what: string, values: readonly T[], opts?: { caseInsensitive?: boolean }): T;
  /**
   * Kafka-style properties: StateFun writes them as a list of one-key mappings
   * (`- foo.config: bar`); a plain mapping is accepted too. Values become strings.
   */
  properties(node: YamlNode | undefined, path: string): Record<string, string>;
}

/** What a kind's `build` gets besides its descriptor. */
export interface ConnectorBuildContext {
  /** The application being assembled from the module file: add the connector to it. */
  readonly app: App;
  /** `file:line` of the document, for the connector's own logs and errors. */
  readonly where: string;
}

/** A descriptor of a connector: ingresses and egresses have an id, unique per role. */
export interface ConnectorDescriptor extends ModuleDescriptor {
  /** The ingress or egress id, `namespace/name`. */
  readonly id: string;
}

/**
 * A module.yaml kind of a connector. `parse` runs when the file is loaded (every problem is
 * reported then, before anything starts); `build` runs right after, on the main thread, and must
 * not do I/O (connectors start later, in `start()`).
 */
export interface ConnectorKind<D extends ConnectorDescriptor = ConnectorDescriptor> {
  /** The module.yaml `kind:` names this entry reads, e.g. `['io.statefun.kafka.v1/ingress']`. */
  readonly kinds: readonly string[];
  /** Whether it builds an ingress or an egress: ids must be unique among connectors of one role. */
  readonly role: 'ingress' | 'egress';
  /** Validate `doc` with `reader` and return its descriptor; throw (through `reader.fail`) on any mistake. */
  parse(doc: ModuleYamlDocument, reader: ModuleReader): D;
  /** Add the connector `descriptor` describes to `ctx.app` (an ingress with its router, or an egress). */
  build(descriptor: D, ctx: ConnectorBuildContext): void;
}
