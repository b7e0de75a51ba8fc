/**
 * `App`: what a user module registers: embedded functions, ingresses (with routers) and
 * egresses, plus engine options. The module is imported on the main thread (which uses the
 * connectors) and in every worker (which uses the functions), so registering must have no side
 * effects beyond building this object.
 */
import { endpointFor, remoteEndpoint, type RemoteEndpoint } from './endpoint.js';
import { checkTypeName } from './address.js';
import type { EgressConnector, IngressConnector, Router } from './connector_api.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import type { FunctionSpec, ValueSpec } from './function_api.js';

export interface IngressRegistration {
  readonly connector: IngressConnector<unknown>;
  readonly router: Router<unknown> | undefined;
}

/**
 * Marks App instances in a way that holds across copies of statefn: `Symbol.for` returns the same
 * symbol in every copy of the package and every thread, so an application that reaches another
 * copy through `import ... from 'statefn'` (a second install, or dist/ beside the sources) still
 * builds an App the engine recognizes, where `instanceof App` would reject it.
 */
export const APP_BRAND: unique symbol = Symbol.for('statefn.App');

export class App {
  /** See APP_BRAND: what loadApp checks instead of `instanceof App`. */
  readonly [APP_BRAND] = true;
  readonly functions = new Map<string, FunctionSpec>();
  /** Remote endpoints (StateFun's HTTP request-reply protocol); they take precedence over embedded functions of the types they serve. */
  readonly endpoints: RemoteEndpoint[] = [];
  readonly ingresses: IngressRegistration[] = [];
  readonly egresses = new Map<string, EgressConnector>();
  /** Engine options the app asks for (the CLI and `Engine` options override them). */
  options: Record<string, unknown> = {};

  /** Register an embedded function type. */
  function<S extends readonly ValueSpec[]>(spec: FunctionSpec<S>): this {
    const where = `function ${JSON.stringify(spec?.typename)}`;
    checkTypeName(spec?.typename, `${where}: typename`);
    if (typeof spec.handler !== 'function') {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}: handler must be a function`);
    }
    if (this.functions.has(spec.typename)) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `${where}: registered twice`);
    }
    const names = new Set<string>();
    for (const [i, v] of (spec.specs ?? []).entries()) {
      const at = `${where}: specs[${i}]`;
      if (typeof v?.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(v.name)) {
        throw new StatefnError(ErrorCode.CONFIG_INVALID, `${at}.name: expected an identifier, got ${JSON.stringify(v?.name)}`);
      }
      if (names.has(v.name)) throw new StatefnError(ErrorCode.CONFIG_INVALID, `${at}.name: '${v.name}' declared twice`);
      names.add(v.name);
      if (typeof v.type?.serialize !== 'function' || typeof v.type?.deserialize !== 'function') {
        throw new StatefnError(ErrorCode.CONFIG_INVALID, `${at}.type: expected a Type (e.g. Types.long)`);
      }
      checkTypeName(v.type.typename, `${at}.type.typename`);
      for (const ttl of ['expireAfterWrite', 'expireAfterCall'] as const) {
        const ms = v[ttl];
        if (ms !== undefined && (!Number.isInteger(ms) || ms <= 0)) {
          throw new StatefnError(ErrorCode.CONFIG_INVALID, `${at}.${ttl}: expected a positive integer of milliseconds, got ${String(ms)}`);
        }
      }
      if (v.expireAfterWrite !== undefined && v.expireAfterCall !== undefined) {
        throw new StatefnError(ErrorCode.CONFIG_INVALID, `${at}: set expireAfterWrite or expireAfterCall, not both`);
      }
    }
    this.functions.set(spec.typename, spec);
    return this;
  }

  /**
   * Serve function types (`namespace/name` or `namespace/*`) from a remote endpoint over StateFun's
   * HTTP request-reply protocol: `app.remote({ functions: 'example/*', urlPathTemplate:
   * 'http://localhost:8000/statefun' })`. An embedded function of a type an endpoint serves is not
   * used, so one codebase runs embedded or remote by configuration alone.
   */
  remote(endpoint: Partial<RemoteEndpoint> & Pick<RemoteEndpoint, 'functions' | 'urlPathTemplate'>): this {
    const e = remoteEndpoint(endpoint);
    const dup = this.endpoints.find((x) => x.functions === e.functions);
    if (dup !== undefined)
      throw new StatefnError(
        ErrorCode.CONFIG_INVALID,
        `remote endpoint for '${e.functions}' (${e.source}) is declared twice (also ${dup.source})`,
      );
    this.endpoints.push(e);
    return this;
  }

  /** True if messages to `typename` can be delivered: a remote endpoint serves it, or it is registered embedded. */
  hasFunction(typename: string): boolean {
    return this.functions.has(typename) || endpointFor(this.endpoints, typename) !== undefined;
  }

  /** Register an ingress and, unless its records are already routed messages, its router. */
  ingress<R>(connector: IngressConnector<R>, router?: Router<R>): this {
    checkTypeName(connector?.id, 'ingress id');
    if (this.ingresses.some((i) => i.connector.id === connector.id)) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `ingress '${connector.id}' registered twice`);
    }
    this.ingresses.push({ connector, router: router as Router<unknown> | undefined });
    return this;
  }

  /** Register an egress; functions reach it with `ctx.egress(id, message)`. */
  egress(connector: EgressConnector): this {
    checkTypeName(connector?.id, 'egress id');
    if (this.egresses.has(connector.id)) {
      throw new StatefnError(ErrorCode.CONFIG_INVALID, `egress '${connector.id}' registered twice`);
    }
    this.egresses.set(connector.id, connector);
    return this;
  }

  /** Engine options (workers, limits, ...) this app asks for. */
  configure(options: Record<string, unknown>): this {
    this.options = { ...this.options, ...options };
    return this;
  }
}

export function createApp(): App {
  return new App();
}

/** Egress id of the dead-letter egress every app has (a file under the state dir by default). */
export const DEAD_LETTER_EGRESS = 'statefn/dead-letters';
