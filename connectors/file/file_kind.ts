/**
 * The file egress's module.yaml kind, `io.statefn.file.v1/egress`: one line per record, to a file
 * or (path `-`) standard output; its descriptor, schema and how it becomes a {@link FileEgress}
 * or {@link StdoutEgress}.
 */
import type { ConnectorDescriptor, ConnectorKind, ModuleReader, YamlMap } from '../../api/connector_kind.js';
import { FileEgress, StdoutEgress } from './file_egress.js';

export const FILE_EGRESS_KIND = 'io.statefn.file.v1/egress';

/** `io.statefn.file.v1/egress`: one line per record. */
export interface FileEgressDocument extends ConnectorDescriptor {
  readonly kind: 'file-egress';
  readonly id: string;
  /** A file path, or `-` for standard output. */
  readonly path: string;
}

function parseFileEgress(r: ModuleReader, spec: YamlMap): FileEgressDocument {
  r.onlyKeys(spec, 'spec', ['id', 'path'], { file: "the key is 'path'" });
  const idNode = r.required(spec, 'id', 'spec', "the egress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the egress id');
  const path = r.string(
    r.required(spec, 'path', 'spec', "a file path, or '-' for standard output").value,
    'spec.path',
    "a file path, or '-' for standard output",
  );
  const doc: FileEgressDocument = { kind: 'file-egress', source: r.source, id, path };
  return doc;
}

/** `io.statefn.file.v1/egress`. */
export const fileEgressKind: ConnectorKind<FileEgressDocument> = {
  kinds: [FILE_EGRESS_KIND],
  role: 'egress',
  parse: (doc, r) => parseFileEgress(r, doc.spec),
  build: (d, { app }) => {
    app.egress(d.path === '-' ? new StdoutEgress({ id: d.id }) : new FileEgress({ id: d.id, path: d.path }));
  },
};
