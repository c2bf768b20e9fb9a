import { randomUUID } from 'node:crypto';
import {
  ERROR_CODES,
  HEADERS,
  REDIS_KEYS,
  REQUEST_STATES,
  createDailyBudgets,
  type BudgetScope,
  withContext,
  noopTracer,
  type Bus,
  type CancelControl,
  type ClientCancelFrame,
  type ClientMessageFrame,
  type ErrorCode,
  type ErrorFrame,
  type KeyValueStore,
  type PromptEvent,
  type PubSub,
  type ServerFrame,
  type Span,
  type Tracer,
} from '@relay/common';
import type { Logger } from 'pino';
import type { DeliverySettings, GatewaySettings } from './config.js';
import type { GatewayMetrics } from './gateway-metrics.js';
import type { Connection } from './connection/connection.js';
import type { Sites } from './sites/sites.js';
import type { SessionSocket } from './user-data.js';

/**
 * Value of an accept marker while its message is being published. Not a valid client id (ids are
 * `[\w.:-]+`), so it cannot be mistaken for the `request_id` the marker holds once Kafka acked.
 */
export const ACCEPT_PENDING = '(pending)';

/** How long a cancel key lives (docs/delivery.md): longer than any queued request waits. */
export const CANCEL_TTL_MS = 600_000;

export interface MessageIntakeDeps<S extends SessionSocket> {
  settings: Pick<GatewaySettings, 'rateLimitMessages' | 'rateLimitWindowMs' | 'acceptPendingTtlMs'>;
  delivery: Pick<DeliverySettings, 'dedupeTtlMs'>;
  serverId: string;
  incomingTopic: string;
  logger: Logger;
  metrics: GatewayMetrics;
  bus: Bus;
  store: KeyValueStore;
  pubsub: PubSub;
  /** Sends a frame that is not in the replay log (ack, error) to the socket, at once. */
  reply: (socket: S, frame: ServerFrame) => void;
  /** True once the gateway is shutting down: messages not yet published are refused. */
  draining: () => boolean;
  /** The user's connections on this gateway: a cancel may name a request acked on any of them. */
  connectionsOf: (userid: string) => Connection[];
  /** Where each connection's daily budgets come from. */
  sites: Sites;
  /** @default Date.now */
  now?: () => number;
  /** The Kafka produce span and its context in the record's headers. @default noopTracer */
  tracer?: Tracer;
}

export interface MessageIntake<S extends SessionSocket> {
  /**
   * Rate limit, accept marker, Kafka publish, ack. Never rejects (failures become error frames).
   * `wantsAck`: whether the client asked for an ack (an `id`, or acks on), as of when the frame
   * came in: a `hello` sent after the message must not change its answer, however long its turn
   * in the socket's queue takes. `span`: the frame's receive span (tracing on), active meanwhile
   * and ended here.
   */
  message(socket: S, frame: ClientMessageFrame, wantsAck: boolean, span?: Span): Promise<void>;
  /**
   * Cancel key + `control:cancel`, for a request this user has pending (acked on one of the user's
   * sockets here and not answered yet, or running on a consumer); `unknown_request` otherwise.
   * Replies only on refusal or when Redis fails. Never rejects.
   */
  cancel(socket: S, frame: ClientCancelFrame): Promise<void>;
  /** An error frame; `span` (the frame's, if traced) records the code as its outcome. */
  error(socket: S, code: ErrorCode, message: string, requestId?: string, span?: Span): void;
}

/**
 * What happens to a client's `message` and `cancel` frames. A message with a client `id` is accepted
 * once (docs/delivery.md, accept marker `accepted:{userid}:{id}`), in two steps so that a gateway
 * dying mid-publish cannot leave an ack behind for a message Kafka never got:
 * 1. `SET NX` the marker to {@link ACCEPT_PENDING} with a short TTL (`ACCEPT_PENDING_TTL_MS`);
 * 2. after the Kafka ack, set it to the `request_id` for `DEDUPE_TTL_SECONDS`, then ack.
 * A resend that finds the `request_id` is acked again without a publish; one that finds the
 * pending value (the first copy is still being published, here or on a gateway that died) is told
 * `upstream_unavailable` and retries. A failed publish deletes the marker so the retry goes through.
 */
export function createMessageIntake<S extends SessionSocket>(deps: MessageIntakeDeps<S>): MessageIntake<S> {
  const { settings, logger, bus, store, pubsub } = deps;
  const m = deps.metrics;
  const now = deps.now ?? Date.now;
  const budgets = createDailyBudgets(store);
  const tracer = deps.tracer ?? noopTracer;

  function error(socket: S, code: ErrorCode, message: string, requestId?: string, span?: Span): void {
    span?.setAttribute('relay.outcome', code);
    const frame: ErrorFrame = {
      type: 'error',
      message,
      code,
      userid: socket.getUserData().connection.userid,
      ...(requestId ? { request_id: requestId } : {}),
    };
    m.messages.inc({ outcome: code });
    deps.reply(socket, frame);
  }

  /** Runs a Redis command; on failure counts it, answers `upstream_unavailable` and returns undefined. */
  async function redis<T>(
    socket: S,
    op: string,
    log: Logger,
    requestId: string,
    command: () => Promise<T>,
    span?: Span,
  ): Promise<{ value: T } | undefined> {
    try {
      return { value: await command() };
    } catch (err) {
      m.redisErrors.inc({ op });
      log.warn({ err, op }, 'redis command failed');
      span?.fail(err);
      error(socket, 'upstream_unavailable', ERROR_CODES.upstream_unavailable.message, requestId, span);
      return undefined;
    }
  }

  function ack(socket: S, wantsAck: boolean, requestId: string): void {
    const connection = socket.getUserData().connection;
    connection.accepted(requestId);
    if (wantsAck) {
      deps.reply(socket, { type: 'ack', request_id: requestId, userid: connection.userid });
    }
  }

  /** Not async: an untraced message costs no extra promise. */
  function message(socket: S, frame: ClientMessageFrame, wantsAck: boolean, span?: Span): Promise<void> {
    return span ? messageTraced(socket, frame, wantsAck, span) : accept(socket, frame, wantsAck, undefined);
  }

  async function messageTraced(
    socket: S,
    frame: ClientMessageFrame,
    wantsAck: boolean,
    span: Span,
  ): Promise<void> {
    try {
      // Active meanwhile: the log lines about this message carry its trace.
      await tracer.withSpan(span, () => accept(socket, frame, wantsAck, span));
    } finally {
      span.end();
    }
  }

  async function accept(
    socket: S,
    frame: ClientMessageFrame,
    wantsAck: boolean,
    span: Span | undefined,
  ): Promise<void> {
    const started = performance.now();
    const { userid, site: siteId } = socket.getUserData().connection;
    const site = deps.sites.get(siteId);
    const scope: BudgetScope = {
      userid,
      site: siteId,
      limits: { user: site?.dailyTokensPerUser ?? 0, site: site?.dailyTokens ?? 0 },
    };
    const requestId = frame.id ?? randomUUID();
    span?.setAttribute('relay.request_id', requestId);
    const log = withContext(logger, { request_id: requestId, userid, correlation_id: requestId });
    if (deps.draining()) {
      // Queued behind another message when the drain began: not taken, the client resends elsewhere.
      error(socket, 'upstream_unavailable', 'Server is restarting; reconnect and resend', requestId, span);
      return;
    }
    if (!bus.healthy()) {
      // Kafka is known to be down (the bus probes it until it answers): say so now rather than after
      // a publish timeout per message, which the socket's queue would add up.
      m.publishFailures.inc({ reason: 'unhealthy' });
      error(socket, 'upstream_unavailable', ERROR_CODES.upstream_unavailable.message, requestId, span);
      return;
    }
    const window = await redis(
      socket,
      'rate_limit',
      log,
      requestId,
      () => store.incrementWindow(REDIS_KEYS.messageRate(userid), settings.rateLimitWindowMs),
      span,
    );
    if (!window) return;
    if (window.value.count > settings.rateLimitMessages) {
      const retry = `(retry in ${window.value.resetMs} ms)`;
      error(socket, 'rate_limited', `${ERROR_CODES.rate_limited.message} ${retry}`, requestId, span);
      return;
    }

    if (scope.limits.user > 0 || scope.limits.site > 0) {
      const over = await redis(socket, 'budget', log, requestId, () => budgets.exceeded(scope, now()), span);
      if (!over) return;
      if (over.value !== null) {
        m.budgetRefusals.inc({ budget: over.value });
        error(socket, 'budget_exceeded', ERROR_CODES.budget_exceeded.message, requestId, span);
        return;
      }
    }

    const marker = frame.id === undefined ? undefined : REDIS_KEYS.accepted(userid, frame.id);
    if (marker !== undefined) {
      const fresh = await redis(
        socket,
        'accept_marker',
        log,
        requestId,
        () => store.set(marker, ACCEPT_PENDING, { ttlMs: settings.acceptPendingTtlMs, onlyIfAbsent: true }),
        span,
      );
      if (!fresh) return;
      if (!fresh.value) {
        const existing = await redis(socket, 'accept_marker', log, requestId, () => store.get(marker), span);
        if (!existing) return;
        if (existing.value === requestId) {
          m.messages.inc({ outcome: 'duplicate' });
          span?.setAttribute('relay.outcome', 'duplicate');
          log.debug('duplicate id: acked again, not published');
          ack(socket, wantsAck, requestId);
          return;
        }
        // Still being published (maybe by a gateway that died), or the marker just went away.
        error(
          socket,
          'upstream_unavailable',
          'This id is still being accepted; retry shortly',
          requestId,
          span,
        );
        return;
      }
    }

    const event: PromptEvent = {
      v: 1,
      request_id: requestId,
      userid,
      content: frame.content,
      conversation_id: frame.conversation_id ?? 'default',
      gateway_id: deps.serverId,
      received_at: new Date().toISOString(),
      site: siteId,
      budget: scope.limits,
      // Deltas only where someone reads them: a socket of this user here that opted in to streaming.
      stream: deps.connectionsOf(userid).some((c) => c.stream),
    };
    const headers: Record<string, string> = { [HEADERS.correlationId]: requestId };
    // The record carries the produce span's context (SPEC §3): the consumer's spans hang below it.
    const produce = span && produceSpan(span);
    produce?.inject(headers);
    try {
      await bus.publish(deps.incomingTopic, [{ key: userid, value: JSON.stringify(event), headers }]);
      produce?.end();
    } catch (err) {
      produce?.fail(err);
      produce?.end();
      // No ack: the client knows the message was not taken and may retry with the same id.
      m.publishFailures.inc({ reason: 'failed' });
      log.warn({ err }, 'publish to kafka failed');
      if (marker !== undefined) {
        await store.del(marker).catch((delErr: unknown) => {
          // The pending marker expires after ACCEPT_PENDING_TTL_MS; retries are refused until then.
          m.redisErrors.inc({ op: 'accept_marker' });
          log.warn({ err: delErr }, 'could not delete the accept marker after a failed publish');
        });
      }
      error(socket, 'upstream_unavailable', ERROR_CODES.upstream_unavailable.message, requestId, span);
      return;
    }
    if (marker !== undefined) {
      await store.set(marker, requestId, { ttlMs: deps.delivery.dedupeTtlMs }).catch((err: unknown) => {
        // Kafka has it, so the ack stands; a resend after the pending marker expired would be
        // published again, and the consumer drops the copy by request_id.
        m.redisErrors.inc({ op: 'accept_marker' });
        log.warn({ err }, 'could not mark the id accepted');
      });
    }
    m.messages.inc({ outcome: 'accepted' });
    span?.setAttribute('relay.outcome', 'accepted');
    m.ackLatency.observe((performance.now() - started) / 1000);
    ack(socket, wantsAck, requestId);
    log.debug('message accepted');
  }

  function produceSpan(parent: Span): Span {
    const span = tracer.startSpan(`${deps.incomingTopic} publish`, 'producer', parent);
    span.setAttribute('messaging.system', 'kafka');
    span.setAttribute('messaging.destination.name', deps.incomingTopic);
    span.setAttribute('messaging.operation.type', 'send');
    return span;
  }

  async function cancel(socket: S, frame: ClientCancelFrame): Promise<void> {
    // Identity from the token: a user can only cancel requests under their own keys.
    const { userid } = socket.getUserData().connection;
    const requestId = frame.request_id;
    const log = withContext(logger, { request_id: requestId, userid, correlation_id: requestId });
    const pending = await isPending(socket, log, userid, requestId);
    if (pending === undefined) return;
    if (!pending) {
      m.cancelsRefused.inc();
      error(socket, 'unknown_request', 'No pending request with this request_id', requestId);
      return;
    }
    const control: CancelControl = { userid, request_id: requestId };
    // The key covers a request still queued (checked before its model call starts), the message one
    // that is running on whichever consumer holds it.
    const done = await redis(socket, 'cancel', log, requestId, async () => {
      await store.set(REDIS_KEYS.cancel(userid, requestId), '1', { ttlMs: CANCEL_TTL_MS });
      await pubsub.publish(REDIS_KEYS.cancelChannel, JSON.stringify(control));
    });
    if (!done) return;
    m.cancels.inc();
    log.debug('cancel passed on');
  }

  /**
   * Whether `requestId` is this user's and not answered yet: acked on one of the user's sockets
   * here (the common case, a stop button), else known to Redis as running on a consumer or as an
   * accepted client id not yet answered. Undefined when Redis failed (already answered).
   */
  async function isPending(
    socket: S,
    log: Logger,
    userid: string,
    requestId: string,
  ): Promise<boolean | undefined> {
    if (deps.connectionsOf(userid).some((c) => c.hasPending(requestId))) return true;
    const states = await redis(socket, 'cancel', log, requestId, () =>
      Promise.all([
        store.get(REDIS_KEYS.request(userid, requestId)),
        store.get(REDIS_KEYS.accepted(userid, requestId)),
      ]),
    );
    if (!states) return undefined;
    const [state, accepted] = states.value;
    if (state !== null) return state !== REQUEST_STATES.done;
    return accepted === requestId;
  }

  return { message, cancel, error };
}
