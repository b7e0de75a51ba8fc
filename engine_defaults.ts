/**
 * The engine as the package ships it: the core engine (engine/, which never imports a connector)
 * given the built-in connector kinds for module.yaml and a JSON-lines dead-letter file.
 */
import { join } from 'node:path';
import type { AppModuleRef } from './api/load_app.js';
import type { EngineOptions } from './config/engine_options.js';
import { Engine as CoreEngine } from './engine/engine.js';
import { FileEgress } from './connectors/file/file_egress.js';
import { DEAD_LETTER_EGRESS } from './api/app.js';
import { builtinConnectorKinds } from './connectors/registry.js';

/** Options with the built-in connector kinds (plus the caller's) and the dead-letter file filled in where the caller set none. */
export function withBuiltins(options: EngineOptions & Record<string, unknown>): EngineOptions & Record<string, unknown> {
  return {
    deadLetterEgress: (stateDir: string) => new FileEgress({ id: DEAD_LETTER_EGRESS, path: join(stateDir, 'dead-letters.jsonl') }),
    ...options,
    // A third-party connector's kinds are added to the built-in ones, not put in their place.
    connectorKinds: [...builtinConnectorKinds, ...(options.connectorKinds ?? [])],
  };
}

/** The engine with statefn's built-in connectors (see {@link CoreEngine} for the API). */
export class Engine extends CoreEngine {
  static override start(app: string | AppModuleRef, options: EngineOptions & Record<string, unknown> = {}): Promise<CoreEngine> {
    return CoreEngine.start(app, withBuiltins(options));
  }
}
