/**
 * What the module.yaml loader runs for each document: a {@link ModuleKind}. Connectors plug in as
 * {@link ConnectorKind}s (api/connector_kind.ts), adapted here; config/ adds the kinds that are not
 * connectors (StateFun endpoints, statefn's engine config) directly as ModuleKinds, because they
 * check duplicates their own way.
 */
import type {
  ConnectorBuildContext,
  ConnectorKind,
  ModuleDescriptor,
  ModuleReader,
  ModuleYamlDocument,
  YamlPos,
} from '../api/connector_kind.js';

/** Which documents may not appear twice: those with the same `group` and `key`. */
export interface ModuleIdentity {
  /** `ingress`, `egress`, `endpoint` or `engine config`: keys are unique within a group. */
  readonly group: string;
  readonly key: string;
  /** The duplicate as named in the error, e.g. `ingress id 'a/b'`. */
  readonly what: string;
  /** Path and position of the value the error points at. */
  readonly path: string;
  readonly pos: YamlPos;
  /** How to fix a duplicate. */
  readonly fix: string;
}

/** A module.yaml kind as the loader sees it. */
export interface ModuleKind<D extends ModuleDescriptor = ModuleDescriptor> {
  /** The `kind:` names this entry reads. */
  readonly kinds: readonly string[];
  /** Validate the document and return its descriptor. */
  parse(doc: ModuleYamlDocument, reader: ModuleReader): D;
  /** What must be unique across the file's documents. */
  identity(descriptor: D, doc: ModuleYamlDocument): ModuleIdentity;
  /** Add what the descriptor describes to the app. */
  build(descriptor: D, ctx: ConnectorBuildContext): void;
}

/** A connector's kind as a ModuleKind: ids are unique per role (ingress ids apart from egress ids). */
export function connectorModuleKind(k: ConnectorKind): ModuleKind {
  return {
    kinds: k.kinds,
    parse: (doc, reader) => k.parse(doc, reader),
    identity: (d, doc) => {
      const id = (d as { id?: unknown }).id;
      const key = typeof id === 'string' ? id : '';
      return {
        group: k.role,
        key,
        what: `${k.role} id '${key}'`,
        path: 'spec.id',
        pos: doc.spec.entries.get('id')?.value.pos ?? doc.spec.pos,
        fix: `give each ${k.role} its own id`,
      };
    },
    build: (d, ctx) => k.build(d as Parameters<typeof k.build>[0], ctx),
  };
}
