/**
 * A connector's module.yaml kind: the schema of its document and how to build the connector from
 * it. Each connector folder exports its kinds beside its class; `connectors/registry.ts` lists the
 * built-in ones; the engine receives the list (EngineOptions.connectorKinds) and never imports a
 * connector.
 *
 * PROVISIONAL: the shape is completed by the connectors-as-plug-ins step.
 */
export interface ConnectorKind {
  /** The module.yaml `kind:` this entry reads, e.g. `io.statefun.kafka.v1/ingress`. */
  readonly kind: string;
}
