/**
 * The benchmark's baseline: the uWS gateway (websocket-server/src/gateway.ts) rebuilt on Node's
 * `http` server and the `ws` package. Everything that is not the WebSocket library is the uWS
 * gateway's own code (intake, per-user subscriptions, delivery, resume, tokens, metrics), so a
 * side-by-side run measures the library. Behaviour follows gateway.ts section by section; where
 * `ws` needs something uWS does natively (idle pings, drain, synchronous close) the comment says so.
 */
import {
  STATUS_CODES,
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { once, readyResponse, redactUrl, renderMetrics } from '@relay/common';
import { WebSocketServer, type RawData } from 'ws';
import type { Gateway, GatewayDeps } from '../../../websocket-server/src/gateway.js';
import { createSocketSessions } from '../../../websocket-server/src/socket-sessions.js';
import type { UserData } from '../../../websocket-server/src/user-data.js';
import { wrapSocket, type WsSocket } from './ws-socket.js';

export const BASELINE_SERVICE = 'baseline-gateway';

/** The uWS gateway's dependencies minus the uWS module and the static UI (benchmarks need neither). */
export type BaselineGatewayDeps = Omit<GatewayDeps, 'uws' | 'staticFiles'>;

/**
 * After `close()` sent 1001 to every socket, how long clients get to answer the close frame before
 * the rest are dropped. uWS releases its port without waiting; `server.close()` waits for every
 * connection, so it needs a bound well under the shutdown deadline.
 */
const CLOSE_GRACE_MS = 1000;

function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const real = req.headers['x-real-ip'];
    if (typeof real === 'string' && real) return real;
    const header = req.headers['x-forwarded-for'];
    const forwarded = (Array.isArray(header) ? header[0] : header)?.split(',')[0]?.trim();
    if (forwarded) return forwarded;
  }
  return req.socket.remoteAddress ?? '';
}

/** `ws` hands over a Buffer with the default binaryType; the other shapes are for completeness. */
function toBuffer(raw: RawData): Buffer {
  if (Buffer.isBuffer(raw)) return raw;
  return Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
}

/** Same contract as the uWS gateway's `Gateway`: the benchmark drives both the same way. */
export function createBaselineGateway(deps: BaselineGatewayDeps): Gateway {
  const { settings, logger, metrics } = deps;
  const idleMs = settings.idleTimeoutSeconds * 1000;
  let server: Server | undefined;
  let idleTimer: NodeJS.Timeout | undefined;

  // The uWS gateway's own socket handling: only the transport below differs.
  const sessions = createSocketSessions<WsSocket>(deps);
  const { sockets } = sessions;
  const m = sessions.metrics;

  // The server keeps no fields on `ws` objects: the socket's state is its UserData, as in uWS.
  // `clientTracking` gives the set of sockets still open at the TCP level, for the shutdown.
  const wss = new WebSocketServer({
    noServer: true,
    // As in the uWS gateway: the gateway enforces maxPayloadBytes itself (1009 with a reason), the
    // library only caps what one frame may cost at 4× that.
    maxPayload: settings.maxPayloadBytes * 4,
    // uWS' default (and the uWS gateway's setting): no compression.
    perMessageDeflate: false,
    clientTracking: true,
  });

  function onMessage(ws: WsSocket, raw: RawData, isBinary: boolean): void {
    ws.lastSeenMs = Date.now();
    sessions.message(ws, toBuffer(raw), isBinary);
  }

  /**
   * uWS' `idleTimeout` + `sendPingsAutomatically`, which `ws` leaves to the application: a socket
   * silent for half the timeout is pinged, one silent for the whole timeout is dropped.
   */
  function sweepIdle(): void {
    const now = Date.now();
    for (const ws of sockets.all()) {
      if (!ws.getUserData().connection.open) continue;
      const silent = now - ws.lastSeenMs;
      if (silent >= idleMs) ws.terminate();
      else if (silent >= idleMs / 2) ws.ws.ping();
    }
  }

  function onConnection(tcp: Duplex, data: UserData, ws: WsSocket['ws']): void {
    const socket = wrapSocket(ws, data, sessions.closed);
    ws.on('message', (raw, isBinary) => onMessage(socket, raw, isBinary));
    ws.on('pong', () => (socket.lastSeenMs = Date.now()));
    ws.on('close', () => sessions.closed(socket));
    // Protocol errors (a frame past maxPayload, bad UTF-8): `ws` closes the socket itself.
    ws.on('error', (err) => logger.debug({ err, ...data.connection.logContext }, 'websocket error'));
    // uWS' `drain`: the TCP socket emits it once a write that filled its buffer has gone out.
    tcp.on('drain', () => sessions.drain(socket));
    sessions.open(socket);
  }

  /** An HTTP answer on a socket that asked to upgrade (there is no ServerResponse for it). */
  function respond(tcp: Duplex, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    tcp.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
        'Content-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(text)}\r\n` +
        'Connection: close\r\n\r\n' +
        text,
    );
  }

  function reject(tcp: Duplex, status: number, reason: string): void {
    m.upgradesRejected.inc({ reason });
    respond(tcp, status, { error: reason });
  }

  /** gateway.ts' `upgrade`: every check, and the token verified, before the 101 goes out. */
  function upgrade(req: IncomingMessage, tcp: Duplex, head: Buffer): void {
    // Node removes its own error listener from an upgrading socket; until `ws` adds its own, a reset
    // would otherwise be an uncaught error.
    const onEarlyError = (err: Error) => logger.debug({ err }, 'socket error before the upgrade');
    tcp.on('error', onEarlyError);
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (url.pathname !== '/ws') return respond(tcp, 404, { error: 'not_found', path: url.pathname });
    const request = {
      query: url.searchParams,
      origin: req.headers.origin ?? '',
      ip: clientIp(req, settings.trustProxy),
    };
    const admission = sessions.admit(request);
    if (!admission.ok) return reject(tcp, admission.status, admission.reason);
    tcp.off('error', onEarlyError);
    wss.handleUpgrade(req, tcp, head, (ws) => onConnection(tcp, admission.data, ws));
  }

  function json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  const ready = sessions.ready;

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && path === '/health') {
      return json(res, 200, {
        status: 'ok',
        service: BASELINE_SERVICE,
        server_id: deps.serverId,
        active_users: sockets.users,
        total_connections: sockets.connections,
        draining: sessions.draining,
        model: settings.modelLabel,
      });
    }
    if (req.method === 'GET' && path === '/ready') {
      const answer = readyResponse(BASELINE_SERVICE, ready());
      return json(res, answer.statusCode, answer.body);
    }
    if (req.method === 'GET' && path === '/metrics') {
      // As the uWS gateway: readiness gauges as of this scrape.
      ready();
      renderMetrics(metrics.registry).then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err: unknown) => {
          logger.warn({ err }, 'metrics rendering failed');
          json(res, 500, { error: 'internal_error' });
        },
      );
      return;
    }
    json(res, 404, { error: 'not_found', path: redactUrl(path) });
  }

  /** Stops listening; sockets that have not finished their closing handshake by then are dropped. */
  async function stopListening(s: Server): Promise<void> {
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeIdleConnections();
    const grace = new AbortController();
    const late = await Promise.race([
      closed.then(() => false),
      delay(CLOSE_GRACE_MS, true, { signal: grace.signal }).catch(() => false),
    ]);
    grace.abort();
    if (!late) return;
    for (const ws of wss.clients) ws.terminate();
    s.closeAllConnections();
    await closed;
  }

  return {
    async start() {
      await sessions.watchRedis();
      idleTimer = setInterval(sweepIdle, Math.max(1000, idleMs / 4));
      idleTimer.unref();
      const s = createServer(onRequest);
      s.on('upgrade', upgrade);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(deps.port, deps.host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      server = s;
      const address = s.address();
      return { port: typeof address === 'object' && address ? address.port : deps.port };
    },
    close: once(async () => {
      // As gateway.ts: 503 and upstream_unavailable from here on, in-flight publishes get their
      // ack (up to DRAIN_TIMEOUT_MS), then every socket gets 1001 and the port is released.
      clearInterval(idleTimer);
      await sessions.drainAndClose();
      if (server) await stopListening(server);
      server = undefined;
    }),
    ready,
    stats: () => ({ users: sockets.users, connections: sockets.connections }),
    resync: sessions.resync,
    suspend: sessions.suspend,
  };
}
