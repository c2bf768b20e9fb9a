import { createRequire } from 'node:module';
import type * as UwsTypes from 'uWebSockets.js';

export type Uws = typeof UwsTypes;

/**
 * Loads uWebSockets.js and says whether the native addon loaded. The unofficial build we alias
 * silently falls back to a slow pure-JS implementation when its binary does not load on this
 * Node/glibc; a gateway must refuse to run on that fallback rather than degrade quietly.
 */
export function loadUws(): { uws: Uws; native: boolean } {
  const require = createRequire(import.meta.url);
  const uws = require('uWebSockets.js') as Uws;
  const native = Function.prototype.toString.call(uws.App).includes('[native code]');
  return { uws, native };
}
