/** module.yaml: StateFun 3.x component documents (plus statefn's own kinds) as typed descriptors. */
export {
  MODULE_FILE_BYTES_MAX,
  loadModule,
  loadModuleYaml,
  moduleKindNames,
  moduleKinds,
  parseModule,
  parseModuleYaml,
} from './module_yaml.js';
export type { ModuleDocument, ParsedModuleDocument } from './module_yaml.js';
export { ENDPOINT_KIND_V1, ENDPOINT_KIND_V2, endpointKind, endpointMatches } from './endpoint_kind.js';
export type { EndpointDocument, HttpTls, HttpTransport } from './endpoint_kind.js';
export { ENGINE_CONFIG_KIND, engineConfigKind } from './engine_config_kind.js';
export type { EngineConfigDocument } from './engine_config_kind.js';
export type { ModuleIdentity, ModuleKind } from './module_kind.js';
export { Reader, didYouMean } from './yaml_reader.js';
export { DocContext, found, joinIndex, joinKey } from './yaml_tree.js';
export { DURATION_FORMS, SIZE_FORMS, formatBytes, formatDurationMs, parseBytes, parseDurationMs } from './units.js';
