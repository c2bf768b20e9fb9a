import { randomBytes, randomUUID } from 'node:crypto';
import {
  ERROR_CODES,
  HEADERS,
  TOPICS,
  clientFrameSchemas,
  once,
  parseClientFrame,
  redactUrl,
  renderMetrics,
  useridSchema,
  withContext,
  type Bus,
  type ClientMessageFrame,
  type ErrorCode,
  type ErrorFrame,
  type KeyValueStore,
  type Metrics,
  type PromptEvent,
  type PubSub,
} from '@relay/common';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import { clientIp } from './client-ip.js';
import type { GatewaySettings } from './config.js';
import type { StaticFile } from './static-files.js';
import type { TokenService } from './token-service.js';
import type { UserData } from './user-data.js';
import { createUserSockets } from './user-sockets.js';
import type { Uws } from './uws.js';

export interface GatewayDeps {
  uws: Uws;
  settings: GatewaySettings;
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
  /** Stops accepting, closes every socket with 1001 (clients reconnect elsewhere), stops listening. */
  close(): Promise<void>;
  ready(): { ready: boolean; checks: Record<string, boolean> };
  stats(): { users: number; connections: number };
}

const REDIS_CHECK_INTERVAL_MS = 2000;

const traceparent = () => `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;

/**
 * The WebSocket gateway: token-checked upgrades, client frames validated against the contract,
 * messages to Kafka (ack after the broker acknowledged), frames from the user's Redis channel to
 * every socket of that user.
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const { settings, logger, metrics, bus, store, pubsub, tokens } = deps;
  const incomingTopic = deps.incomingTopic ?? TOPICS.incoming;
  const limits = { maxContentLength: settings.maxContentLength };
  const schemas = clientFrameSchemas(limits);
  let draining = false;
  let redisOk = false;
  let listenSocket: us_listen_socket | false = false;
  let redisTimer: NodeJS.Timeout | undefined;
  let nextConnectionId = 0;

  const m = {
    connections: metrics.gauge({ name: 'gateway_connections', help: 'Open WebSocket connections' }),
    users: metrics.gauge({ name: 'gateway_users', help: 'Users with at least one open socket here' }),
    messages: metrics.counter({
      name: 'gateway_messages_total',
      help: 'Client message frames by outcome (accepted or an error code)',
      labelNames: ['outcome'],
    }),
    frames: metrics.counter({
      name: 'gateway_frames_delivered_total',
      help: 'Frames written to sockets, by kind',
      labelNames: ['kind'],
    }),
    ackLatency: metrics.histogram({
      name: 'gateway_ack_latency_seconds',
      help: 'From a client message to its ack (rate limit + Kafka acknowledgement)',
    }),
    upgradesRejected: metrics.counter({
      name: 'gateway_upgrades_rejected_total',
      help: 'Refused WebSocket upgrades by reason',
      labelNames: ['reason'],
    }),
    tokensIssued: metrics.counter({
      name: 'gateway_tokens_issued_total',
      help: 'Tokens issued by POST /token',
    }),
  };

  const sockets = createUserSockets({
    pubsub,
    logger,
    onFrame: (kind, delivered) => m.frames.inc({ kind }, delivered),
  });
  const updateGauges = () => {
    m.connections.set(sockets.connections);
    m.users.set(sockets.users);
  };

  function send(ws: WebSocket<UserData>, frame: object): void {
    if (ws.getUserData().closed) return;
    ws.send(JSON.stringify(frame));
  }

  function sendError(ws: WebSocket<UserData>, code: ErrorCode, message: string, requestId?: string): void {
    const frame: ErrorFrame = {
      type: 'error',
      message,
      code,
      userid: ws.getUserData().userid,
      ...(requestId ? { request_id: requestId } : {}),
    };
    m.messages.inc({ outcome: code });
    send(ws, frame);
  }

  async function handleMessage(ws: WebSocket<UserData>, frame: ClientMessageFrame): Promise<void> {
    const started = performance.now();
    const { userid } = ws.getUserData();
    const requestId = frame.id ?? randomUUID();
    const log = withContext(logger, { request_id: requestId, userid, correlation_id: requestId });
    try {
      const window = await store.incrementWindow(`ratelimit:msg:${userid}`, settings.rateLimitWindowMs);
      if (window.count > settings.rateLimitMessages) {
        sendError(
          ws,
          'rate_limited',
          `${ERROR_CODES.rate_limited.message} (retry in ${window.resetMs} ms)`,
          requestId,
        );
        return;
      }
    } catch (err) {
      log.warn({ err }, 'rate limit check failed (redis)');
      sendError(ws, 'upstream_unavailable', ERROR_CODES.upstream_unavailable.message, requestId);
      return;
    }
    const event: PromptEvent = {
      v: 1,
      request_id: requestId,
      userid,
      content: frame.content,
      conversation_id: frame.conversation_id ?? 'default',
      gateway_id: deps.serverId,
      received_at: new Date().toISOString(),
    };
    try {
      await bus.publish(incomingTopic, [
        {
          key: userid,
          value: JSON.stringify(event),
          headers: { [HEADERS.correlationId]: requestId, [HEADERS.traceparent]: traceparent() },
        },
      ]);
    } catch (err) {
      // No ack: the client knows the message was not taken and may retry with the same id.
      log.warn({ err }, 'publish to kafka failed');
      sendError(ws, 'upstream_unavailable', ERROR_CODES.upstream_unavailable.message, requestId);
      return;
    }
    m.messages.inc({ outcome: 'accepted' });
    m.ackLatency.observe((performance.now() - started) / 1000);
    // A message with an `id` is from a client that retries by id, so it wants to know when to stop.
    if (ws.getUserData().extensions || frame.id !== undefined)
      send(ws, { type: 'ack', request_id: requestId, userid });
    log.debug('message accepted');
  }

  function onMessage(ws: WebSocket<UserData>, message: ArrayBuffer, isBinary: boolean): void {
    if (message.byteLength > settings.maxPayloadBytes) {
      m.messages.inc({ outcome: 'message_too_large' });
      ws.end(1009, 'message_too_large');
      return;
    }
    if (isBinary) {
      sendError(ws, 'invalid_message', 'Binary frames are not supported; send JSON text');
      return;
    }
    // The ArrayBuffer is only valid during this callback: decode it now.
    const text = Buffer.from(message).toString('utf8');
    const data = ws.getUserData();
    const parsed = parseClientFrame(text, schemas, limits, data.userid);
    if (!parsed.ok) {
      sendError(ws, parsed.code, parsed.message, parsed.id);
      return;
    }
    const frame = parsed.frame;
    switch (frame.type) {
      case 'message':
        if (draining) {
          sendError(ws, 'upstream_unavailable', 'Server is restarting; reconnect and resend', frame.id);
          return;
        }
        data.queue = data.queue
          .then(() => handleMessage(ws, frame))
          .catch((err: unknown) => {
            logger.error({ err, userid: data.userid }, 'message handling failed');
            sendError(ws, 'internal_error', ERROR_CODES.internal_error.message, frame.id);
          });
        return;
      case 'hello':
        data.stream = frame.stream ?? true;
        data.extensions = true;
        return;
      case 'cancel':
        sendError(ws, 'invalid_message', 'cancel is not supported by this server yet', frame.request_id);
        return;
    }
  }

  function reject(res: HttpResponse, status: string, reason: string): void {
    m.upgradesRejected.inc({ reason });
    res.cork(() => {
      res
        .writeStatus(status)
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify({ error: reason }));
    });
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
    tokens.verify(token).then(
      (userid) => {
        if (aborted) return;
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
          queue: Promise.resolve(),
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
      const window = await store.incrementWindow(`ratelimit:token:${ip}`, 60_000);
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
        maxBackpressure: 1024 * 1024,
        upgrade,
        open: (ws) => {
          updateGauges();
          sockets.add(ws).then(updateGauges, () => {
            if (!ws.getUserData().closed) ws.end(1011, 'subscribe_failed');
          });
        },
        message: onMessage,
        close: (ws) => {
          const data = ws.getUserData();
          data.closed = true;
          sockets.remove(ws).then(updateGauges, (err: unknown) => logger.warn({ err }, 'unsubscribe failed'));
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
        store.ping().then(
          () => (redisOk = true),
          () => (redisOk = false),
        );
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
      draining = true;
      clearInterval(redisTimer);
      if (listenSocket) deps.uws.us_listen_socket_close(listenSocket);
      listenSocket = false;
      for (const ws of sockets.all()) {
        const socket = ws as WebSocket<UserData>;
        if (!socket.getUserData().closed) socket.end(1001, 'server_shutdown');
      }
    }),
    ready,
    stats: () => ({ users: sockets.users, connections: sockets.connections }),
  };
}
