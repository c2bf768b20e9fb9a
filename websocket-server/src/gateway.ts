import {
  once,
  readyResponse,
  redactUrl,
  renderMetrics,
  type Bus,
  type KeyValueStore,
  type Metrics,
  type PubSub,
  type Readiness,
  type Tracer,
} from '@relay/common';
import { STATUS_CODES } from 'node:http';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import { clientIp } from './client-ip.js';
import type { DeliverySettings, GatewaySettings } from './config.js';
import { createSocketSessions } from './socket-sessions.js';
import type { HttpExchange } from './http-exchange.js';
import { guardedRoute, type RouteHandler } from './http-exchange.js';
import { createHistoryApi, type HistoryAnswer, type HistoryRequest } from './history-api.js';
import { createCaptchaVerifier, type CaptchaVerifier } from './identity/captcha.js';
import { TOKEN_BODY_LIMIT_BYTES, createTokenIssuer } from './identity/token-issuer.js';
import { createPresenceApi, registerPresenceRoutes, type PresenceSettings } from './presence/index.js';
import type { Sites } from './sites/sites.js';
import type { StaticFile } from './static-files.js';
import type { TokenService } from './token-service.js';
import type { UserData } from './user-data.js';
import { listenExclusive, type Uws } from './uws.js';

export interface GatewayDeps {
  uws: Uws;
  settings: GatewaySettings;
  /** Replay and dedupe windows (`deliveryFragment`). @default the fragment's defaults */
  delivery?: DeliverySettings;
  /** Presence leases, cache and limits (`presenceFragment`). @default the fragment's defaults */
  presence?: PresenceSettings;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  serverId: string;
  logger: Logger;
  metrics: Metrics;
  /** @default noopTracer (tracing off) */
  tracer?: Tracer;
  bus: Bus;
  store: KeyValueStore;
  pubsub: PubSub;
  tokens: TokenService;
  /** The sites tokens are issued for and checked against (`sitesFor`). */
  sites: Sites;
  /** @default a fetch-based Turnstile-compatible verifier */
  captcha?: CaptchaVerifier;
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
  ready(): Readiness;
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

/** A percent-encoded path segment; '' for one that is not valid UTF-8 (then refused as not an id). */
function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return '';
  }
}
type UpgradeContext = Parameters<HttpResponse['upgrade']>[4];

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
  const { sockets, guard } = sessions;
  const m = sessions.metrics;
  const route = (name: string, handler: RouteHandler) => guardedRoute(guard, name, handler);

  /**
   * Admits and upgrades before returning, inside uWS' own upgrade handler; not later from a promise
   * in `res.cork()` as uWS' UpgradeAsync example does. This uWS build's cork() misses an upgrade
   * made inside it when the socket's block was shrunk in place (glibc does), then runs its HTTP
   * connection-close check on the new WebSocket, reading HTTP state from memory the shrink gave
   * back to the heap: whenever that memory had been reused with the wrong bits, the socket was
   * closed right after its 101, with no frame (1006): the "dropped socket" of the pipeline test.
   * Upstream fixed cork() later (v20.79.0); no build we can install has it. Inside the handler, uWS
   * itself tracks the upgrade. upgrade-in-place.int.test.ts reproduces it every time.
   */
  function upgrade(res: HttpResponse, req: HttpRequest, context: UpgradeContext): void {
    let admitted: UserData | undefined;
    guard.run(
      'upgrade',
      () => {
        const admission = sessions.admit({
          query: new URLSearchParams(req.getQuery() ?? ''),
          origin: req.getHeader('origin'),
          ip: clientIp(res, req, settings.trustProxy),
        });
        if (!admission.ok) {
          m.upgradesRejected.inc({ reason: admission.reason });
          return json(res, `${admission.status} ${STATUS_CODES[admission.status] ?? ''}`, {
            error: admission.reason,
          });
        }
        admitted = admission.data;
        res.upgrade(
          admission.data,
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      },
      () => {
        // Given back only if the socket never opened (closed() gives it back otherwise).
        if (admitted) sessions.abandoned(admitted);
        json(res, '500 Internal Server Error', { error: 'internal_error' });
      },
    );
  }

  /** A synchronous JSON answer (inside a uWS handler: already corked, never aborted yet). */
  function json(res: HttpResponse, status: string, body: unknown): void {
    res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body));
  }

  const issuer = createTokenIssuer({
    sites: deps.sites,
    tokens,
    store,
    captcha: deps.captcha ?? createCaptchaVerifier(),
    metrics: m,
    logger,
    renewWindowSeconds: settings.anonRenewWindowSeconds,
  });
  const history = createHistoryApi({ store, tokens, sites: deps.sites });
  const presenceApi = createPresenceApi({
    presence: sessions.presence,
    tokens,
    sites: deps.sites,
    settings: sessions.presenceSettings,
  });
  const statusLine = (status: number) => `${status} ${STATUS_CODES[status] ?? ''}`;

  async function issueToken(exchange: HttpExchange, req: HttpRequest): Promise<void> {
    // Everything needed from `req` is read before the first await.
    const query = new URLSearchParams(req.getQuery() ?? '');
    const origin = req.getHeader('origin');
    const ip = clientIp(exchange.res, req, settings.trustProxy);
    const body = await exchange.readBody(TOKEN_BODY_LIMIT_BYTES);
    if (body === null) {
      return exchange.json('413 Payload Too Large', { error: 'invalid_request', message: 'Body too large' });
    }
    const answer = await issuer.issue({ query, origin, ip, body: body.toString('utf8') });
    exchange.json(statusLine(answer.status), answer.body, answer.headers);
  }

  function historyRoute(
    read: (request: HistoryRequest, req: HttpRequest) => Promise<HistoryAnswer>,
  ): RouteHandler {
    return async (exchange, req) => {
      const request = {
        authorization: req.getHeader('authorization'),
        query: new URLSearchParams(req.getQuery() ?? ''),
        origin: req.getHeader('origin'),
      };
      // `read` takes what it needs from `req` (the path parameter) before its first await.
      const answer = await read(request, req);
      const site = answer.site ? deps.sites.get(answer.site) : undefined;
      exchange.json(statusLine(answer.status), answer.body, {
        ...issuer.cors(site, request.origin),
        'cache-control': 'no-store',
      });
    };
  }

  const preflight: RouteHandler = (exchange, req) => {
    const answer = issuer.preflight(req.getHeader('origin'));
    exchange.end(statusLine(answer.status), 'text/plain', '', answer.headers);
  };

  const ready = sessions.ready;

  function buildApp(): TemplatedApp {
    const app = deps.uws.App();
    registerPresenceRoutes(app, {
      api: presenceApi,
      route,
      cors: (site, origin) => issuer.cors(site, origin),
      site: (id) => deps.sites.get(id),
    });
    return app
      .ws<UserData>('/ws', {
        // This uWS build drops the TCP connection (1006) past maxPayloadLength instead of sending a
        // close frame, so the gateway enforces the limit itself (1009) and leaves uWS a hard cap at 4×
        // to bound the memory one frame can take.
        maxPayloadLength: settings.maxPayloadBytes * 4,
        // A client's compressed frame is inflated up to maxPayloadLength at most (uWS closes past it).
        compression: compressionOf(deps.uws, settings.compression),
        idleTimeout: settings.idleTimeoutSeconds,
        sendPingsAutomatically: true,
        // Slow clients are handled by delivery (coalescing, then 1008 past the hard limit); uWS must
        // neither drop frames below that limit nor close on its own.
        maxBackpressure: settings.slowClientHardBytes + BACKPRESSURE_MARGIN_BYTES,
        closeOnBackpressureLimit: 0,
        // Every callback below runs inside the sessions' guard: nothing a client sends can throw
        // out of uWS and stop the process.
        upgrade,
        open: (ws) => sessions.open(ws),
        message: (ws, message, isBinary) => sessions.message(ws, message, isBinary),
        drain: (ws) => sessions.drain(ws),
        close: (ws) => sessions.closed(ws),
      })
      .post('/token', route('token', issueToken))
      .options('/token', route('token', preflight))
      .options('/api/*', route('history', preflight))
      .get(
        '/api/v1/conversations',
        route(
          'history',
          historyRoute((request) => history.list(request)),
        ),
      )
      .get(
        '/api/v1/conversations/:id',
        route(
          'history',
          historyRoute((request, req) =>
            history.conversation(request, decodePathPart(req.getParameter(0) ?? '')),
          ),
        ),
      )
      .get(
        '/health',
        route('health', (exchange) =>
          exchange.json('200 OK', {
            status: 'ok',
            service: 'websocket-server',
            server_id: deps.serverId,
            active_users: sockets.users,
            total_connections: sockets.connections,
            draining: sessions.draining,
            model: settings.modelLabel,
          }),
        ),
      )
      .get(
        '/ready',
        route('ready', (exchange) => {
          const answer = readyResponse('websocket-server', ready());
          exchange.json(answer.statusCode === 200 ? '200 OK' : '503 Service Unavailable', answer.body);
        }),
      )
      .get(
        '/metrics',
        route('metrics', async (exchange) => {
          // Readiness and upstream gauges as of this scrape: nothing else calls /ready for Prometheus.
          ready();
          const { contentType, body } = await renderMetrics(metrics.registry);
          exchange.end('200 OK', contentType, body);
        }),
      )
      .get(
        '/*',
        route('static', (exchange, req) => {
          const file = deps.staticFiles?.get(req.getUrl());
          if (!file)
            return exchange.json('404 Not Found', { error: 'not_found', path: redactUrl(req.getUrl()) });
          exchange.end('200 OK', file.contentType, file.body);
        }),
      )
      .any(
        '/*',
        route('any', (exchange) => exchange.json('404 Not Found', { error: 'not_found' })),
      );
  }

  let app: TemplatedApp | undefined;

  return {
    async start() {
      await sessions.watchRedis();
      app = buildApp();
      const a = app;
      listenSocket = await new Promise<us_listen_socket | false>((resolve) =>
        listenExclusive(a, deps.host, deps.port, resolve),
      );
      if (!listenSocket) throw new Error(`could not listen on ${deps.host}:${deps.port} (in use?)`);
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

/**
 * `WS_COMPRESSION` as uWS flags. Every setting decompresses with the shared decompressor: client
 * frames are small and a per-socket inflate window would be memory per socket for nothing.
 */
function compressionOf(uws: Uws, setting: GatewaySettings['compression']): number {
  switch (setting) {
    case 'off':
      return uws.DISABLED;
    case 'shared':
      return uws.SHARED_COMPRESSOR | uws.SHARED_DECOMPRESSOR;
    case 'dedicated':
      return uws.DEDICATED_COMPRESSOR_4KB | uws.SHARED_DECOMPRESSOR;
  }
}
