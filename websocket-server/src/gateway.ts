import { setTimeout as delay } from 'node:timers/promises';
import {
  ERROR_CODES,
  REDIS_KEYS,
  TOPICS,
  clientFrameSchemas,
  once,
  parseClientFrame,
  redactUrl,
  renderMetrics,
  serializeFrame,
  useridSchema,
  type Bus,
  type KeyValueStore,
  type Metrics,
  type PubSub,
  type ServerFrame,
} from '@relay/common';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import { clientIp } from './client-ip.js';
import { deliveryDefaults, type DeliverySettings, type GatewaySettings } from './config.js';
import { STREAM_ID_PATTERN } from './event-id.js';
import { createGatewayMetrics } from './gateway-metrics.js';
import { createMessageIntake } from './message-intake.js';
import { resumeSocket } from './resume.js';
import { createDelivery, createOutbox } from './socket-delivery.js';
import type { StaticFile } from './static-files.js';
import type { TokenService } from './token-service.js';
import { IDLE_QUEUE, type UserData } from './user-data.js';
import { createUserSockets } from './user-sockets.js';
import type { Uws } from './uws.js';

export interface GatewayDeps {
  uws: Uws;
  settings: GatewaySettings;
  /** Replay and dedupe windows (`deliveryFragment`). @default the fragment's defaults */
  delivery?: DeliverySettings;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  serverId: string;
  logger: Logger;
  metrics: Metrics;
  bus: Bus;
  store: KeyValueStore;
  pubsub: PubSub;
  tokens: TokenService;
  /** @default TOPICS.incoming */
  incomingTopic?: string;
  staticFiles?: Map<string, StaticFile>;
}

export interface Gateway {
  start(): Promise<{ port: number }>;
  /**
   * Drains: /ready answers 503 and new upgrades and messages are refused at once; messages already
   * being published get their Kafka ack (up to `DRAIN_TIMEOUT_MS`); then every socket is closed with
   * 1001 (clients reconnect elsewhere and resume) and the port is released. Idempotent.
   */
  close(): Promise<void>;
  ready(): { ready: boolean; checks: Record<string, boolean> };
  stats(): { users: number; connections: number };
  /**
   * Call when the user channels were subscribed again after a Redis reconnect (the Redis PubSub's
   * `onResubscribed`): every socket catches up from the replay log on what the channel missed.
   */
  resync(): void;
  /** The Redis subscription dropped (`onDisconnected`): hold live frames until `resync()`. */
  suspend(): void;
}

type Socket = WebSocket<UserData>;

const REDIS_CHECK_INTERVAL_MS = 2000;

/**
 * uWS drops a send (returns 2) when the socket already has more than `maxBackpressure` bytes queued.
 * Delivery closes a socket past the hard limit before it sends, so with this margin above the limit
 * uWS itself never drops a frame.
 */
const BACKPRESSURE_MARGIN_BYTES = 1024 * 1024;

/**
 * The WebSocket gateway: token-checked upgrades, client frames validated against the contract,
 * messages to Kafka (ack after the broker acknowledged), frames from the user's Redis channel to
 * every socket of that user, resume from the replay log, slow-client backpressure, graceful drain.
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const { settings, logger, metrics, bus, store, pubsub, tokens } = deps;
  const delivery = deps.delivery ?? deliveryDefaults();
  const incomingTopic = deps.incomingTopic ?? TOPICS.incoming;
  const limits = { maxContentLength: settings.maxContentLength };
  const schemas = clientFrameSchemas(limits);
  let draining = false;
  let redisOk = false;
  let listenSocket: us_listen_socket | false = false;
  let redisTimer: NodeJS.Timeout | undefined;
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
  const sockets = createUserSockets<Socket>({ pubsub, logger, deliver: outbound.live });
  const updateGauges = () => {
    m.connections.set(sockets.connections);
    m.users.set(sockets.users);
  };

  const intake = createMessageIntake<Socket>({
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

  function onMessage(ws: Socket, message: ArrayBuffer, isBinary: boolean): void {
    if (message.byteLength > settings.maxPayloadBytes) {
      m.messages.inc({ outcome: 'message_too_large' });
      ws.end(1009, 'message_too_large');
      return;
    }
    if (isBinary) {
      intake.error(ws, 'invalid_message', 'Binary frames are not supported; send JSON text');
      return;
    }
    // The ArrayBuffer is only valid during this callback: decode it now.
    const text = Buffer.from(message).toString('utf8');
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

  /**
   * Replays the log after `from` to a socket in resuming mode, then lets it go live. A failure
   * closes the socket: the client reconnects and resumes from its own last_event_id.
   */
  async function replay(ws: Socket, from: string): Promise<void> {
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

  /**
   * Frames published while this gateway's channel subscription was down (a Redis reconnect) never
   * reached its sockets, but they are in the log (the relay appends before it publishes): every
   * socket reads the log again from the newest frame it handled, the way a resume does.
   */
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
      // A replay is under way: make it read the log once more before it goes live.
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

  /**
   * The subscription dropped: every live socket keeps its position and buffers from now on, so the
   * resync after the resubscription replays exactly what it missed before anything newer goes out.
   */
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

  /** Subscribes the user's channel, then (with last_event_id) replays what the client missed. */
  async function onOpen(ws: Socket): Promise<void> {
    const data = ws.getUserData();
    // Redis stream ids start with the time they were added: frames after this point are this
    // socket's to get, should its channel need a resync before it handled any frame.
    data.resyncFrom = `${Date.now()}-0`;
    try {
      await sockets.add(ws);
    } catch {
      // Logged by the registry. The client reconnects (and resumes) once Redis answers.
      m.redisErrors.inc({ op: 'subscribe' });
      if (!data.closed) ws.end(1011, 'subscribe_failed');
      return;
    } finally {
      updateGauges();
    }
    if (data.resumeFrom === null || data.closed) return;
    await replay(ws, data.resumeFrom);
  }

  function reject(res: HttpResponse, status: string, reason: string): void {
    m.upgradesRejected.inc({ reason });
    json(res, status, { error: reason });
  }

  function upgrade(
    res: HttpResponse,
    req: HttpRequest,
    context: Parameters<HttpResponse['upgrade']>[4],
  ): void {
    // Everything needed from `req` must be read now: it is not valid after an await.
    const query = new URLSearchParams(req.getQuery() ?? '');
    const secKey = req.getHeader('sec-websocket-key');
    const secProtocol = req.getHeader('sec-websocket-protocol');
    const secExtensions = req.getHeader('sec-websocket-extensions');
    const origin = req.getHeader('origin');
    const ip = clientIp(res, req, settings.trustProxy);
    let aborted = false;
    res.onAborted(() => (aborted = true));

    if (draining) return reject(res, '503 Service Unavailable', 'draining');
    if (origin && settings.allowedOrigins.length > 0 && !settings.allowedOrigins.includes(origin)) {
      return reject(res, '403 Forbidden', 'origin_not_allowed');
    }
    const token = query.get('token') ?? '';
    const claimedUser = query.get('userid');
    const flag = (name: string) => ['1', 'true'].includes(query.get(name) ?? '');
    const stream = flag('stream');
    const extensions = stream || flag('ack');
    // An empty value counts as absent (a client that has seen nothing yet); a malformed one is a
    // client bug that would silently lose frames if ignored, so the upgrade is refused.
    const resumeFrom = query.get('last_event_id') || null;
    if (resumeFrom !== null && !STREAM_ID_PATTERN.test(resumeFrom)) {
      return reject(res, '400 Bad Request', 'invalid_last_event_id');
    }
    tokens.verify(token).then(
      (userid) => {
        if (aborted) return;
        // The drain may have begun (and closed every socket) while the token was being checked.
        if (draining) return reject(res, '503 Service Unavailable', 'draining');
        if (!userid || (claimedUser !== null && claimedUser !== userid))
          return reject(res, '401 Unauthorized', 'invalid_token');
        if (sockets.count(userid) >= settings.maxConnectionsPerUser) {
          return reject(res, '429 Too Many Requests', 'too_many_connections');
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
          // Resuming from the start: live frames that arrive before the replay is done wait.
          outbox: createOutbox(resumeFrom),
        };
        res.cork(() => res.upgrade(data, secKey, secProtocol, secExtensions, context));
      },
      (err: unknown) => {
        logger.error({ err }, 'token verification failed');
        if (!aborted) reject(res, '500 Internal Server Error', 'internal_error');
      },
    );
  }

  function json(
    res: HttpResponse,
    status: string,
    body: unknown,
    extraHeaders: Record<string, string> = {},
  ): void {
    res.cork(() => {
      res.writeStatus(status).writeHeader('content-type', 'application/json');
      for (const [k, v] of Object.entries(extraHeaders)) res.writeHeader(k, v);
      res.end(JSON.stringify(body));
    });
  }

  /** CORS for POST /token, so a widget on another site can get a token. */
  function corsHeaders(origin: string): Record<string, string> {
    if (settings.allowedOrigins.length === 0) return { 'access-control-allow-origin': '*' };
    return settings.allowedOrigins.includes(origin)
      ? { 'access-control-allow-origin': origin, vary: 'Origin' }
      : {};
  }

  function issueToken(res: HttpResponse, req: HttpRequest): void {
    const query = new URLSearchParams(req.getQuery() ?? '');
    const ip = clientIp(res, req, settings.trustProxy);
    const cors = corsHeaders(req.getHeader('origin'));
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const userid = useridSchema.safeParse(query.get('userid'));
    if (!userid.success) {
      return json(
        res,
        '400 Bad Request',
        { error: 'invalid_userid', message: userid.error.issues[0]?.message },
        cors,
      );
    }
    void (async () => {
      const window = await store.incrementWindow(REDIS_KEYS.tokenRate(ip), 60_000);
      if (window.count > settings.tokenRateLimitPerMinute) {
        if (!aborted)
          json(res, '429 Too Many Requests', { error: 'rate_limited', retry_after_ms: window.resetMs }, cors);
        return;
      }
      const { token, expiresIn } = await tokens.issue(userid.data);
      m.tokensIssued.inc();
      if (!aborted) json(res, '200 OK', { token, userid: userid.data, expires_in: expiresIn }, cors);
    })().catch((err: unknown) => {
      logger.warn({ err }, 'token issuance failed');
      if (!aborted) json(res, '503 Service Unavailable', { error: 'upstream_unavailable' }, cors);
    });
  }

  function ready() {
    const checks = { kafka: bus.healthy(), redis: redisOk, draining };
    m.upstreamUp.set({ upstream: 'kafka' }, checks.kafka ? 1 : 0);
    m.upstreamUp.set({ upstream: 'redis' }, checks.redis ? 1 : 0);
    return { ready: checks.kafka && checks.redis && !draining, checks };
  }

  function buildApp(): TemplatedApp {
    return deps.uws
      .App()
      .ws<UserData>('/ws', {
        // This uWS build drops the TCP connection (1006) past maxPayloadLength instead of sending a
        // close frame, so the gateway enforces the limit itself (1009) and leaves uWS a hard cap at 4×
        // to bound the memory one frame can take.
        maxPayloadLength: settings.maxPayloadBytes * 4,
        idleTimeout: settings.idleTimeoutSeconds,
        sendPingsAutomatically: true,
        // Slow clients are handled by delivery (coalescing, then 1008 past the hard limit); uWS must
        // neither drop frames below that limit nor close on its own.
        maxBackpressure: settings.slowClientHardBytes + BACKPRESSURE_MARGIN_BYTES,
        closeOnBackpressureLimit: 0,
        upgrade,
        open: (ws) => void onOpen(ws),
        message: onMessage,
        drain: outbound.drain,
        close: (ws) => {
          const data = ws.getUserData();
          data.closed = true;
          // Nothing can be sent any more; the client resumes whatever was waiting here.
          Object.assign(data.outbox, createOutbox(null));
          sockets.remove(ws).then(updateGauges, (err: unknown) => {
            m.redisErrors.inc({ op: 'unsubscribe' });
            logger.warn({ err }, 'unsubscribe failed');
          });
        },
      })
      .post('/token', issueToken)
      .options('/token', (res, req) => {
        const cors = corsHeaders(req.getHeader('origin'));
        res.cork(() => {
          res.writeStatus('204 No Content');
          for (const [k, v] of Object.entries(cors)) res.writeHeader(k, v);
          res.writeHeader('access-control-allow-methods', 'POST, OPTIONS').end();
        });
      })
      .get('/health', (res) =>
        json(res, '200 OK', {
          status: 'ok',
          service: 'websocket-server',
          server_id: deps.serverId,
          active_users: sockets.users,
          total_connections: sockets.connections,
          draining,
          model: settings.modelLabel,
        }),
      )
      .get('/ready', (res) => {
        const r = ready();
        json(res, r.ready ? '200 OK' : '503 Service Unavailable', {
          status: r.ready ? 'ready' : 'not_ready',
          checks: r.checks,
        });
      })
      .get('/metrics', (res) => {
        let aborted = false;
        res.onAborted(() => (aborted = true));
        void renderMetrics(metrics.registry).then(({ contentType, body }) => {
          if (!aborted) res.cork(() => res.writeHeader('content-type', contentType).end(body));
        });
      })
      .get('/*', (res, req) => {
        const file = deps.staticFiles?.get(req.getUrl());
        if (!file) return json(res, '404 Not Found', { error: 'not_found', path: redactUrl(req.getUrl()) });
        res.cork(() => res.writeHeader('content-type', file.contentType).end(file.body));
      })
      .any('/*', (res) => json(res, '404 Not Found', { error: 'not_found' }));
  }

  let app: TemplatedApp | undefined;

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
      app = buildApp();
      const a = app;
      listenSocket = await new Promise<us_listen_socket | false>((resolve) =>
        a.listen(deps.host, deps.port, resolve),
      );
      if (!listenSocket) throw new Error(`could not listen on ${deps.host}:${deps.port}`);
      return { port: deps.uws.us_socket_local_port(listenSocket) };
    },
    close: once(async () => {
      // From here /ready is 503, upgrades get 503 and new messages upstream_unavailable; the port
      // stays open meanwhile so load balancers and clients see those answers, not a refused connect.
      draining = true;
      clearInterval(redisTimer);
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
      if (listenSocket) deps.uws.us_listen_socket_close(listenSocket);
      listenSocket = false;
    }),
    ready,
    stats: () => ({ users: sockets.users, connections: sockets.connections }),
    resync,
    suspend,
  };
}
