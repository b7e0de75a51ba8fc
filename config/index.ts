/** module.yaml: StateFun 3.x component documents (plus statefn's own kinds) as typed descriptors. */
export {
  MODULE_FILE_BYTES_MAX,
  MODULE_KINDS,
  SUPPORTED_MODULE_KINDS,
  endpointMatches,
  endpointUrl,
  loadModuleYaml,
  parseModuleYaml,
} from './module_yaml.js';
export type {
  EndpointDocument,
  EngineConfigDocument,
  FileEgressDocument,
  GeneratorIngressDocument,
  GeneratorKeyDistribution,
  HttpIngressDocument,
  HttpTls,
  HttpTransport,
  KafkaDeliverySemantic,
  KafkaEgressDocument,
  KafkaIngressDocument,
  KafkaIngressTopic,
  KafkaStartupPosition,
  ModuleDocument,
  ModuleSource,
} from './module_yaml.js';
export { DURATION_FORMS, SIZE_FORMS, formatBytes, formatDurationMs, parseBytes, parseDurationMs } from './units.js';
