/**
 * statefn's public API: what an application module imports (`import { createApp, Types, Message }
 * from 'statefn'`).
 */
export { App, createApp, DEAD_LETTER_EGRESS } from './shared/app.js';
export type { IngressRegistration } from './shared/app.js';
export type { Address } from './shared/address.js';
export { Message } from './shared/message.js';
export { Types, builtinType } from './shared/types.js';
export type { Type, TypeOf } from './shared/types.js';
export { defineFunction, valueSpec } from './shared/function_api.js';
export type { Context, FunctionSpec, Handler, Storage, ValueSpec } from './shared/function_api.js';
export type {
  EgressConnector, EgressContext, EgressRecord, IngressConnector, IngressContext, Logger, RoutedMessage, Router,
} from './shared/connector_api.js';
export { ErrorCode, StatefnError } from './shared/errors.js';
export { ManualClock, systemClock, type Clock } from './shared/clock.js';
export { LIMIT_SPECS, defaultLimits, type EngineLimits } from './shared/limits.js';
export { Engine, type EngineStats, type FlushInfo } from './runtime/engine.js';
export type { EngineOptions } from './runtime/engine_options.js';
export {
  FileEgress, GeneratorIngress, HttpIngress, MemoryEgress, MemoryIngress, StdoutEgress, createRng,
  KafkaIngress, KafkaEgress, KafkaProducerRecordType, KAFKA_PRODUCER_RECORD_TYPENAME, kafkaProducerRecord,
} from '../connectors/index.js';
export type {
  Rng, KafkaIngressOptions, KafkaIngressRecord, KafkaIngressTopic, KafkaRouter, KafkaStartupPosition, KafkaEgressOptions,
  KafkaDeliverySemantic, KafkaProducerRecord,
} from '../connectors/index.js';
