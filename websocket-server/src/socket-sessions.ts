import { setTimeout as delay } from 'node:timers/promises';
import {
  ERROR_CODES,
  TOPICS,
  clientFrameSchemas,
  createDependencyWatch,
  createGuard,
  drainingCheck,
  noopTracer,
  readinessOf,
  parseClientFrame,
  serializeFrame,
  type Bus,
  type ClientPresenceFrame,
  type Guard,
  type KeyValueStore,
  type Metrics,
  type PubSub,
  type Readiness,
  type ServerFrame,
  type Tracer,
} from '@relay/common';
import type { Logger } from 'pino';
import { deliveryDefaults, type DeliverySettings, type GatewaySettings } from './config.js';
import { Connection, type DeliveryPolicy, type OutboundSocket } from './connection/connection.js';
import { replayLog } from './connection/replay.js';
import { ConnectionCounts, type OverLimit } from './connection-counts.js';
import { eventIdOf, streamIdMs } from './event-id.js';
import { createGatewayMetrics, type GatewayMetrics } from './gateway-metrics.js';
import { createMessageIntake } from './message-intake.js';
import { FrameRate, IntakeQueue } from './socket-intake.js';
import { originAllowed, type Sites } from './sites/sites.js';
import type { TokenService } from './token-service.js';
import type { SessionSocket, UserData } from './user-data.js';
import { createUserSockets, type UserSockets } from './user-sockets.js';
import {
  createPresence,
  presenceDefaults,
  type Presence,
  type PresenceSetResult,
  type PresenceSettings,
} from './presence/index.js';

/** A socket of either gateway: its state (UserData) and what delivery writes to. */
export type GatewaySocket = SessionSocket & OutboundSocket;

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
  /** The sites tokens may name (`sitesFor`). */
  sites: Sites;
  /** @default the fragment's defaults */
  presence?: PresenceSettings;
  /** @default Date.now */
  now?: () => number;
  /** A trace per client message and a span per traced frame delivered. @default noopTracer */
  tracer?: Tracer;
}

/** What an upgrade request carries, read from it while it is valid (uWS' `req` is not after an await). */
export interface UpgradeRequest {
  query: URLSearchParams;
  /** The `Origin` header, '' when absent. */
  origin: string;
  ip: string;
}

/** Reasons an upgrade is refused with, as in the JSON body and `gateway_upgrades_rejected_total`. */
export type RejectReason =
  | 'draining'
  | 'origin_not_allowed'
  | 'invalid_last_event_id'
  | 'invalid_token'
  | 'internal_error'
  | OverLimit['reason'];

/**
 * An upgrade let through with the socket's state, or refused with an HTTP status and a reason. An
 * admitted upgrade counts against the connection caps until its socket closes, or until
 * `abandoned(data)` when the 101 could not be sent (the client went away meanwhile).
 */
export type Admission =
  | { ok: true; data: UserData }
  | { ok: false; status: 400 | 401 | 403 | 429 | 500 | 503; reason: RejectReason };

/** The socket methods both gateways call, each inside the guard (nothing throws out of them). */
export interface SocketSessions<S extends GatewaySocket> {
  readonly metrics: GatewayMetrics;
  readonly sockets: UserSockets<S>;
  /** Presence of this gateway's users, and reads of anyone's (docs/presence.md). */
  readonly presence: Presence;
  readonly presenceSettings: PresenceSettings;
  /** The guard every input path runs in; the gateways wrap their HTTP routes and upgrade with it. */
  readonly guard: Guard;
  /**
   * Every check of an upgrade, the token verified, before the 101 goes out: draining, origin,
   * `last_event_id`, token and claimed user, the connection caps. Synchronous, so the gateway
   * upgrades inside uWS' upgrade handler (gateway.ts `upgrade` says why). Never throws.
   */
  admit(request: UpgradeRequest): Admission;
  /** An admitted upgrade that never became a socket: its place under the caps is given back. */
  abandoned(data: UserData): void;
  /** The socket is open: subscribe its user's channel, then replay from `last_event_id` if given. */
  open(socket: S): void;
  /** A frame from the client: frame budget, size and type checks, then `message`, `hello`, `cancel` or `presence`. */
  message(socket: S, payload: ArrayBuffer | Uint8Array, isBinary: boolean): void;
  /** The send buffer went down (uWS `drain`): held deltas may go out. */
  drain(socket: S): void;
  /** The socket closed: nothing may be sent on it any more; unsubscribe after the user's last one. */
  closed(socket: S): void;
  /**
   * Readiness, checks `kafka`, `redis` (pinged every 2 s once `watchRedis` ran) and `draining`;
   * also sets the upstream gauges.
   */
  ready(): Readiness;
  /** Pings Redis once (awaited) and then every 2 s until the drain; starts presence (its channel and heartbeats). */
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
 * Largest `event_id` a resume may name: Redis stream ids are `ms-seq` with 64-bit parts, and a
 * position in the future is not one this user ever had (checked again against the log, replay.ts).
 */
const LAST_EVENT_ID_PATTERN = /^\d{1,16}-\d{1,20}$/;
const LAST_EVENT_ID_MAX_AHEAD_MS = 60_000;

/** A `last_event_id` the upgrade may carry: a stream id, not ahead of this clock by more than a minute. */
export function validResumePoint(id: string, nowMs: number): boolean {
  return LAST_EVENT_ID_PATTERN.test(id) && streamIdMs(id) <= nowMs + LAST_EVENT_ID_MAX_AHEAD_MS;
}

/**
 * What a gateway does with its sockets, whatever the WebSocket library carries them: client frames,
 * subscriptions, resume, resync after a Redis outage, close. The uWS gateway and the bench's `ws`
 * baseline (scripts/bench/baseline-gateway) both run on it, so they differ only in the transport
 * (upgrade, HTTP, send) and the side-by-side benchmark compares the libraries, not two copies.
 * Each socket's delivery state is its {@link Connection}; this module only calls its transitions.
 */
export function createSocketSessions<S extends GatewaySocket>(deps: SocketSessionsDeps): SocketSessions<S> {
  const { settings, logger, store } = deps;
  const now = deps.now ?? Date.now;
  const delivery = deps.delivery ?? deliveryDefaults();
  const presenceSettings = deps.presence ?? presenceDefaults();
  const limits = {
    maxContentLength: settings.maxContentLength,
    maxPresenceMessageLength: presenceSettings.maxMessageLength,
  };
  const schemas = clientFrameSchemas(limits);
  const m = createGatewayMetrics(deps.metrics);
  const guard = createGuard({ logger, metrics: deps.metrics });
  const counts = new ConnectionCounts(settings);
  const tracer = deps.tracer ?? noopTracer;
  m.maxConnections.set(settings.maxConnections);
  let draining = false;
  let nextConnectionId = 0;
  const redis = createDependencyWatch({ check: () => store.ping(), intervalMs: REDIS_CHECK_INTERVAL_MS });

  const policy: DeliveryPolicy = {
    softBytes: settings.slowClientSoftBytes,
    hardBytes: settings.slowClientHardBytes,
    compress: settings.compression !== 'off',
    logger,
    onWritten: (kind) => m.frames.inc({ kind }),
    onCoalesced: () => m.coalesced.inc(),
    onSlowClose: () => m.slowCloses.inc(),
  };

  const connectionOf = (ws: S): Connection => ws.getUserData().connection;
  const contextOf = (ws: S) => () => connectionOf(ws).logContext;
  /** After a bug while serving one socket: close it with 1011, the client reconnects and resumes. */
  const failSocket = (ws: S) => () => connectionOf(ws).end(1011, 'internal_error');

  const presence = createPresence({
    settings: presenceSettings,
    serverId: deps.serverId,
    store,
    pubsub: deps.pubsub,
    logger,
    metrics: deps.metrics,
    guard,
    now,
  });
  const sockets = createUserSockets<S>({
    pubsub: deps.pubsub,
    logger,
    tracer,
    deliver: (ws, payload) =>
      guard.run(
        'deliver',
        () => {
          connectionOf(ws).live(payload);
          observeDelivery(payload);
        },
        failSocket(ws),
        contextOf(ws),
      ),
    // Presence follows the user's sockets here; it never rejects (a failed write waits for the heartbeat).
    onFirst: (ws) => void presence.join(connectionOf(ws).site, connectionOf(ws).userid),
    onLast: (ws) => void presence.leave(connectionOf(ws).site, connectionOf(ws).userid),
  });
  /** The event id's time is Redis' clock at the append; a clock ahead of ours counts as no delay. */
  function observeDelivery(payload: string): void {
    const id = eventIdOf(payload);
    if (id !== undefined) m.deliveryLatency.observe(Math.max(0, now() - streamIdMs(id)) / 1000);
  }
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
    reply: (ws, frame: ServerFrame) => connectionOf(ws).control(serializeFrame(frame)),
    draining: () => draining,
    connectionsOf: (userid) => sockets.connectionsOf(userid),
    sites: deps.sites,
    now,
    tracer,
  });

  /** `{"type":"presence"}`: the user's chosen status, answered with the presence others now read. */
  async function setPresence(ws: S, frame: ClientPresenceFrame): Promise<void> {
    const connection = connectionOf(ws);
    let result: PresenceSetResult;
    try {
      result = await presence.set(connection.site, connection.userid, frame);
    } catch (err) {
      m.redisErrors.inc({ op: 'presence' });
      logger.warn({ err, ...connection.logContext }, 'presence write failed (redis)');
      return intake.error(ws, 'upstream_unavailable', ERROR_CODES.upstream_unavailable.message);
    }
    if (!result.ok) {
      return intake.error(
        ws,
        'rate_limited',
        `Too many presence updates (retry in ${result.retryAfterMs} ms)`,
      );
    }
    connection.control(serializeFrame({ type: 'presence', ...result.record }));
  }

  /** A bug in handling one client frame: that client gets `internal_error`, the socket stays. */
  const internalError = (ws: S, requestId?: string) => () =>
    intake.error(ws, 'internal_error', ERROR_CODES.internal_error.message, requestId);

  /**
   * Replays the log after `from` to a `resuming` connection, which then goes live. A failure closes
   * the socket: the client reconnects and resumes from its own last_event_id.
   */
  async function replay(ws: S, from: string): Promise<void> {
    const connection = connectionOf(ws);
    try {
      const result = await replayLog({ store, replayTtlMs: delivery.replayTtlMs, now }, connection, from);
      m.replayedFrames.inc(result.replayed);
      if (result.clamped) m.resumesClamped.inc();
      if (!result.abandoned) m.resumes.inc({ outcome: result.gap ? 'gap' : 'ok' });
    } catch (err) {
      m.resumes.inc({ outcome: 'failed' });
      m.redisErrors.inc({ op: 'replay' });
      logger.warn({ err, ...connection.logContext }, 'replay failed (redis)');
      connection.end(1011, 'resume_failed');
    }
  }

  /** Also what a scrape reports: the gateway calls it before rendering /metrics. */
  function ready(): Readiness {
    const readiness = readinessOf({
      kafka: deps.bus.health(),
      redis: redis.current,
      draining: drainingCheck(draining),
    });
    m.upstreamUp.set({ upstream: 'kafka' }, readiness.checks.kafka?.ok ? 1 : 0);
    m.upstreamUp.set({ upstream: 'redis' }, readiness.checks.redis?.ok ? 1 : 0);
    m.ready.set(readiness.ready ? 1 : 0);
    return readiness;
  }

  function admit({ query, origin, ip }: UpgradeRequest): Admission {
    if (draining) return { ok: false, status: 503, reason: 'draining' };
    const token = query.get('token') ?? '';
    const claimedUser = query.get('userid');
    const flag = (name: string) => ['1', 'true'].includes(query.get(name) ?? '');
    const stream = flag('stream');
    const extensions = stream || flag('ack');
    // An empty value counts as absent (a client that has seen nothing yet); a malformed or future
    // one is a client bug (or a forged id) that would silently lose frames if taken, so it is refused.
    const resumeFrom = query.get('last_event_id') || null;
    if (resumeFrom !== null && !validResumePoint(resumeFrom, now())) {
      return { ok: false, status: 400, reason: 'invalid_last_event_id' };
    }
    const identity = deps.tokens.verify(token);
    // A token of a site this gateway no longer has (dev tokens turned off, a site removed) is void.
    const site = identity ? deps.sites.get(identity.site) : undefined;
    if (!identity || !site || (claimedUser !== null && claimedUser !== identity.userid)) {
      return { ok: false, status: 401, reason: 'invalid_token' };
    }
    // A token works only on its own site's pages.
    if (!originAllowed(site, origin)) return { ok: false, status: 403, reason: 'origin_not_allowed' };
    const { userid } = identity;
    const over = counts.check(userid, ip);
    if (over) return { ok: false, ...over };
    counts.add(userid, ip);
    const connection = new Connection(
      { id: ++nextConnectionId, userid, site: site.id, ip, stream, extensions, resumeFrom },
      policy,
    );
    return {
      ok: true,
      data: {
        connection,
        intake: new IntakeQueue(settings.maxQueuedFrames),
        frames: new FrameRate(settings.rateLimitFrames, settings.rateLimitWindowMs),
      },
    };
  }

  /** Counted once per admitted connection, whether it closed or never opened. */
  function release(connection: Connection): boolean {
    if (!connection.closed()) return false;
    counts.remove(connection.userid, connection.ip);
    return true;
  }

  function onMessage(ws: S, payload: ArrayBuffer | Uint8Array, isBinary: boolean): void {
    const { connection, intake: queue, frames } = ws.getUserData();
    // A library may still read frames during its closing handshake; none is handled after close.
    if (!connection.open) return;
    // Every frame counts before anything else is done with it, valid or not.
    const verdict = frames.take(now());
    if (verdict !== 'ok') {
      m.framesLimited.inc({ verdict });
      if (verdict === 'abusive') return connection.end(1008, 'rate_limited');
      const retry = `(retry in ${frames.resetMs(now())} ms)`;
      return intake.error(ws, 'rate_limited', `Too many frames, slow down ${retry}`);
    }
    if (payload.byteLength > settings.maxPayloadBytes) {
      m.messages.inc({ outcome: 'message_too_large' });
      return connection.end(1009, 'message_too_large');
    }
    if (isBinary) {
      return intake.error(ws, 'invalid_message', 'Binary frames are not supported; send JSON text');
    }
    // Decoded now: uWS' ArrayBuffer is only valid during its callback. Invalid UTF-8 becomes U+FFFD.
    const text = (
      payload instanceof Uint8Array
        ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
        : Buffer.from(payload)
    ).toString('utf8');
    const parsed = parseClientFrame(text, schemas, limits, connection.userid);
    if (!parsed.ok) return intake.error(ws, parsed.code, parsed.message, parsed.id);
    const frame = parsed.frame;
    switch (frame.type) {
      case 'message': {
        if (draining) {
          return intake.error(
            ws,
            'upstream_unavailable',
            'Server is restarting; reconnect and resend',
            frame.id,
          );
        }
        // The message's trace starts here (tracing on), so its wait in the socket's queue counts.
        const span = tracer.enabled ? tracer.startSpan('ws message', 'server') : undefined;
        // A message with an `id` is from a client that retries by id, so it wants to know when to
        // stop; acks on (`?ack=1`, `?stream=1`, a `hello`) is read now, not when its turn comes.
        const wantsAck = connection.extensions || frame.id !== undefined;
        const queued = queue.push(
          () => intake.message(ws, frame, wantsAck, span),
          (err) => guard.fail('message', err, internalError(ws, frame.id), contextOf(ws)),
        );
        if (!queued) {
          m.messages.inc({ outcome: 'queue_full' });
          intake.error(ws, 'queue_full', ERROR_CODES.queue_full.message, frame.id, span);
          span?.end();
        }
        return;
      }
      case 'hello':
        return connection.hello(frame.stream ?? true);
      case 'cancel':
        return guard.run(
          'cancel',
          () => intake.cancel(ws, frame),
          internalError(ws, frame.request_id),
          contextOf(ws),
        );
      case 'presence':
        return guard.run('presence', () => setPresence(ws, frame), internalError(ws), contextOf(ws));
    }
  }

  return {
    metrics: m,
    sockets,
    presence,
    presenceSettings,
    guard,
    ready,
    admit(request) {
      try {
        return admit(request);
      } catch (err) {
        guard.fail('upgrade', err);
        return { ok: false, status: 500, reason: 'internal_error' };
      }
    },
    abandoned(data) {
      // Only an upgrade that never opened: an open socket gives its place back when it closes.
      guard.run('upgrade', () => data.connection.state === 'opening' && release(data.connection));
    },
    async watchRedis() {
      await redis.start();
      ready();
      await presence.start();
    },
    get draining() {
      return draining;
    },
    async drainAndClose() {
      draining = true;
      redis.close();
      const inFlight = sockets.all().map((ws) => ws.getUserData().intake.settled);
      if (inFlight.length > 0) {
        const timeout = new AbortController();
        const timedOut = delay(settings.drainTimeoutMs, true, { signal: timeout.signal }).catch(() => false);
        const late = await Promise.race([Promise.allSettled(inFlight).then(() => false), timedOut]);
        timeout.abort();
        if (late) logger.warn({ timeoutMs: settings.drainTimeoutMs }, 'drain timed out; closing sockets');
      }
      for (const ws of sockets.all()) {
        guard.run('drain', () => connectionOf(ws).end(1001, 'server_shutdown'), undefined, contextOf(ws));
      }
      // Leases still held (sockets whose close has not been seen yet) are given back now, so these
      // users read offline at once rather than after the lease, unless another gateway holds them.
      await presence.close();
    },

    open(ws) {
      guard.run(
        'open',
        async () => {
          const connection = connectionOf(ws);
          const from = connection.opened(ws, now());
          try {
            await sockets.add(ws);
          } catch {
            // Logged by the registry. The client reconnects (and resumes) once Redis answers.
            m.redisErrors.inc({ op: 'subscribe' });
            connection.end(1011, 'subscribe_failed');
            return;
          } finally {
            updateGauges();
          }
          if (from !== null && connection.state === 'resuming') await replay(ws, from);
        },
        failSocket(ws),
        contextOf(ws),
      );
    },

    message(ws, payload, isBinary) {
      guard.run('message', () => onMessage(ws, payload, isBinary), internalError(ws), contextOf(ws));
    },

    drain(ws) {
      guard.run('drain', () => connectionOf(ws).drain(), failSocket(ws), contextOf(ws));
    },

    closed(ws) {
      guard.run(
        'close',
        () => {
          if (!release(connectionOf(ws))) return;
          // Nothing can be sent any more; the client resumes whatever was waiting here.
          return sockets.remove(ws).then(updateGauges, (err: unknown) => {
            m.redisErrors.inc({ op: 'unsubscribe' });
            logger.warn({ err, ...connectionOf(ws).logContext }, 'unsubscribe failed');
          });
        },
        undefined,
        contextOf(ws),
      );
    },

    /**
     * Frames published while the channel subscription was down (a Redis reconnect) never reached
     * these sockets, but they are in the log (the relay appends before it publishes): every socket
     * reads the log again from its position, the way a resume does.
     */
    resync() {
      m.resyncs.inc();
      // The presence channel was down too: invalidations may have been missed.
      presence.resume();
      for (const ws of sockets.all()) {
        guard.run(
          'resync',
          () => {
            const from = connectionOf(ws).resync();
            if (from !== null) return replay(ws, from);
          },
          failSocket(ws),
          contextOf(ws),
        );
      }
    },

    /** The subscription dropped: every live socket keeps its position and waits for the resync. */
    suspend() {
      presence.suspend();
      for (const ws of sockets.all()) {
        guard.run('suspend', () => connectionOf(ws).channelLost(), failSocket(ws), contextOf(ws));
      }
    },
  };
}
