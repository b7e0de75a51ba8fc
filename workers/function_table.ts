/**
 * The function types a worker runs, each with what invoking it needs: embedded ones from the
 * application (unless a remote endpoint serves their type) and remote ones, made on their first
 * message.
 */
import type { App } from '../api/app.js';
import { endpointFor, endpointUrl, type RemoteEndpoint } from '../api/endpoint.js';
import type { FunctionSpec, ValueSpec } from '../api/function_api.js';
import { ErrorCode, StatefnError } from '../shared/errors.js';
import { storageClass, type Invocation } from './invocation.js';
import { REMOTE_STATE_SPEC, type RemoteFnState } from './remote_batch.js';

/** One function type as this worker runs it. */
export interface FnRuntime {
  readonly spec: FunctionSpec;
  /** Set for a function type served by a remote endpoint (its state is REMOTE_STATE_SPEC). */
  readonly remote?: RemoteFnState;
  readonly specs: readonly ValueSpec[];
  readonly specIndex: ReadonlyMap<string, number>;
  readonly Storage: new (inv: Invocation) => object;
  /** True when a value expires a while after the last call (every call then changes state). */
  readonly hasCallTtl: boolean;
}

export class FunctionTable {
  private readonly fns = new Map<string, FnRuntime>();

  constructor(
    app: App,
    private readonly endpoints: readonly RemoteEndpoint[],
  ) {
    for (const spec of app.functions.values()) {
      // A type a remote endpoint serves runs remote (configuration decides, not the code).
      if (endpointFor(this.endpoints, spec.typename) !== undefined) continue;
      const specs = spec.specs ?? [];
      this.fns.set(spec.typename, {
        spec,
        specs,
        specIndex: new Map(specs.map((s, i) => [s.name, i])),
        Storage: storageClass(specs),
        hasCallTtl: specs.some((s) => s.expireAfterCall !== undefined),
      });
    }
  }

  /** The embedded function types, in the application's order. */
  embeddedTypes(): string[] {
    return [...this.fns.keys()];
  }

  /** The runtime of `typename`: known, or remote and made now, or undefined (nobody serves it). */
  get(typename: string): FnRuntime | undefined {
    return this.fns.get(typename) ?? this.remoteFn(typename);
  }

  /** The runtime of a type already known (every state in the cache has one). */
  known(typename: string): FnRuntime | undefined {
    return this.fns.get(typename);
  }

  private remoteFn(typename: string): FnRuntime | undefined {
    const endpoint = endpointFor(this.endpoints, typename);
    if (endpoint === undefined) return undefined;
    const specs = [REMOTE_STATE_SPEC];
    const fn: FnRuntime = {
      spec: {
        typename,
        specs,
        handler: () => {
          throw new StatefnError(ErrorCode.INVARIANT, `remote function ${typename} invoked as embedded`);
        },
      },
      remote: { typename, endpoint, url: endpointUrl(endpoint, typename), specs: new Map() },
      specs,
      specIndex: new Map([[REMOTE_STATE_SPEC.name, 0]]),
      Storage: storageClass(specs),
      hasCallTtl: false,
    };
    this.fns.set(typename, fn);
    return fn;
  }
}
