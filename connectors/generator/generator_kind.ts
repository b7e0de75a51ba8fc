/**
 * The generator's module.yaml kind, `io.statefn.generator.v1/ingress`: synthetic load,
 * deterministic from `seed`; its descriptor, schema and how it becomes a {@link GeneratorIngress}.
 */
import type { ConnectorDescriptor, ConnectorKind, ModuleReader, YamlMap, YamlNode } from '../../api/connector_kind.js';
import type { RoutedMessage } from '../../api/connector_api.js';
import { Message } from '../../api/message.js';
import { Types } from '../../api/types.js';
import { GeneratorIngress } from './generator_ingress.js';
import type { Rng } from './rng.js';

export const GENERATOR_INGRESS_KIND = 'io.statefn.generator.v1/ingress';
const INT32_MAX = 2_147_483_647;
/** Bounds of the generator's settings in module.yaml. */
const GENERATOR_RATE_PER_SEC_MAX = 100_000_000;
const GENERATOR_BATCH_SIZE_MAX = 65536;
/** Defaults of the generator's settings in module.yaml. */
const GENERATOR_KEY_SPACE_DEFAULT = 1000;
const GENERATOR_SEED_DEFAULT = 1;
const GENERATOR_BATCH_SIZE_DEFAULT = 256;

export type GeneratorKeyDistribution = 'uniform' | { readonly type: 'zipf'; readonly exponent: number };

/** `io.statefn.generator.v1/ingress`: synthetic load, deterministic from `seed`. */
export interface GeneratorIngressDocument extends ConnectorDescriptor {
  readonly kind: 'generator-ingress';
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

const GENERATOR_BUILTIN_TYPES = ['io.statefun.types/long', 'io.statefun.types/string'];

function parseGeneratorIngress(r: ModuleReader, spec: YamlMap): GeneratorIngressDocument {
  r.onlyKeys(spec, 'spec', ['id', 'ratePerSec', 'count', 'keySpace', 'seed', 'batchSize', 'targets', 'valueType', 'keyDistribution']);
  const get = (k: string): YamlNode | undefined => spec.entries.get(k)?.value;
  const idNode = r.required(spec, 'id', 'spec', "the ingress id, 'namespace/name'").value;
  const id = r.typeName(idNode, 'spec.id', 'the ingress id');
  const ratePerSec = r.number(
    r.required(spec, 'ratePerSec', 'spec', 'records per second (0 = as fast as back-pressure allows)').value,
    'spec.ratePerSec',
    'records per second, 0 = as fast as back-pressure allows',
    { min: 0, max: GENERATOR_RATE_PER_SEC_MAX },
  );
  const countNode = get('count');
  const count = countNode
    ? r.int(countNode, 'spec.count', 'records to produce before stopping', { min: 1, max: Number.MAX_SAFE_INTEGER })
    : undefined;
  const keySpaceNode = get('keySpace');
  const keySpace = keySpaceNode
    ? r.int(keySpaceNode, 'spec.keySpace', 'distinct function ids', { min: 1, max: INT32_MAX })
    : GENERATOR_KEY_SPACE_DEFAULT;
  const seedNode = get('seed');
  const seed = seedNode ? r.int(seedNode, 'spec.seed', 'the random seed', { min: 0, max: 0xffffffff }) : GENERATOR_SEED_DEFAULT;
  const batchNode = get('batchSize');
  const batchSize = batchNode
    ? r.int(batchNode, 'spec.batchSize', 'records handed to the engine at once', { min: 1, max: GENERATOR_BATCH_SIZE_MAX })
    : GENERATOR_BATCH_SIZE_DEFAULT;
  const targets = r
    .list(
      r.required(spec, 'targets', 'spec', 'a list of function types').value,
      'spec.targets',
      'function types that receive each record',
      1,
    )
    .map((n, i) => r.typeName(n, r.index('spec.targets', i), 'a function type that receives each record'));
  const vtNode = get('valueType');
  const valueType = vtNode ? r.typeName(vtNode, 'spec.valueType', 'the value type') : 'io.statefun.types/long';
  if (valueType.startsWith('io.statefun.types/') && !GENERATOR_BUILTIN_TYPES.includes(valueType)) {
    r.fail(
      'spec.valueType',
      vtNode?.pos,
      `expected ${GENERATOR_BUILTIN_TYPES.join(' or ')} or a JSON type name of your own, got ${r.found(vtNode)}`,
    );
  }

  let keyDistribution: GeneratorKeyDistribution = 'uniform';
  const kdNode = get('keyDistribution');
  if (kdNode !== undefined) {
    const path = 'spec.keyDistribution';
    if (kdNode.t === 'scalar') {
      if (kdNode.value === 'zipf')
        r.fail(path, kdNode.pos, 'zipf needs an exponent', { fix: 'write keyDistribution: {type: zipf, exponent: 1.1}' });
      r.oneOf(kdNode, path, "how keys are drawn: 'uniform' or {type: zipf, exponent}", ['uniform']);
    } else {
      const kd = r.map(kdNode, path, "'uniform' or {type: zipf, exponent}");
      const type = r.oneOf(r.required(kd, 'type', path, 'uniform or zipf').value, `${path}.type`, 'how keys are drawn', [
        'uniform',
        'zipf',
      ]);
      if (type === 'uniform') {
        r.onlyKeys(kd, path, ['type'], { exponent: "'exponent' is read only when type is zipf" });
      } else {
        r.onlyKeys(kd, path, ['type', 'exponent']);
        const exponent = r.number(
          r.required(kd, 'exponent', path, 'the zipf exponent, > 0').value,
          `${path}.exponent`,
          'the zipf exponent',
          { min: 0, max: 10, minExclusive: true },
        );
        keyDistribution = { type: 'zipf', exponent };
      }
    }
  }

  const doc: GeneratorIngressDocument = {
    kind: 'generator-ingress',
    source: r.source,
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
  return doc;
}

/** The generator a descriptor describes: each record is routed to every target, keyed by a drawn id. */
function generator(d: GeneratorIngressDocument): GeneratorIngress<RoutedMessage[]> {
  const keyOf = (rng: Rng): string =>
    String(d.keyDistribution === 'uniform' ? rng.int(d.keySpace) : rng.zipf(d.keySpace, d.keyDistribution.exponent));
  const value = (i: number, key: string): Message => {
    if (d.valueType === Types.long.typename) return Message.of(Types.long, i);
    if (d.valueType === Types.string.typename) return Message.of(Types.string, String(i));
    return Message.of(Types.json(d.valueType), { seq: i, key });
  };
  const opts: ConstructorParameters<typeof GeneratorIngress<RoutedMessage[]>>[0] = {
    id: d.id,
    ratePerSec: d.ratePerSec,
    batchSize: d.batchSize,
    seed: d.seed,
    make: (i, rng) => {
      const key = keyOf(rng);
      const m = value(i, key);
      return d.targets.map((t) => ({ to: { typename: t, id: key }, message: m }));
    },
  };
  if (d.count !== undefined) opts.count = d.count;
  return new GeneratorIngress<RoutedMessage[]>(opts);
}

/** `io.statefn.generator.v1/ingress`: each record is an array of routed messages (one per target). */
export const generatorIngressKind: ConnectorKind<GeneratorIngressDocument> = {
  kinds: [GENERATOR_INGRESS_KIND],
  role: 'ingress',
  parse: (doc, r) => parseGeneratorIngress(r, doc.spec),
  build: (d, { app }) => {
    // The router flattens each record into its messages.
    app.ingress(generator(d), (r: RoutedMessage[]) => r);
  },
};
