/** Import an application module (on the main thread and in every worker). */
import { APP_BRAND, App } from './app.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';

export interface AppModuleRef {
  /**
   * file: URL of a module whose default export (or `export`) is an App or `(params) => App`;
   * absent for an application made of a module.yaml only.
   */
  module?: string;
  /** module.yaml file whose documents the main thread adds to the app (connectors, options). */
  moduleYaml?: string;
  export?: string;
  params?: unknown;
  /**
   * Import a fresh instance of the module (a restart in the same process must not reuse
   * connectors that already ran): > 0 adds `?statefn-reload=<n>` to its URL.
   */
  reload?: number;
}

/**
 * An App of any copy of statefn (see APP_BRAND): the module may resolve 'statefn' to a copy other
 * than the one running the engine, where `instanceof App` would be false.
 */
function isApp(x: unknown): x is App {
  return typeof x === 'object' && x !== null && (x as Partial<Record<typeof APP_BRAND, unknown>>)[APP_BRAND] === true;
}

export async function loadApp(ref: AppModuleRef): Promise<App> {
  if (ref.module === undefined) return new App();
  let mod: Record<string, unknown>;
  try {
    const url = ref.reload ? `${ref.module}${ref.module.includes('?') ? '&' : '?'}statefn-reload=${ref.reload}` : ref.module;
    mod = (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new StatefnError(ErrorCode.CONFIG_INVALID, `cannot load application module ${ref.module}: ${(e as Error).message}`, { cause: e });
  }
  const name = ref.export ?? 'default';
  let v = mod[name];
  if (typeof v === 'function' && !isApp(v)) v = await (v as (p: unknown) => unknown)(ref.params);
  if (!isApp(v)) {
    throw new StatefnError(
      ErrorCode.CONFIG_INVALID,
      `${ref.module}: export '${name}' must be an App (createApp()) or a function returning one; got ${typeof v}`,
    );
  }
  return v;
}
