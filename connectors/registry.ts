/**
 * The module.yaml kinds of the connectors that ship with statefn. The engine receives this list
 * (EngineOptions.connectorKinds); a third-party connector adds its own kinds beside these.
 *
 * PROVISIONAL: filled by the connectors-as-plug-ins step.
 */
import type { ConnectorKind } from '../api/connector_kind.js';

export const builtinConnectorKinds: readonly ConnectorKind[] = [];
