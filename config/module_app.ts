/**
 * Turns a module.yaml file into connectors and options on an App: each document is built by the
 * kind that parsed it (config's own kinds, or the connector kinds the engine was given). Runs on
 * the main thread only; workers learn the egress ids it adds through their init data.
 */
import { App } from '../api/app.js';
import type { ConnectorKind } from '../api/connector_kind.js';
import { type ParsedModuleDocument, loadModule } from './module_yaml.js';

/**
 * Read the module.yaml at `file` and add what it declares to `app`, building connectors with
 * `kinds` (the engine's EngineOptions.connectorKinds). The engine calls only this.
 */
export async function loadModuleInto(app: App, file: string, kinds: readonly ConnectorKind[]): Promise<void> {
  applyModuleDocuments(app, await loadModule(file, kinds));
}

/** Add the connectors and options the parsed documents describe to `app`. */
export function applyModuleDocuments(app: App, docs: readonly ParsedModuleDocument[]): App {
  for (const d of docs) {
    const s = d.descriptor.source;
    d.kind.build(d.descriptor, { app, where: `${s.file}:${s.line}` });
  }
  return app;
}

export function emptyApp(): App {
  return new App();
}
