import { setTimeout as sleep } from 'node:timers/promises';
import {
  attachEventId,
  createDependencyWatch,
  createGuard,
  errorReason,
  failing,
  OK,
  readinessOf,
  dlqRecord,
  exportConsumerLag,
  publishWithRetry,
  HEADERS,
  REDIS_KEYS,
  SIZE_BUCKETS,
  startAtZero,
  TOPICS,
  frameFromEvent,
  once,
  parseEvent,
  responseEventSchema,
  serializeFrame,
  withContext,
  withTraceContext,
  noopTracer,
  type Bus,
  type BusMessage,
  type DependencyCheck,
  type KeyValueStore,
  type Logger,
  type Metrics,
  type PubSub,
  type Readiness,
  type QueuedEvent,
  type ResponseEvent,
  type AppendResult,
  type Span,
  type Subscription,
  type Tracer,
} from '@relay/common';
import type { DeliverySettings, RelaySettings } from './config.js';

export interface RelayTopics {
  /** @default TOPICS.responses */
  responses: string;
  /** @default TOPICS.responsesDlq */
  responsesDlq: string;
}

export interface RelayRetryOptions {
  /** First pause after a failed Redis command. @default 50 */
  baseMs: number;
  /** Longest pause between two attempts. @default 2000 */
  maxMs: number;
}

export interface RelayDeps {
  config: { kafka: { partitions: number }; relay: RelaySettings; delivery: DeliverySettings };
  logger: Logger;
  metrics: Metrics;
  bus: Bus;
  store: KeyValueStore;
  pubsub: PubSub;
  /** Topic names; injectable so tests use unique ones. @default TOPICS */
  topics?: RelayTopics;
  /** Backoff of Redis retries. @default { baseMs: 50, maxMs: 2000 } */
  retry?: RelayRetryOptions;
  /** Spans of the frames it traces (see `traced`). @default noopTracer */
  tracer?: Tracer;
}

export interface Relay {
  /** Creates the topics if missing and joins the consumer group. */
  start(): Promise<void>;
  /** Leaves the group after the message in hand is done or handed back uncommitted. Idempotent. */
  close(): Promise<void>;
  /**
   * Checks `kafka` (the bus), `subscription` (joined the group, not crashed) and `redis` (the last
   * command's outcome, and a PING every 2 s so an idle relay notices too). Also sets
   * `message_relay_upstream_up`; the ops server asks before every scrape.
   */
  ready(): Readiness;
}

/** Redis answered with an error (WRONGTYPE, OOM, …): the command was understood and refused. */
function isRedisReply(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

/** The relay is closing while a Redis command keeps failing: the message goes back uncommitted. */
class RelayClosingError extends Error {
  constructor(cause: unknown) {
    super('relay closing while Redis is unavailable; message left uncommitted for redelivery', { cause });
    this.name = 'RelayClosingError';
  }
}

/** Ends `span` when `work` settles, failed if it rejects. */
async function endsWith<T>(span: Span, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    span.fail(err);
    throw err;
  } finally {
    span.end();
  }
}

function carrierOf(span: Span): Record<string, string> {
  const carrier: Record<string, string> = {};
  span.inject(carrier);
  return carrier;
}

/** Events that go into the replay log: all but the transient `queued` hints. */
type LoggedEvent = Exclude<ResponseEvent, QueuedEvent>;

/** Which dedupe rule of the relay append applies to an event (an error ends a request like a final). */
function appendKind(event: LoggedEvent): { kind: 'delta'; seq: number } | { kind: 'reset' | 'final' } {
  switch (event.type) {
    case 'delta':
      return { kind: 'delta', seq: event.seq };
    case 'reset':
      return { kind: 'reset' };
    case 'final':
    case 'error':
      return { kind: 'final' };
  }
}

/**
 * Kafka `responses` → per-user replay log → `PUBLISH user:{userid}` (SPEC §3–4, docs/delivery.md).
 *
 * The replay log is written first because its entry id is the frame's `event_id`; the publish then
 * carries that id, so a live frame and its replayed copy are the same bytes. The handler resolves
 * after both, and only then does the Bus commit. A crash in between redelivers the event; the
 * append checks the request's relay state in the same script, so a redelivered delta (same `seq`)
 * or anything after the request's final is skipped: not appended, not published, just committed.
 */
export function createRelay(deps: RelayDeps): Relay {
  const { config, logger, metrics, bus, store, pubsub } = deps;
  const topics = deps.topics ?? { responses: TOPICS.responses, responsesDlq: TOPICS.responsesDlq };
  const retry = deps.retry ?? { baseMs: 50, maxMs: 2000 };
  const settings = config.relay;
  const delivery = config.delivery;
  const tracer = deps.tracer ?? noopTracer;

  const framesTotal = metrics.counter({
    name: 'message_relay_frames_total',
    help: 'Frames appended to a replay log and published to the user channel, by frame type',
    labelNames: ['type'] as const,
  });
  const dlqTotal = metrics.counter({
    name: 'message_relay_dlq_total',
    help: 'Records sent to the dead-letter topic, by reason',
    labelNames: ['reason'] as const,
  });
  const duplicatesTotal = metrics.counter({
    name: 'message_relay_duplicates_skipped_total',
    help: 'Redelivered events skipped by the relay append (already in the replay log), by frame type',
    labelNames: ['type'] as const,
  });
  startAtZero(dlqTotal, 'reason', ['invalid_event', 'redis_rejected', 'internal_error']);
  const noSubscriberTotal = metrics.counter({
    name: 'message_relay_no_subscriber_total',
    help: 'Frames published while no gateway held the user (kept in the replay log for resume)',
  });
  const redisErrorsTotal = metrics.counter({
    name: 'message_relay_redis_errors_total',
    help: 'Failed Redis commands, by operation (connection failures are retried, refusals are not)',
    labelNames: ['op'] as const,
  });
  startAtZero(redisErrorsTotal, 'op', ['append', 'publish']);
  const upstreamUp = metrics.gauge({
    name: 'message_relay_upstream_up',
    help: 'Whether Kafka and Redis answer (1) or not (0), as /ready sees them (as of the last scrape)',
    labelNames: ['upstream'] as const,
  });
  const replayLogLength = metrics.histogram({
    name: 'message_relay_replay_log_length',
    help: "Entries in the user's replay log after an append (capped at REPLAY_MAX_EVENTS): how much a resume can replay",
    buckets: SIZE_BUCKETS,
  });
  const queuedTotal = metrics.counter({
    name: 'message_relay_queued_frames_total',
    help: 'Queue-position hints (not logged, published once), by outcome: published, no_subscriber, failed',
    labelNames: ['outcome'] as const,
  });
  startAtZero(queuedTotal, 'outcome', ['published', 'no_subscriber', 'failed']);
  const latency = metrics.histogram({
    name: 'message_relay_latency_seconds',
    help: 'From the response record entering Kafka to its frame being published on Redis',
  });

  const guard = createGuard({ logger, metrics, handlers: ['response'] });
  // Aborts backoff pauses on close, so a relay waiting for Redis does not hold up shutdown.
  const closing = new AbortController();
  let subscription: Subscription | undefined;
  /** The last command's outcome: failing while `untilDone` retries a connection failure. */
  let redisCommands: DependencyCheck = OK;
  const redisWatch = createDependencyWatch({ check: () => store.ping() });

  /**
   * Runs a Redis command until it succeeds. Connection failures (Redis restarting) are retried with
   * capped, jittered backoff: the message stays in hand and uncommitted, and later messages of the
   * partition wait behind it, which keeps per-user order. A reply error is not retried.
   */
  async function untilDone<T>(op: string, log: () => Logger, command: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await command();
        redisCommands = OK;
        return result;
      } catch (err) {
        redisErrorsTotal.inc({ op });
        if (isRedisReply(err)) throw err;
        redisCommands = failing(`${op} failing: ${errorReason(err)}`);
        if (closing.signal.aborted) throw new RelayClosingError(err);
        log().warn({ err, op, attempt }, 'redis command failed; retrying');
        const pause = Math.min(retry.maxMs, retry.baseMs * 2 ** Math.min(attempt, 16));
        try {
          await sleep(pause * (0.5 + Math.random() / 2), undefined, { signal: closing.signal });
        } catch {
          throw new RelayClosingError(err);
        }
      }
    }
  }

  async function deadLetter(message: BusMessage, code: string, reason: string, log: Logger): Promise<void> {
    const record = dlqRecord(message, { code, message: reason }, new Date());
    // Same key as the original so the DLQ keeps one user's records together; headers keep the trace.
    // Must reach Kafka before the bad record is committed: wait out a broker restart.
    await publishWithRetry(
      bus,
      topics.responsesDlq,
      [{ key: message.key ?? '', value: JSON.stringify(record), headers: message.headers }],
      { logger: log, stopped: () => closing.signal.aborted },
    );
    dlqTotal.inc({ reason: code });
    log.warn(
      { topic: message.topic, partition: message.partition, offset: message.offset, code, reason },
      'response record sent to the DLQ',
    );
  }

  /**
   * Which events get spans: every final, error and reset, and the first delta of a request. Its
   * other deltas ride on that one's trace path unrecorded: a request streams tens to hundreds of
   * them, each would add three spans here and one on the gateway, and the first one already shows
   * the time to first delta and where it went. The check costs nothing when tracing is off.
   */
  function traced(event: ResponseEvent): boolean {
    return tracer.enabled && (event.type !== 'delta' || event.seq === 0);
  }

  /**
   * `work` in a child span of `parent` when the event is traced, else `work` itself. These helpers
   * keep the span handling out of `relay`: every local of an async function is saved in each of
   * its suspended frames, i.e. costs bytes on every frame relayed, traced or not.
   */
  function traceStep<T>(parent: Span | undefined, name: string, work: Promise<T>): Promise<T> {
    return parent ? endsWith(redisSpan(parent, name, 'client'), work) : work;
  }
  function endWith<T>(span: Span | undefined, work: Promise<T>): Promise<T> {
    return span ? endsWith(span, work) : work;
  }
  function describe(span: Span, appended: AppendResult, receivers: number): void {
    span.setAttribute('relay.duplicate', appended.duplicate ? 'newest' : 'no');
    span.setAttribute('relay.event_id', appended.eventId);
    span.setAttribute('relay.receivers', receivers);
  }

  /** A child span of the event's processing, for one Redis command. */
  function redisSpan(parent: Span, name: string, kind: 'client' | 'producer'): Span {
    const span = tracer.startSpan(name, kind, parent);
    span.setAttribute('db.system.name', 'redis');
    return span;
  }

  /**
   * Not async, so an untraced frame costs what it did before tracing existed: no extra promise,
   * no closure, no span.
   */
  function handle(message: BusMessage): Promise<void> {
    const parsed = parseEvent(responseEventSchema, message.value);
    if (!parsed.ok) {
      const correlationId = message.headers[HEADERS.correlationId];
      const log = withContext(logger, { correlation_id: correlationId, userid: message.key ?? undefined });
      return deadLetter(message, 'invalid_event', parsed.error, log);
    }
    const event = parsed.event;
    if (event.type === 'queued') return relayQueued(event);
    return traced(event) ? relayTraced(message, event) : relay(message, event, undefined);
  }

  /**
   * A queue position is a hint about the present (docs/delivery.md): published once, without an
   * `event_id`, and never appended. In the log it would be replayed stale after a reconnect, take
   * room from answers under `REPLAY_MAX_EVENTS`, and need a dedupe rule of its own. So no retry
   * either: a lost hint is followed by the next one, or by the deltas, and a retry would hold up the
   * partition's answers for a frame that is worth nothing by then.
   */
  async function relayQueued(event: QueuedEvent): Promise<void> {
    const payload = serializeFrame(frameFromEvent(event));
    try {
      const receivers = await pubsub.publish(REDIS_KEYS.userChannel(event.userid), payload);
      queuedTotal.inc({ outcome: receivers > 0 ? 'published' : 'no_subscriber' });
    } catch (err) {
      queuedTotal.inc({ outcome: 'failed' });
      redisErrorsTotal.inc({ op: 'publish' });
      if (logger.isLevelEnabled('debug')) {
        logger.debug({ err, request_id: event.request_id, userid: event.userid }, 'queue hint not published');
      }
    }
  }

  async function relayTraced(message: BusMessage, event: LoggedEvent): Promise<void> {
    const span = tracer.startSpan(`${message.topic} process`, 'consumer', tracer.extract(message.headers));
    span.setAttribute('messaging.system', 'kafka');
    span.setAttribute('messaging.destination.name', message.topic);
    span.setAttribute('messaging.operation.type', 'process');
    span.setAttribute('messaging.destination.partition.id', String(message.partition));
    span.setAttribute('messaging.kafka.offset', Number(message.offset));
    span.setAttribute('relay.request_id', event.request_id);
    span.setAttribute('relay.event_type', event.type);
    try {
      await tracer.withSpan(span, () => relay(message, event, span));
    } catch (err) {
      span.fail(err);
      throw err;
    } finally {
      span.end();
    }
  }

  /** Append to the replay log, then publish; `span` is the event's when it is traced. */
  async function relay(message: BusMessage, event: LoggedEvent, span: Span | undefined): Promise<void> {
    const correlationId = message.headers[HEADERS.correlationId];
    // Built only when something is logged: a pino child per frame is a measurable share of the
    // relay's CPU at tens of thousands of frames a second, and the hot path logs nothing.
    let context: Logger | undefined;
    const log = () =>
      (context ??= withContext(logger, {
        correlation_id: correlationId,
        request_id: event.request_id,
        userid: event.userid,
      }));
    const frame = frameFromEvent(event);
    // Serialised once: stored in the log as is, published with its event_id attached.
    const serialized = serializeFrame(frame);

    let appended: AppendResult | null;
    try {
      appended = await traceStep(
        span,
        'replay append',
        untilDone('append', log, () =>
          store.appendFrame({
            stream: REDIS_KEYS.replayLog(event.userid),
            state: REDIS_KEYS.relayed(event.userid, event.request_id),
            frame: serialized,
            maxLength: delivery.replayMaxEvents,
            ttlMs: delivery.replayTtlMs,
            stateTtlMs: delivery.dedupeTtlMs,
            ...appendKind(event),
          }),
        ),
      );
    } catch (err) {
      if (!isRedisReply(err)) throw err;
      // Retrying a refused command would stall the partition for every user on it.
      return deadLetter(message, 'redis_rejected', err instanceof Error ? err.message : String(err), log());
    }
    if (appended === null || appended.duplicate) duplicatesTotal.inc({ type: frame.type });
    if (appended === null) {
      span?.setAttribute('relay.duplicate', 'older');
      // An older redelivery: it was appended and published long ago. Commit, publish nothing.
      if (logger.isLevelEnabled('debug')) log().debug({ type: frame.type }, 'duplicate event skipped');
      return;
    }
    // A duplicate of the newest frame is published again: a crash may have come between its append
    // and its publish. Gateways drop an event_id they already delivered.
    const { eventId } = appended;
    if (!appended.duplicate) replayLogLength.observe(appended.length);
    const frameBytes = attachEventId(appended.duplicate ? appended.frame : serialized, eventId);
    // Pub/sub has no headers: a traced frame carries the publish's context in front of it, and the
    // gateway cuts it off before any socket sees the frame (contract/channel-payload.ts). Declared
    // out here, as before tracing: a block-scoped variable a closure captures costs an allocation.
    const publishing = span && redisSpan(span, 'user channel publish', 'producer');
    const payload = publishing ? withTraceContext(frameBytes, carrierOf(publishing)) : frameBytes;

    let receivers: number;
    try {
      receivers = await endWith(
        publishing,
        untilDone('publish', log, () => pubsub.publish(REDIS_KEYS.userChannel(event.userid), payload)),
      );
    } catch (err) {
      if (!isRedisReply(err)) throw err;
      // The frame is in the replay log, so a reconnecting client still gets it.
      log().error({ err, event_id: eventId }, 'publish refused by redis; frame kept for resume only');
      receivers = 0;
    }

    // A republished copy is counted once, as a duplicate, not as a relayed frame.
    if (!appended.duplicate) framesTotal.inc({ type: frame.type });
    if (receivers === 0) noSubscriberTotal.inc();
    if (span) describe(span, appended, receivers);
    if (Number.isFinite(message.timestamp) && message.timestamp > 0) {
      latency.observe(Math.max(0, Date.now() - message.timestamp) / 1000);
    }
    if (logger.isLevelEnabled('debug')) {
      log().debug({ event_id: eventId, type: frame.type, receivers }, 'frame relayed');
    }
  }

  /**
   * `handle` inside the guard: it throws only while closing (the record stays uncommitted and is
   * redelivered). Anything else is a bug met on this one record: it goes to the DLQ with the error
   * and the relay goes on with everyone else's frames, instead of exiting and meeting it again.
   */
  async function handleGuarded(message: BusMessage): Promise<void> {
    try {
      await handle(message);
    } catch (err) {
      if (closing.signal.aborted || err instanceof RelayClosingError) throw err;
      guard.fail('response', err, undefined, () => ({
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
      }));
      await deadLetter(message, 'internal_error', err instanceof Error ? err.message : 'unknown', logger);
    }
  }

  return {
    async start() {
      await redisWatch.start();
      const partitions = config.kafka.partitions;
      await bus.ensureTopics([
        { topic: topics.responses, partitions },
        { topic: topics.responsesDlq, partitions },
      ]);
      subscription = await bus.subscribe({
        groupId: settings.groupId,
        topics: [topics.responses],
        // A brand-new group must not skip responses produced before it first joined (first deploy,
        // or the relay starting after the ai-consumer): start from the oldest retained record.
        fromBeginning: true,
        // Per-user order is all the append needs (a request's events come from one user), so users
        // on the same partition do not wait for each other.
        concurrency: settings.concurrency,
        ordering: 'key',
        handler: handleGuarded,
      });
      exportConsumerLag({ metrics, bus, logger, groupId: settings.groupId, topics: [topics.responses] });
      logger.info({ topic: topics.responses, group: settings.groupId }, 'relay subscribed');
    },
    close: once(async () => {
      closing.abort();
      redisWatch.close();
      await subscription?.close();
    }),
    ready() {
      const kafka = bus.health();
      const redis = redisCommands.ok ? redisWatch.current : redisCommands;
      upstreamUp.set({ upstream: 'kafka' }, kafka.ok ? 1 : 0);
      upstreamUp.set({ upstream: 'redis' }, redis.ok ? 1 : 0);
      return readinessOf({
        kafka,
        subscription: subscription?.ready
          ? OK
          : failing(subscription ? 'consumer not in its group' : 'not subscribed yet'),
        redis,
      });
    },
  };
}
