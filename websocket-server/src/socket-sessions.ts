import { setTimeout as delay } from 'node:timers/promises';
import {
  ERROR_CODES,
  TOPICS,
  clientFrameSchemas,
  parseClientFrame,
  serializeFrame,
  type Bus,
  type KeyValueStore,
  type Metrics,
  type PubSub,
  type ServerFrame,
} from '@relay/common';
import type { Logger } from 'pino';
import { deliveryDefaults, type DeliverySettings, type GatewaySettings } from './config.js';
import { STREAM_ID_PATTERN } from './event-id.js';
import { createGatewayMetrics, type GatewayMetrics } from './gateway-metrics.js';
import { createMessageIntake } from './message-intake.js';
import { resumeSocket } from './resume.js';
import { createDelivery, createOutbox, type Delivery, type OutboundSocket } from './socket-delivery.js';
import type { TokenService } from './token-service.js';
import { IDLE_QUEUE, type UserData } from './user-data.js';
import { createUserSockets, type UserSockets } from './user-sockets.js';

const REDIS_CHECK_INTERVAL_MS = 2000;

export interface SocketSessionsDeps {
  settings: GatewaySettings;
  /** @default the fragment's defaults */
  delivery?: DeliverySettings;
  serverId: string;
  /** @default TOPICS.incoming */
  incomingTopic?: string;
  logger: Logger;
  metrics: Metrics;
  bus: Bus;
  store: KeyValueStore;
  pubsub: PubSub;
  tokens: TokenService;
}

/** What an upgrade request carries, read from it while it is valid (uWS' `req` is not after an await). */
export interface UpgradeRequest {
  query: URLSearchParams;
  /** The `Origin` header, '' when absent. */
  origin: string;
  ip: string;
}

/** An upgrade let through with the socket's state, or refused with an HTTP status and a reason. */
export type Admission =
  { ok: true; data: UserData } | { ok: false; status: 400 | 401 | 403 | 429 | 500 | 503; reason: string };

/** What a socket is asked for at upgrade time; the rest of its state starts the same for all. */
interface NewSession {
  userid: string;
  stream: boolean;
  extensions: boolean;
  ip: string;
  resumeFrom: string | null;
}

export interface SocketSessions<S extends OutboundSocket> {
  readonly metrics: GatewayMetrics;
  readonly sockets: UserSockets<S>;
  readonly outbound: Delivery;
  /**
   * Every check of an upgrade, the token verified, before the 101 goes out: draining, origin,
   * `last_event_id`, token and claimed user, connections per user. Never rejects.
   */
  admit(request: UpgradeRequest): Promise<Admission>;
  /** The socket is open: subscribe its user's channel, then replay from `last_event_id` if given. */
  open(socket: S): Promise<void>;
  /** A frame from the client: size and type checks, then `message`, `hello` or `cancel`. */
  message(socket: S, payload: ArrayBuffer | Uint8Array, isBinary: boolean): void;
  /** The socket closed: nothing may be sent on it any more; unsubscribe after the user's last one. */
  closed(socket: S): void;
  /**
   * Readiness: Kafka healthy, Redis answering (pinged every 2 s once `watchRedis` ran), not
   * draining; also sets the upstream gauges.
   */
  ready(): { ready: boolean; checks: { kafka: boolean; redis: boolean; draining: boolean } };
  /** Pings Redis once (awaited) and then every 2 s until the drain. */
  watchRedis(): Promise<void>;
  /** After a Redis resubscription: every socket catches up from the replay log. */
  resync(): void;
  /** The Redis subscription dropped: live sockets keep their position and buffer. */
  suspend(): void;
  /**
   * Drains: from now on upgrades should be refused and new messages get `upstream_unavailable`;
   * messages already being published get their Kafka ack (up to `DRAIN_TIMEOUT_MS`); then every
   * socket is closed with 1001 (clients reconnect elsewhere and resume).
   */
  drainAndClose(): Promise<void>;
  readonly draining: boolean;
}

/**
 * What a gateway does with its sockets, whatever the WebSocket library carries them: client frames,
 * subscriptions, resume, resync after a Redis outage, close. The uWS gateway and the bench's `ws`
 * baseline (scripts/bench/baseline-gateway) both run on it, so they differ only in the transport
 * (upgrade, HTTP, send) and the side-by-side benchmark compares the libraries, not two copies.
 */
export function createSocketSessions<S extends OutboundSocket>(deps: SocketSessionsDeps): SocketSessions<S> {
  const { settings, logger, store } = deps;
  const delivery = deps.delivery ?? deliveryDefaults();
  const limits = { maxContentLength: settings.maxContentLength };
  const schemas = clientFrameSchemas(limits);
  const m = createGatewayMetrics(deps.metrics);
  let draining = false;
  let nextConnectionId = 0;
  let redisOk = false;
  let redisTimer: NodeJS.Timeout | undefined;

  const outbound = createDelivery({
    softBytes: settings.slowClientSoftBytes,
    hardBytes: settings.slowClientHardBytes,
    logger,
    onWritten: (kind) => m.frames.inc({ kind }),
    onCoalesced: () => m.coalesced.inc(),
    onSlowClose: () => m.slowCloses.inc(),
  });
  const sockets = createUserSockets<S>({ pubsub: deps.pubsub, logger, deliver: outbound.live });
  const updateGauges = () => {
    m.connections.set(sockets.connections);
    m.users.set(sockets.users);
  };

  const intake = createMessageIntake<S>({
    settings,
    delivery,
    serverId: deps.serverId,
    incomingTopic: deps.incomingTopic ?? TOPICS.incoming,
    logger,
    metrics: m,
    bus: deps.bus,
    store,
    pubsub: deps.pubsub,
    reply: (ws, frame: ServerFrame) => outbound.control(ws, serializeFrame(frame)),
    draining: () => draining,
  });

  /**
   * Replays the log after `from` to a socket in resuming mode, then lets it go live. A failure
   * closes the socket: the client reconnects and resumes from its own last_event_id.
   */
  async function replay(ws: S, from: string): Promise<void> {
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

  function ready() {
    const checks = { kafka: deps.bus.healthy(), redis: redisOk, draining };
    m.upstreamUp.set({ upstream: 'kafka' }, checks.kafka ? 1 : 0);
    m.upstreamUp.set({ upstream: 'redis' }, checks.redis ? 1 : 0);
    return { ready: checks.kafka && checks.redis && !draining, checks };
  }

  function newUserData(session: NewSession): UserData {
    return {
      ...session,
      connectionId: ++nextConnectionId,
      closed: false,
      queue: IDLE_QUEUE,
      resyncFrom: null,
      awaitingResync: false,
      // Resuming from the start: live frames that arrive before the replay is done wait.
      outbox: createOutbox(session.resumeFrom),
    };
  }

  return {
    metrics: m,
    ready,

    async admit({ query, origin, ip }) {
      if (draining) return { ok: false, status: 503, reason: 'draining' };
      if (origin && settings.allowedOrigins.length > 0 && !settings.allowedOrigins.includes(origin)) {
        return { ok: false, status: 403, reason: 'origin_not_allowed' };
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
        return { ok: false, status: 400, reason: 'invalid_last_event_id' };
      }
      let userid: string | null;
      try {
        userid = await deps.tokens.verify(token);
      } catch (err) {
        logger.error({ err }, 'token verification failed');
        return { ok: false, status: 500, reason: 'internal_error' };
      }
      // The drain may have begun (and closed every socket) while the token was being checked.
      if (draining) return { ok: false, status: 503, reason: 'draining' };
      if (!userid || (claimedUser !== null && claimedUser !== userid)) {
        return { ok: false, status: 401, reason: 'invalid_token' };
      }
      if (sockets.count(userid) >= settings.maxConnectionsPerUser) {
        return { ok: false, status: 429, reason: 'too_many_connections' };
      }
      return { ok: true, data: newUserData({ userid, stream, extensions, ip, resumeFrom }) };
    },
    async watchRedis() {
      const check = () =>
        store
          .ping()
          .then(
            () => (redisOk = true),
            () => (redisOk = false),
          )
          .finally(ready);
      await check();
      redisTimer = setInterval(() => void check(), REDIS_CHECK_INTERVAL_MS);
      redisTimer.unref();
    },
    sockets,
    outbound,
    get draining() {
      return draining;
    },
    async drainAndClose() {
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
    },

    async open(ws) {
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
    },

    message(ws, payload, isBinary) {
      const data = ws.getUserData();
      // A library may still read frames during its closing handshake; none is handled after close.
      if (data.closed) return;
      if (payload.byteLength > settings.maxPayloadBytes) {
        m.messages.inc({ outcome: 'message_too_large' });
        ws.end(1009, 'message_too_large');
        return;
      }
      if (isBinary) {
        intake.error(ws, 'invalid_message', 'Binary frames are not supported; send JSON text');
        return;
      }
      // Decoded now: uWS' ArrayBuffer is only valid during its callback.
      const text = (
        payload instanceof Uint8Array
          ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
          : Buffer.from(payload)
      ).toString('utf8');
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
    },

    closed(ws) {
      const data = ws.getUserData();
      if (data.closed) return;
      data.closed = true;
      // Nothing can be sent any more; the client resumes whatever was waiting here.
      Object.assign(data.outbox, createOutbox(null));
      sockets.remove(ws).then(updateGauges, (err: unknown) => {
        m.redisErrors.inc({ op: 'unsubscribe' });
        logger.warn({ err }, 'unsubscribe failed');
      });
    },

    /**
     * Frames published while the channel subscription was down (a Redis reconnect) never reached
     * these sockets, but they are in the log (the relay appends before it publishes): every socket
     * reads the log again from the newest frame it handled, the way a resume does.
     */
    resync() {
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
    },

    /**
     * The subscription dropped: every live socket keeps its position and buffers from now on, so the
     * resync after the resubscription replays exactly what it missed before anything newer goes out.
     */
    suspend() {
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
    },
  };
}
