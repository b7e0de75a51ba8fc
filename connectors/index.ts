/** The connectors that ship with statefn. */
export { createRng, Xoshiro128, type Rng } from './generator/rng.js';
export { GeneratorIngress, type GeneratorIngressOptions } from './generator/generator_ingress.js';
export { HttpIngress, type HttpIngressOptions, type HttpIngressStats } from './http/http_ingress.js';
export {
  FileEgress,
  StdoutEgress,
  formatJsonLine,
  formatTextLine,
  type FileEgressOptions,
  type StdoutEgressOptions,
} from './file/file_egress.js';
export { MemoryIngress, type MemoryIngressOptions } from './memory/memory_ingress.js';
export { MemoryEgress, type MemoryEgressCondition, type MemoryEgressOptions } from './memory/memory_egress.js';
export {
  KafkaIngress,
  type KafkaIngressOptions,
  type KafkaIngressRecord,
  type KafkaIngressStats,
  type KafkaIngressTopic,
  type KafkaRouter,
  type KafkaStartupPosition,
} from './kafka/kafka_ingress.js';
export { KafkaEgress, type KafkaDeliverySemantic, type KafkaEgressOptions, type KafkaEgressStats } from './kafka/kafka_egress.js';
export {
  KAFKA_PRODUCER_RECORD_TYPENAME,
  KafkaProducerRecordType,
  kafkaProducerRecord,
  type KafkaHeader,
  type KafkaProducerRecord,
} from './kafka/kafka_record.js';
export { builtinConnectorKinds } from './registry.js';
export {
  KAFKA_EGRESS_KIND,
  KAFKA_INGRESS_KIND,
  kafkaEgressKind,
  kafkaIngressKind,
  type KafkaEgressDocument,
  type KafkaIngressDocument,
} from './kafka/kafka_kind.js';
export { HTTP_INGRESS_KIND, httpIngressKind, type HttpIngressDocument } from './http/http_kind.js';
export { FILE_EGRESS_KIND, fileEgressKind, type FileEgressDocument } from './file/file_kind.js';
export {
  GENERATOR_INGRESS_KIND,
  generatorIngressKind,
  type GeneratorIngressDocument,
  type GeneratorKeyDistribution,
} from './generator/generator_kind.js';
