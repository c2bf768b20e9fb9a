import WebSocket from 'ws';
import type { GatewaySocket } from '../../../websocket-server/src/socket-sessions.js';
import type { UserData } from '../../../websocket-server/src/user-data.js';

/**
 * A `ws` socket seen through the interface the uWS gateway's modules take (`GatewaySocket`), with uWS' semantics where they differ from `ws`':
 * - `send` returns 1 (written) or 0 (now queued in user space: backpressure). `ws` never drops a
 *   frame the way uWS does past `maxBackpressure` (2); delivery's own hard limit is the only cap.
 * - `end` runs `onEnd` at once, the way uWS calls its `close` handler from inside `end()`: the
 *   socket is closed for the gateway before `ws` has finished the closing handshake.
 */
export interface WsSocket extends GatewaySocket {
  readonly ws: WebSocket;
  /** Last time the peer sent anything (a frame or a pong): what the idle sweep looks at. */
  lastSeenMs: number;
  /** Drops the TCP connection without a close frame (idle timeout, shutdown stragglers). */
  terminate(): void;
}

export function wrapSocket(ws: WebSocket, data: UserData, onEnd: (socket: WsSocket) => void): WsSocket {
  let ended = false;
  const finish = () => {
    if (ended) return;
    ended = true;
    onEnd(socket);
  };
  const socket: WsSocket = {
    ws,
    lastSeenMs: Date.now(),
    getUserData: () => data,
    send(message) {
      // While `ws` is closing a send is lost anyway (it would only grow `bufferedAmount`); uWS has
      // already run `close` by then, so the gateway never sees this case there.
      if (ws.readyState !== WebSocket.OPEN) return 1;
      ws.send(message);
      return ws.bufferedAmount > 0 ? 0 : 1;
    },
    getBufferedAmount: () => ws.bufferedAmount,
    end(code, reason) {
      if (ended) return;
      ws.close(code, reason);
      finish();
    },
    terminate() {
      ws.terminate();
      finish();
    },
  };
  return socket;
}
