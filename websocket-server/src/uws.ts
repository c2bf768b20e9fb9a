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

/** `LIBUS_LISTEN_EXCLUSIVE_PORT`: uWS listens with SO_REUSEPORT unless told otherwise. */
const EXCLUSIVE_PORT = 1;

type ListenCallback = (socket: UwsTypes.us_listen_socket | false) => void;

/**
 * Listens on `host:port` exclusively. uWS' default shares the port (SO_REUSEPORT): a second gateway
 * or `npm start` on a port already in use would silently take half its connections, each process
 * with its own state, instead of failing. The native `listen(host, port, options, cb)` exists; the
 * typings only declare it without a host.
 */
export function listenExclusive(
  app: UwsTypes.TemplatedApp,
  host: string,
  port: number,
  cb: ListenCallback,
): void {
  const listen = app.listen.bind(app) as unknown as (
    h: string,
    p: number,
    o: number,
    c: ListenCallback,
  ) => void;
  listen(host, port, EXCLUSIVE_PORT, cb);
}
