/**
 * `statefn/sdk`: serve stateful functions remotely over StateFun's HTTP request-reply protocol.
 * The functions use statefn's own function API, so the same `defineFunction` specs run embedded
 * in the engine or remotely (behind StateFun's runtime or statefn's) by configuration alone:
 *
 *   import { defineFunction, serve, Types } from 'statefn/sdk';
 *   const greeter = defineFunction({ typename: 'example/greeter', specs: [{ name: 'seen', type: Types.int }], handler(ctx, msg) { ... } });
 *   const server = await serve([greeter], { port: 8000, path: '/statefun' });
 */
export { handleInvocationBatch, functionIndex, type Functions, type FunctionIndex } from './request_reply.js';
export {
  requestReplyHandler,
  serve,
  httpStatusOf,
  DEFAULT_MAX_BODY_BYTES,
  type RequestReplyHandlerOptions,
  type ServeOptions,
  type RemoteFunctionServer,
} from './server.js';

// The function API, so a remote-only module needs no other import.
export { App, createApp } from '../api/app.js';
export type { Address } from '../api/address.js';
export { Message } from '../api/message.js';
export { Types } from '../api/types.js';
export type { Type, TypeOf } from '../api/types.js';
export { defineFunction, valueSpec } from '../api/function_api.js';
export type { Context, FunctionSpec, Handler, Storage, ValueSpec } from '../api/function_api.js';
export { ErrorCode, StatefnError } from '../shared/errors.js';
export { ProtocolError } from '../remote/protocol.js';
