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
import {
  ERROR_CODES,
  TOPICS,
  clientFrameSchemas,
  once,
  parseClientFrame,
  redactUrl,
  renderMetrics,
  serializeFrame,
  type ServerFrame,
} from '@relay/common';
import { WebSocketServer, type RawData } from 'ws';
import { deliveryDefaults } from '../../../websocket-server/src/config.js';
import { STREAM_ID_PATTERN } from '../../../websocket-server/src/event-id.js';
import type { Gateway, GatewayDeps } from '../../../websocket-server/src/gateway.js';
import { createGatewayMetrics } from '../../../websocket-server/src/gateway-metrics.js';
import { createMessageIntake } from '../../../websocket-server/src/message-intake.js';
import { resumeSocket } from '../../../websocket-server/src/resume.js';
import { createDelivery, createOutbox } from '../../../websocket-server/src/socket-delivery.js';
import { IDLE_QUEUE, type UserData } from '../../../websocket-server/src/user-data.js';
import { createUserSockets } from '../../../websocket-server/src/user-sockets.js';
import { wrapSocket, type WsSocket } from './ws-socket.js';

export const BASELINE_SERVICE = 'baseline-gateway';

/** The uWS gateway's dependencies minus the uWS module and the static UI (benchmarks need neither). */
export type BaselineGatewayDeps = Omit<GatewayDeps, 'uws' | 'staticFiles'>;

const REDIS_CHECK_INTERVAL_MS = 2000;

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
  const { settings, logger, metrics, bus, store, pubsub, tokens } = deps;
  const delivery = deps.delivery ?? deliveryDefaults();
  const incomingTopic = deps.incomingTopic ?? TOPICS.incoming;
  const limits = { maxContentLength: settings.maxContentLength };
  const schemas = clientFrameSchemas(limits);
  const idleMs = settings.idleTimeoutSeconds * 1000;
  let draining = false;
  let redisOk = false;
  let server: Server | undefined;
  let redisTimer: NodeJS.Timeout | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let nextConnectionId = 0;

  const m = createGatewayMetrics(metrics);

  const outbound = createDelivery({
    softBytes: settings.slowClientSoftBytes,
    hardBytes: settings.slowClientHardBytes,
    logger,
    onWritten: (kind) => m.frames.inc({ kind }),
    onCoalesced: () => m.coalesced.inc(),
    onSlowClose: () => m.slowCloses.inc(),
  });
  const sockets = createUserSockets<WsSocket>({ pubsub, logger, deliver: outbound.live });
  const updateGauges = () => {
    m.connections.set(sockets.connections);
    m.users.set(sockets.users);
  };

  const intake = createMessageIntake<WsSocket>({
    settings,
    delivery,
    serverId: deps.serverId,
    incomingTopic,
    logger,
    metrics: m,
    bus,
    store,
    pubsub,
    reply: (ws, frame: ServerFrame) => outbound.control(ws, serializeFrame(frame)),
    draining: () => draining,
  });

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
    // `ws` still reads frames while its closing handshake runs; uWS calls no handler after `close`.
    if (ws.getUserData().closed) return;
    ws.lastSeenMs = Date.now();
    const message = toBuffer(raw);
    if (message.byteLength > settings.maxPayloadBytes) {
      m.messages.inc({ outcome: 'message_too_large' });
      ws.end(1009, 'message_too_large');
      return;
    }
    if (isBinary) {
      intake.error(ws, 'invalid_message', 'Binary frames are not supported; send JSON text');
      return;
    }
    const text = message.toString('utf8');
    const data = ws.getUserData();
    const parsed = parseClientFrame(text, schemas, limits, data.userid);
    if (!parsed.ok) {
      intake.error(ws, parsed.code, parsed.message, parsed.id);
      return;
    }
    const frame = parsed.frame;
    switch (frame.type) {
      case 'message':
        if (draining) {
          intake.error(ws, 'upstream_unavailable', 'Server is restarting; reconnect and resend', frame.id);
          return;
        }
        data.queue = data.queue
          .then(() => intake.message(ws, frame))
          .catch((err: unknown) => {
            logger.error({ err, userid: data.userid }, 'message handling failed');
            intake.error(ws, 'internal_error', ERROR_CODES.internal_error.message, frame.id);
          });
        return;
      case 'hello':
        data.stream = frame.stream ?? true;
        data.extensions = true;
        return;
      case 'cancel':
        intake.cancel(ws, frame).catch((err: unknown) => {
          logger.error({ err, userid: data.userid }, 'cancel handling failed');
          intake.error(ws, 'internal_error', ERROR_CODES.internal_error.message, frame.request_id);
        });
        return;
    }
  }

  /** As gateway.ts: replay the log after `from`, then go live; a failure closes the socket. */
  async function replay(ws: WsSocket, from: string): Promise<void> {
    const data = ws.getUserData();
    try {
      const result = await resumeSocket(
        { store, delivery: outbound, replayTtlMs: delivery.replayTtlMs },
        ws,
        from,
      );
      m.replayedFrames.inc(result.replayed);
      if (!result.abandoned) m.resumes.inc({ outcome: result.gap ? 'gap' : 'ok' });
    } catch (err) {
      m.resumes.inc({ outcome: 'failed' });
      m.redisErrors.inc({ op: 'replay' });
      logger.warn({ err, userid: data.userid }, 'replay failed (redis)');
      if (!data.closed) ws.end(1011, 'resume_failed');
    }
  }

  /** As gateway.ts: after a Redis resubscription every socket catches up from the replay log. */
  function resync(): void {
    m.resyncs.inc();
    for (const ws of sockets.all()) {
      const data = ws.getUserData();
      if (data.closed) continue;
      const outbox = data.outbox;
      if (data.awaitingResync) {
        data.awaitingResync = false;
        if (data.resyncFrom !== null) void replay(ws, data.resyncFrom);
        else outbox.overflowed = true;
        continue;
      }
      if (outbox.mode === 'resuming') {
        outbox.overflowed = true;
        continue;
      }
      const from = outbox.lastEventId ?? data.resyncFrom;
      if (from === null) continue;
      outbox.mode = 'resuming';
      void replay(ws, from);
    }
  }

  /** As gateway.ts: the subscription dropped, so live sockets keep their position and buffer. */
  function suspend(): void {
    for (const ws of sockets.all()) {
      const data = ws.getUserData();
      if (data.closed || data.awaitingResync) continue;
      const outbox = data.outbox;
      if (outbox.mode === 'resuming') {
        outbox.overflowed = true;
        continue;
      }
      data.resyncFrom = outbox.lastEventId ?? data.resyncFrom;
      data.awaitingResync = true;
      outbox.mode = 'resuming';
    }
  }

  async function onOpen(ws: WsSocket): Promise<void> {
    const data = ws.getUserData();
    data.resyncFrom = `${Date.now()}-0`;
    try {
      await sockets.add(ws);
    } catch {
      m.redisErrors.inc({ op: 'subscribe' });
      if (!data.closed) ws.end(1011, 'subscribe_failed');
      return;
    } finally {
      updateGauges();
    }
    if (data.resumeFrom === null || data.closed) return;
    await replay(ws, data.resumeFrom);
  }

  /**
   * uWS' `close` handler. Runs from `end()` at once (as in uWS) or from `ws`' `close` event when the
   * peer closed; whichever comes first wins.
   */
  function onClose(ws: WsSocket): void {
    const data = ws.getUserData();
    if (data.closed) return;
    data.closed = true;
    Object.assign(data.outbox, createOutbox(null));
    sockets.remove(ws).then(updateGauges, (err: unknown) => {
      m.redisErrors.inc({ op: 'unsubscribe' });
      logger.warn({ err }, 'unsubscribe failed');
    });
  }

  /**
   * uWS' `idleTimeout` + `sendPingsAutomatically`, which `ws` leaves to the application: a socket
   * silent for half the timeout is pinged, one silent for the whole timeout is dropped.
   */
  function sweepIdle(): void {
    const now = Date.now();
    for (const ws of sockets.all()) {
      if (ws.getUserData().closed) continue;
      const silent = now - ws.lastSeenMs;
      if (silent >= idleMs) ws.terminate();
      else if (silent >= idleMs / 2) ws.ws.ping();
    }
  }

  function onConnection(tcp: Duplex, data: UserData, ws: WsSocket['ws']): void {
    const socket = wrapSocket(ws, data, onClose);
    ws.on('message', (raw, isBinary) => onMessage(socket, raw, isBinary));
    ws.on('pong', () => (socket.lastSeenMs = Date.now()));
    ws.on('close', () => onClose(socket));
    // Protocol errors (a frame past maxPayload, bad UTF-8): `ws` closes the socket itself.
    ws.on('error', (err) => logger.debug({ err, userid: data.userid }, 'websocket error'));
    // uWS' `drain`: the TCP socket emits it once a write that filled its buffer has gone out.
    tcp.on('drain', () => outbound.drain(socket));
    void onOpen(socket);
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
    // during the token check would otherwise be an uncaught error.
    const onEarlyError = (err: Error) => logger.debug({ err }, 'socket error before the upgrade');
    tcp.on('error', onEarlyError);
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (url.pathname !== '/ws') return respond(tcp, 404, { error: 'not_found', path: url.pathname });
    const query = url.searchParams;
    const origin = req.headers.origin;
    const ip = clientIp(req, settings.trustProxy);

    if (draining) return reject(tcp, 503, 'draining');
    if (origin && settings.allowedOrigins.length > 0 && !settings.allowedOrigins.includes(origin)) {
      return reject(tcp, 403, 'origin_not_allowed');
    }
    const token = query.get('token') ?? '';
    const claimedUser = query.get('userid');
    const flag = (name: string) => ['1', 'true'].includes(query.get(name) ?? '');
    const stream = flag('stream');
    const extensions = stream || flag('ack');
    const resumeFrom = query.get('last_event_id') || null;
    if (resumeFrom !== null && !STREAM_ID_PATTERN.test(resumeFrom)) {
      return reject(tcp, 400, 'invalid_last_event_id');
    }
    tokens.verify(token).then(
      (userid) => {
        // uWS' onAborted: the client went away while the token was being checked.
        if (tcp.destroyed) return;
        if (draining) return reject(tcp, 503, 'draining');
        if (!userid || (claimedUser !== null && claimedUser !== userid)) {
          return reject(tcp, 401, 'invalid_token');
        }
        if (sockets.count(userid) >= settings.maxConnectionsPerUser) {
          return reject(tcp, 429, 'too_many_connections');
        }
        const data: UserData = {
          userid,
          connectionId: ++nextConnectionId,
          stream,
          extensions,
          ip,
          closed: false,
          queue: IDLE_QUEUE,
          resumeFrom,
          resyncFrom: null,
          awaitingResync: false,
          outbox: createOutbox(resumeFrom),
        };
        tcp.off('error', onEarlyError);
        wss.handleUpgrade(req, tcp, head, (ws) => onConnection(tcp, data, ws));
      },
      (err: unknown) => {
        logger.error({ err }, 'token verification failed');
        if (!tcp.destroyed) reject(tcp, 500, 'internal_error');
      },
    );
  }

  function json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  function ready() {
    const checks = { kafka: bus.healthy(), redis: redisOk, draining };
    m.upstreamUp.set({ upstream: 'kafka' }, checks.kafka ? 1 : 0);
    m.upstreamUp.set({ upstream: 'redis' }, checks.redis ? 1 : 0);
    return { ready: checks.kafka && checks.redis && !draining, checks };
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && path === '/health') {
      return json(res, 200, {
        status: 'ok',
        service: BASELINE_SERVICE,
        server_id: deps.serverId,
        active_users: sockets.users,
        total_connections: sockets.connections,
        draining,
        model: settings.modelLabel,
      });
    }
    if (req.method === 'GET' && path === '/ready') {
      const r = ready();
      return json(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not_ready', checks: r.checks });
    }
    if (req.method === 'GET' && path === '/metrics') {
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
      const checkRedis = () =>
        store
          .ping()
          .then(
            () => (redisOk = true),
            () => (redisOk = false),
          )
          .finally(ready);
      await checkRedis();
      redisTimer = setInterval(() => void checkRedis(), REDIS_CHECK_INTERVAL_MS);
      redisTimer.unref();
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
      draining = true;
      clearInterval(redisTimer);
      clearInterval(idleTimer);
      const inFlight = sockets.all().map((ws) => ws.getUserData().queue);
      if (inFlight.length > 0) {
        const timeout = new AbortController();
        const timedOut = delay(settings.drainTimeoutMs, true, { signal: timeout.signal }).catch(() => false);
        const late = await Promise.race([Promise.allSettled(inFlight).then(() => false), timedOut]);
        timeout.abort();
        if (late) logger.warn({ timeoutMs: settings.drainTimeoutMs }, 'drain timed out; closing sockets');
      }
      for (const ws of sockets.all()) {
        if (!ws.getUserData().closed) ws.end(1001, 'server_shutdown');
      }
      if (server) await stopListening(server);
      server = undefined;
    }),
    ready,
    stats: () => ({ users: sockets.users, connections: sockets.connections }),
    resync,
    suspend,
  };
}
