/**
 * The module.yaml kinds of the connectors that ship with statefn. The engine receives this list
 * (EngineOptions.connectorKinds); a third-party connector adds its own kinds beside these.
 */
import type { ConnectorKind } from '../api/connector_kind.js';
import { fileEgressKind } from './file/file_kind.js';
import { generatorIngressKind } from './generator/generator_kind.js';
import { httpIngressKind } from './http/http_kind.js';
import { kafkaEgressKind, kafkaIngressKind } from './kafka/kafka_kind.js';

/** In the order error messages list them (after the StateFun endpoints, before the engine config). */
export const builtinConnectorKinds: readonly ConnectorKind[] = [
  kafkaIngressKind,
  kafkaEgressKind,
  generatorIngressKind,
  httpIngressKind,
  fileEgressKind,
];
