/**
 * statefn's public API: what an application module imports (`import { createApp, Types, Message }
 * from 'statefn'`).
 */
export { App, createApp, DEAD_LETTER_EGRESS } from './api/app.js';
export type { IngressRegistration } from './api/app.js';
export type { Address } from './api/address.js';
export { Message } from './api/message.js';
export { Types, builtinType } from './api/types.js';
export type { Type, TypeOf } from './api/types.js';
export { defineFunction, valueSpec } from './api/function_api.js';
export type { Context, FunctionSpec, Handler, Storage, ValueSpec } from './api/function_api.js';
export type {
  EgressConnector,
  EgressContext,
  EgressRecord,
  IngressConnector,
  IngressContext,
  Logger,
  RoutedMessage,
  Router,
} from './api/connector_api.js';
export { ErrorCode, StatefnError } from './shared/errors.js';
export { ManualClock, systemClock, type Clock } from './shared/clock.js';
/** The stable 32-bit hash statefn routes keys by (MurmurHash3 x86_32 of the UTF-8 bytes); apps may use it for deterministic choices. */
export { murmur3String } from './shared/key_group.js';
export { LIMIT_SPECS, defaultLimits, type EngineLimits } from './shared/limits.js';
export { type CheckpointInfo, type EngineStats, type FlushInfo } from './engine/engine.js';
export { Engine } from './engine_defaults.js';
export type { EngineOptions } from './config/engine_options.js';
export {
  FileEgress,
  GeneratorIngress,
  HttpIngress,
  MemoryEgress,
  MemoryIngress,
  StdoutEgress,
  createRng,
  KafkaIngress,
  KafkaEgress,
  KafkaProducerRecordType,
  KAFKA_PRODUCER_RECORD_TYPENAME,
  kafkaProducerRecord,
} from './connectors/index.js';
export type {
  Rng,
  KafkaIngressOptions,
  KafkaIngressRecord,
  KafkaIngressTopic,
  KafkaRouter,
  KafkaStartupPosition,
  KafkaEgressOptions,
  KafkaDeliverySemantic,
  KafkaProducerRecord,
} from './connectors/index.js';
export { builtinConnectorKinds } from './connectors/index.js';
export type {
  ConnectorBuildContext,
  ConnectorDescriptor,
  ConnectorKind,
  ModuleDescriptor,
  ModuleReader,
  ModuleSource,
  ModuleYamlDocument,
  ReaderFailOptions,
  ValueBounds,
  YamlEntry,
  YamlMap,
  YamlNode,
  YamlPos,
  YamlScalar,
  YamlSeq,
} from './api/connector_kind.js';
