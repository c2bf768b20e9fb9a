import {
  REDIS_KEYS,
  once,
  redactUrl,
  renderMetrics,
  useridSchema,
  type Bus,
  type KeyValueStore,
  type Metrics,
  type PubSub,
} from '@relay/common';
import { STATUS_CODES } from 'node:http';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import { clientIp } from './client-ip.js';
import type { DeliverySettings, GatewaySettings } from './config.js';
import { createSocketSessions } from './socket-sessions.js';
import type { StaticFile } from './static-files.js';
import type { TokenService } from './token-service.js';
import type { UserData } from './user-data.js';
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
  const { settings, logger, metrics, store, tokens } = deps;
  let listenSocket: us_listen_socket | false = false;

  // Everything about the sockets but the transport (shared with the bench's `ws` baseline).
  const sessions = createSocketSessions<Socket>(deps);
  const { sockets, outbound } = sessions;
  const m = sessions.metrics;

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
    const request = {
      query,
      origin: req.getHeader('origin'),
      ip: clientIp(res, req, settings.trustProxy),
    };
    let aborted = false;
    res.onAborted(() => (aborted = true));
    void sessions.admit(request).then((admission) => {
      if (aborted) return;
      if (!admission.ok) {
        return reject(res, `${admission.status} ${STATUS_CODES[admission.status] ?? ''}`, admission.reason);
      }
      res.cork(() => res.upgrade(admission.data, secKey, secProtocol, secExtensions, context));
    });
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

  const ready = sessions.ready;

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
        open: (ws) => void sessions.open(ws),
        message: (ws, message, isBinary) => sessions.message(ws, message, isBinary),
        drain: outbound.drain,
        close: (ws) => sessions.closed(ws),
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
          draining: sessions.draining,
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
      await sessions.watchRedis();
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
      await sessions.drainAndClose();
      if (listenSocket) deps.uws.us_listen_socket_close(listenSocket);
      listenSocket = false;
    }),
    ready,
    stats: () => ({ users: sockets.users, connections: sockets.connections }),
    resync: sessions.resync,
    suspend: sessions.suspend,
  };
}
