/**
 * `@relay/common/contract`: the part of the contract a browser needs (frame schemas, HTTP answer
 * shapes, the error catalog, `compareStreamIds`), with no Node built-ins and no full zod, so a
 * browser bundle that imports it stays small (client/, web/). Everything here is also exported from
 * `@relay/common`; nothing is defined twice.
 */
export * from './server-frames.js';
export * from './http-api.js';
export * from './presence.js';
export { compareStreamIds } from './stream-ids.js';
export { ERROR_CODES, ERROR_CODE_LIST, isRetryable, type ErrorCode } from '../errors.js';
export type { ClientCancelFrame, ClientHelloFrame, ClientMessageFrame } from './client-frames.js';
