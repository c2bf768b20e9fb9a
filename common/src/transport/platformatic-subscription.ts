import {
  Consumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  UserError,
  stringDeserializers,
  type BaseOptions,
  type ConsumerGroupJoinPayload,
  type Message,
  type MessagesStream,
} from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { BusMessage, FatalHandler, SubscribeOptions, Subscription } from './bus.js';
import { createCommitCoalescer } from './commit-coalescer.js';
import { createLaneScheduler } from './lane-scheduler.js';
import { createOffsetWatermarks, type WatermarkTicket } from './offset-watermarks.js';
import { laneKey, resolveConsumption, slotKey } from './subscribe-options.js';
import { once } from '../lifecycle/once.js';

/** Connection settings every platformatic client of one bus shares. */
export type PlatformaticClientOptions = Pick<
  BaseOptions,
  'clientId' | 'bootstrapBrokers' | 'connectTimeout' | 'retries' | 'retryDelay' | 'requestTimeout' | 'context'
>;

export interface PlatformaticSubscriptionDeps {
  client: PlatformaticClientOptions;
  logger: Logger;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  maxWaitTimeMs: number;
  /** The subscription cannot continue (handler bug, a consumer that cannot be built). */
  onFatal: FatalHandler;
}

export interface PlatformaticSubscription extends Subscription {
  readonly failed: boolean;
}

type StringMessage = Message<string, string, string, string>;
type StringConsumer = Consumer<string, string, string, string>;
type StringStream = MessagesStream<string, string, string, string>;

/** Same as the kafkajs adapter (kafka-subscription.ts): at most ten commits a second per partition. */
const COMMIT_INTERVAL_MS = 100;
/** First and largest wait before a failed consumer is built again. */
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 5000;
/** How long `subscribe` keeps trying its first join before it rejects. */
const INITIAL_JOIN_TIMEOUT_MS = 30_000;
/**
 * Fetch sizing for many small records: the broker answers as soon as one byte is there, with up to
 * 1 MiB per partition (kafkajs' default) and 10 MiB per fetch. The stream buffers at most this many
 * decoded messages beyond the scheduler's queue before it stops fetching.
 */
const FETCH_MIN_BYTES = 1;
const FETCH_MAX_BYTES = 10 * 1024 * 1024;
const FETCH_MAX_BYTES_PER_PARTITION = 1024 * 1024;
const STREAM_HIGH_WATER_MARK = 1024;

function toBusMessage(message: StringMessage): BusMessage {
  const headers: Record<string, string> = {};
  for (const [k, v] of message.headers) if (k !== undefined && v !== undefined) headers[k] = v;
  return {
    topic: message.topic,
    partition: message.partition,
    offset: message.offset.toString(),
    key: message.key ?? null,
    value: message.value ?? '',
    headers,
    timestamp: Number(message.timestamp),
  };
}

/**
 * One platformatic `Consumer` and the stream it is read through. A subscription replaces the whole
 * incarnation when it fails (as kafkajs restarts a crashed consumer): nothing an old one delivers
 * afterwards is taken.
 */
interface Incarnation {
  consumer: StringConsumer;
  /** The stream messages are taken from; undefined while a replacement is being opened. */
  stream: StringStream | undefined;
  /** Bumped per requested stream: a stream that arrives after a newer one was asked for is closed. */
  streamSeq: number;
  /** Streams of this incarnation that are not closed yet. */
  streams: Set<StringStream>;
}

/**
 * One consumer-group member on @platformatic/kafka with manual commits of per-partition watermarks,
 * the same bookkeeping as the kafkajs adapter (offset-watermarks, lane-scheduler, commit-coalescer).
 *
 * Messages are read off a `MessagesStream` (COMMITTED mode, autocommit off, pull mode) into the
 * lane scheduler while it has room; while it has none the stream's buffer fills and it stops
 * fetching. Where platformatic
 * differs from kafkajs, and what this does about it:
 * - A rebalance does not stop a fetch in flight, and the stream re-reads committed offsets while
 *   that fetch may still land. So each group join opens a new stream (from the committed offsets of
 *   the new assignment) and only the newest stream's messages are taken; records already running
 *   or done on a partition this member kept are skipped by offset, as with kafkajs.
 * - Between the rebalance notice and the join, intake pauses (kafkajs stops its batch there too).
 * - A fetch that exhausts its retries destroys the stream, and in 1.x a heartbeat that fails for a
 *   reason other than a rebalance stops the heartbeats for good. Either is treated as kafkajs
 *   treats a consumer crash: everything tracked is given up (handlers still running finish
 *   uncommitted), and a new Consumer rejoins the group after a backoff, until it succeeds.
 */
export async function startPlatformaticSubscription(
  deps: PlatformaticSubscriptionDeps,
  sub: SubscribeOptions,
): Promise<PlatformaticSubscription> {
  const consumption = resolveConsumption(sub);
  const log = deps.logger.child({ group: sub.groupId });
  const watermarks = createOffsetWatermarks();

  let current: Incarnation | undefined;
  let joined = false;
  let rebalancing = false;
  let failed = false;
  let closing = false;
  let memberId: string | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartAttempt = 0;
  /** Slots of the current assignment, from the last group join. */
  let assigned = new Set<string>();
  const partitions = new Map<string, { topic: string; partition: number }>();
  /** Incarnations being shut down in the background (a failed close is retried). */
  const retiring = new Set<Promise<void>>();

  const holding = () => failed || closing;

  const scheduler = createLaneScheduler({
    concurrency: consumption.concurrency,
    maxQueued: consumption.maxQueued,
    onTaskError: (err) => fail(err),
    onChange: () => pump(),
  });

  const committer = createCommitCoalescer({
    minIntervalMs: COMMIT_INTERVAL_MS,
    commit: async (slot, offset) => {
      // Revoked since, or the consumer is being replaced: the next owner commits. (A commit racing
      // a revocation only covers messages this member finished, so at worst it causes redeliveries.)
      const tp = partitions.get(slot);
      const consumer = current?.consumer;
      if (!tp || !consumer || !assigned.has(slot)) return;
      await consumer.commit({ offsets: [{ ...tp, offset, leaderEpoch: -1 }] });
    },
    onError: (err, slot, offset) =>
      // Retried with the next watermark, or after the rebalance that probably caused it.
      log.warn({ err, slot, offset: offset.toString() }, 'offset commit failed'),
  });

  function revoke(slot: string): void {
    scheduler.cancelQueued((tag) => tag === slot);
    watermarks.drop(slot);
    committer.drop(slot);
  }

  function revokeAll(): void {
    for (const slot of new Set([...assigned, ...watermarks.slots()])) revoke(slot);
    assigned = new Set();
    memberId = undefined;
  }

  function fail(err: unknown, message?: BusMessage): void {
    if (failed) return;
    failed = true;
    scheduler.stop();
    current?.stream?.pause();
    const error = err instanceof Error ? err : new Error(String(err));
    log.error(
      { err: error, topic: message?.topic, partition: message?.partition, offset: message?.offset },
      'message handler failed; not committing past it',
    );
    deps.onFatal(error);
  }

  async function handle(message: BusMessage, ticket: WatermarkTicket): Promise<void> {
    // Queued before a failure or close and not started: it stays unfinished, so it is redelivered.
    if (failed || closing) return;
    try {
      await sub.handler(message);
    } catch (err) {
      fail(err, message);
      return;
    }
    const watermark = watermarks.finish(ticket);
    if (watermark !== undefined) committer.request(ticket.slot, watermark);
  }

  /** Hands one message to the scheduler, unless it is not ours (any more) or already taken. */
  function take(message: StringMessage): void {
    const slot = slotKey(message.topic, message.partition);
    if (!assigned.has(slot)) return;
    const next = watermarks.nextOffset(slot);
    // A stream opened after a rebalance that kept this partition reads it again from the committed
    // watermark; those records are running or done here already.
    if (next !== undefined && message.offset < next) return;
    const ticket = watermarks.track(slot, message.offset);
    if (!ticket) return;
    const busMessage = toBusMessage(message);
    scheduler.submit({
      lane: laneKey(consumption.ordering, slot, busMessage.key),
      tag: slot,
      run: () => handle(busMessage, ticket),
    });
  }

  /**
   * Reads from the stream while the scheduler has room. The stream is read in pull mode, so its own
   * buffer is the backlog: once `highWaterMark` messages wait there it stops fetching, and reading
   * below that starts the next fetch. (pause()/resume() would not do: every resume of a
   * platformatic stream starts a fetch whatever its buffer holds.)
   */
  function pump(): void {
    if (holding() || rebalancing) return;
    const stream = current?.stream;
    if (!stream) return;
    while (scheduler.hasRoom()) {
      const message = stream.read() as StringMessage | null;
      if (message === null) return;
      take(message);
    }
  }

  function consumeOptions() {
    return {
      topics: sub.topics,
      mode: MessagesStreamModes.COMMITTED,
      fallbackMode: sub.fromBeginning
        ? MessagesStreamFallbackModes.EARLIEST
        : MessagesStreamFallbackModes.LATEST,
      autocommit: false,
      sessionTimeout: deps.sessionTimeoutMs,
      heartbeatInterval: deps.heartbeatIntervalMs,
      rebalanceTimeout: Math.max(60_000, deps.sessionTimeoutMs),
      minBytes: FETCH_MIN_BYTES,
      maxBytes: FETCH_MAX_BYTES,
      maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION,
      maxWaitTime: deps.maxWaitTimeMs,
      highWaterMark: STREAM_HIGH_WATER_MARK,
    };
  }

  function attach(inc: Incarnation, stream: StringStream): void {
    inc.streams.add(stream);
    stream.once('close', () => {
      inc.streams.delete(stream);
      if (inc.stream === stream && inc === current && !closing) {
        crash(inc, new Error('the message stream ended unexpectedly'));
      }
    });
    stream.on('error', (err) => {
      if (inc.stream === stream) crash(inc, err);
      else log.debug({ err }, 'a replaced message stream failed');
    });
    stream.on('readable', () => {
      if (inc === current && inc.stream === stream) pump();
    });
    inc.stream = stream;
    pump();
  }

  /** Opens a stream for the assignment just joined; the previous one is closed once it is there. */
  function replaceStream(inc: Incarnation): void {
    const previous = inc.stream;
    inc.stream = undefined;
    const seq = ++inc.streamSeq;
    inc.consumer.consume(consumeOptions()).then(
      (stream) => {
        // Opened before the old one closes, so the consumer still tracks the topics and does not
        // take the switch for a new subscription (which would rejoin the group).
        void previous
          ?.close()
          .catch((err: unknown) => log.debug({ err }, 'closing a replaced stream failed'));
        if (inc !== current || seq !== inc.streamSeq || closing) {
          void stream.close().catch(() => undefined);
          return;
        }
        attach(inc, stream);
      },
      (err: unknown) => {
        void previous?.close().catch(() => undefined);
        if (inc === current && seq === inc.streamSeq) crash(inc, err);
      },
    );
  }

  function onJoin(inc: Incarnation, payload: ConsumerGroupJoinPayload): void {
    if (inc !== current || closing) return;
    const next = new Set<string>();
    for (const { topic, partitions: parts } of payload.assignments ?? []) {
      for (const partition of parts) {
        const slot = slotKey(topic, partition);
        partitions.set(slot, { topic, partition });
        next.add(slot);
      }
    }
    // A new member id means this member left the group in between (session expired): others may
    // have owned these partitions meanwhile, so no earlier tracking is trusted.
    const sameMember = payload.memberId === memberId;
    for (const slot of new Set([...assigned, ...watermarks.slots()])) {
      if (!sameMember || !next.has(slot)) revoke(slot);
    }
    assigned = next;
    memberId = payload.memberId;
    // Commits sent during the rebalance were refused (old generation); send the kept ones again.
    for (const slot of assigned) {
      const watermark = watermarks.watermark(slot);
      if (watermark !== undefined) committer.request(slot, watermark);
    }
    joined = true;
    rebalancing = false;
    restartAttempt = 0;
    log.debug(
      { assignments: payload.assignments, generation: payload.generationId },
      'kafka consumer joined its group',
    );
    // The first join comes from consume() itself, which then hands over the first stream.
    if (inc.streamSeq > 0) replaceStream(inc);
  }

  /** Closes an incarnation's streams and consumer (leaving the group), retrying while the broker is away. */
  function retire(inc: Incarnation): Promise<void> {
    const done = (async () => {
      for (const stream of inc.streams) stream.pause();
      for (let attempt = 0; attempt < 30; attempt++) {
        // Closing the bus: one bounded try (the process is on its way out, a shutdown deadline runs).
        const final = closing;
        try {
          await Promise.race([
            inc.consumer.close(true),
            new Promise((_, reject) =>
              setTimeout(() => reject(new Error('consumer close timed out')), final ? 5000 : 10_000).unref(),
            ),
          ]);
          return;
        } catch (err) {
          // During an outage LeaveGroup cannot reach the coordinator and platformatic keeps the
          // consumer open; a close that gets through later leaves the group for good.
          log.debug({ err, attempt }, 'kafka consumer close failed; retrying');
          if (final || closing) return;
          await new Promise((resolve) => setTimeout(resolve, Math.min(RESTART_MAX_MS, 500 * 2 ** attempt)));
        }
      }
    })();
    retiring.add(done);
    void done.finally(() => retiring.delete(done));
    return done;
  }

  /** The consumer cannot go on: give up what it tracked and build a new one after a backoff. */
  function crash(inc: Incarnation, err: unknown): void {
    if (inc !== current || closing || failed) return;
    current = undefined;
    joined = false;
    rebalancing = false;
    // Everything tracked belongs to the next owner; handlers still running finish uncommitted.
    revokeAll();
    void retire(inc);
    if (err instanceof UserError) {
      // Refused options or a misuse: a new consumer would meet the same.
      failed = true;
      scheduler.stop();
      log.error({ err }, 'kafka consumer failed for good');
      deps.onFatal(err);
      return;
    }
    log.warn({ err }, 'kafka consumer failed; restarting it, and it rejoins its group');
    scheduleRestart();
  }

  function scheduleRestart(): void {
    if (closing || failed || restartTimer) return;
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** restartAttempt++);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      start().catch((err: unknown) => {
        log.debug({ err }, 'kafka consumer restart failed; trying again');
        scheduleRestart();
      });
    }, delay);
  }

  async function start(): Promise<void> {
    const consumer: StringConsumer = new Consumer({
      ...deps.client,
      groupId: sub.groupId,
      deserializers: stringDeserializers,
      // Topics the bus subscribes to exist (ensureTopics) or are created as kafkajs would.
      autocreateTopics: true,
      ...consumeOptions(),
    });
    const inc: Incarnation = { consumer, stream: undefined, streamSeq: 0, streams: new Set() };
    consumer.on('consumer:group:join', (payload) => onJoin(inc, payload));
    consumer.on('consumer:group:rebalance', () => {
      if (inc !== current) return;
      // Stop taking messages until the join tells which partitions are still ours.
      rebalancing = true;
      joined = false;
      pump();
    });
    consumer.on('consumer:heartbeat:error', ({ error }) => crash(inc, error));
    // A rejoin that exhausted its retries.
    consumer.on('error', (err) => crash(inc, err));
    current = inc;
    try {
      const stream = await consumer.consume(consumeOptions());
      if (inc !== current || closing) {
        await stream.close().catch(() => undefined);
        return;
      }
      inc.streamSeq = 1;
      attach(inc, stream);
    } catch (err) {
      if (inc === current) current = undefined;
      joined = false;
      void retire(inc);
      throw err;
    }
  }

  // The first join may meet a coordinator still loading (a new cluster creates __consumer_offsets
  // on the first group), beyond platformatic's few retries; kafkajs' longer retry rides it out.
  const deadline = Date.now() + INITIAL_JOIN_TIMEOUT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      await start();
      break;
    } catch (err) {
      if (err instanceof UserError || Date.now() > deadline) throw err;
      log.debug({ err, attempt }, 'kafka consumer could not join yet; retrying');
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** attempt)),
      );
    }
  }

  return {
    get ready() {
      return joined && !rebalancing && !failed && !closing && current?.stream !== undefined;
    },
    get failed() {
      return failed;
    },
    close: once(async () => {
      closing = true;
      clearTimeout(restartTimer);
      scheduler.stop();
      const inc = current;
      for (const stream of inc?.streams ?? []) stream.pause();
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        scheduler.idle().then(() => true),
        new Promise<boolean>(
          (resolve) => (timer = setTimeout(() => resolve(false), consumption.drainTimeoutMs)),
        ),
      ]);
      clearTimeout(timer);
      if (!drained) {
        log.warn(
          { running: scheduler.running, drainTimeoutMs: consumption.drainTimeoutMs },
          'handlers still running at the drain timeout are left uncommitted (redelivered)',
        );
      }
      for (const slot of assigned) {
        const watermark = watermarks.watermark(slot);
        if (watermark !== undefined) committer.request(slot, watermark);
      }
      // Bounded too: during an outage a commit retries for as long as its retries allow.
      const flushed = await Promise.race([
        committer.flush().then(() => true),
        new Promise<boolean>(
          (resolve) => (timer = setTimeout(() => resolve(false), consumption.drainTimeoutMs)),
        ),
      ]);
      clearTimeout(timer);
      if (!flushed) log.warn('final offset commits did not finish in time; their messages are redelivered');
      committer.stop();
      current = undefined;
      if (inc) void retire(inc);
      await Promise.allSettled([...retiring]);
    }),
  };
}
