import {
  ConnectionPool,
  Consumer,
  GenericError,
  IS_CONTROL,
  ListOffsetTimestamps,
  UserError,
  type BaseOptions,
  type ConsumerGroupJoinPayload,
  type KafkaRecord,
} from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { BusMessage, FatalHandler, SubscribeOptions, Subscription } from './bus.js';
import { createCommitCoalescer } from './commit-coalescer.js';
import { drainAndCommit } from './kafka-common.js';
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

type RawConsumer = Consumer;
type FetchOptions = Parameters<RawConsumer['fetch']>[0];
type FetchRequestTopic = FetchOptions['topics'][number];
type FetchResponse = Awaited<ReturnType<RawConsumer['fetch']>>;

/** How often a waiting fetch loop re-checks the scheduler (it is also woken when a handler finishes). */
const POLL_MS = 100;
/** Same as the kafkajs adapter (kafka-subscription.ts): at most ten commits a second per partition. */
const COMMIT_INTERVAL_MS = 100;
/** First and largest wait before a failed consumer is built again. */
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 5000;
/** How long `subscribe` keeps trying its first join before it rejects. */
const INITIAL_JOIN_TIMEOUT_MS = 30_000;
/**
 * Fetch sizing for many small records: the broker answers as soon as one byte is there, with up to
 * 1 MiB per partition (kafkajs' default) and 10 MiB per fetch.
 */
const FETCH_MIN_BYTES = 1;
const FETCH_MAX_BYTES = 10 * 1024 * 1024;
const FETCH_MAX_BYTES_PER_PARTITION = 1024 * 1024;

/** platformatic errors nest the broker's answer (a ResponseError holds ProtocolErrors); findBy walks them. */
export function hasApiError(err: unknown, apiId: string): boolean {
  if (!(err instanceof Error) || !GenericError.isGenericError(err)) return false;
  return (err as GenericError).findBy('apiId', apiId) !== null;
}

function toBusMessage(
  topic: string,
  partition: number,
  offset: bigint,
  timestamp: bigint,
  record: KafkaRecord,
): BusMessage {
  const headers: Record<string, string> = {};
  for (const [k, v] of record.headers) {
    // The first of repeated keys, as the kafkajs adapter keeps.
    if (k !== null && v !== null) headers[k.toString()] ??= v.toString();
  }
  return {
    topic,
    partition,
    offset: offset.toString(),
    key: record.key ? record.key.toString() : null,
    value: record.value ? record.value.toString() : '',
    headers,
    timestamp: Number(timestamp + record.timestampDelta),
  };
}

/**
 * One platformatic `Consumer` (group membership, heartbeats, commits) and the connections its
 * fetches use. A subscription replaces the whole incarnation when it fails (as kafkajs restarts a
 * crashed consumer): nothing an old one fetches afterwards is taken.
 */
interface Incarnation {
  consumer: RawConsumer;
  /** Fetches long-poll, so they get connections of their own: heartbeats and commits never wait behind one. */
  pool: ConnectionPool;
  /** Bumped per group join: a fetch loop of an older assignment stops at its next step. */
  epoch: number;
}

/**
 * One consumer-group member on @platformatic/kafka with manual commits of per-partition watermarks,
 * the same bookkeeping as the kafkajs adapter (offset-watermarks, lane-scheduler, commit-coalescer).
 *
 * The Consumer does the group protocol (join, sync, heartbeats, rejoin on rebalance, commits); the
 * records come from its low-level `fetch` in a loop of our own, one per group join, which decodes
 * them straight into BusMessages. (Its `MessagesStream` builds a message object per record, with
 * a diagnostics context, two object spreads, a header Map and a bound commit; on many small
 * records it cost 1.7× kafkajs' consumer CPU. It also does not stop a fetch in flight at a
 * rebalance, and every resume() starts a fetch whatever its buffer holds.) The loop:
 * - starts each join from the committed offsets of the new assignment (or the fallback), and on a
 *   partition this member kept from where handling stands, skipping what is running or done;
 * - fetches only while the scheduler has room, and feeds a fetched batch in as room appears;
 * - stops between the rebalance notice and the join (kafkajs stops its batch there too);
 * - on a fetch that exhausts its retries, or a heartbeat that fails for a reason other than a
 *   rebalance (in 1.x that stops the heartbeats for good), does what kafkajs does on a consumer
 *   crash: everything tracked is given up (handlers still running finish uncommitted), and a new
 *   Consumer rejoins the group after a backoff, until it succeeds.
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

  const observer = sub.onWaitingChange;
  const scheduler = createLaneScheduler<BusMessage>({
    concurrency: consumption.concurrency,
    maxQueued: consumption.maxQueued,
    onTaskError: (err) => fail(err),
    onChange: () => wakeAll(),
    ...(observer ? { onWaitingChange: () => observer(() => scheduler.waiting()) } : {}),
  });

  /** Fetch loops waiting for room in the scheduler, a join, or a stop. */
  let sleepers: Array<() => void> = [];
  function wakeAll(): void {
    const woken = sleepers;
    sleepers = [];
    for (const resolve of woken) resolve();
  }
  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      sleepers.push(done);
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
    wakeAll();
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
  function take(slot: string, message: BusMessage, ticket: WatermarkTicket): void {
    scheduler.submit({
      lane: laneKey(consumption.ordering, slot, message.key),
      tag: slot,
      run: () => handle(message, ticket),
      item: message,
    });
  }

  /**
   * Tracks a fetched offset, unless its partition is not ours (any more) or it was taken already (a
   * kept partition refetched from the committed watermark: running or done here).
   */
  function track(slot: string, offset: bigint): WatermarkTicket | undefined {
    if (!assigned.has(slot)) return undefined;
    const next = watermarks.nextOffset(slot);
    if (next !== undefined && offset < next) return undefined;
    return watermarks.track(slot, offset);
  }

  const groupOptions = () => ({
    sessionTimeout: deps.sessionTimeoutMs,
    heartbeatInterval: deps.heartbeatIntervalMs,
    rebalanceTimeout: Math.max(60_000, deps.sessionTimeoutMs),
  });

  /** Where each assigned partition starts: committed offset, else the oldest or newest record. */
  async function startOffsets(inc: Incarnation, slots: string[]): Promise<Map<string, bigint>> {
    const byTopic = new Map<string, number[]>();
    for (const slot of slots) {
      const tp = partitions.get(slot);
      if (tp) byTopic.set(tp.topic, [...(byTopic.get(tp.topic) ?? []), tp.partition]);
    }
    const topics = [...byTopic].map(([topic, parts]) => ({ topic, partitions: parts }));
    const out = new Map<string, bigint>();
    if (topics.length === 0) return out;
    const committed = await inc.consumer.listCommittedOffsets({ topics });
    const missing: string[] = [];
    for (const slot of slots) {
      const tp = partitions.get(slot) as { topic: string; partition: number };
      const offset = committed.get(tp.topic)?.[tp.partition];
      if (offset !== undefined && offset >= 0n) out.set(slot, offset);
      else missing.push(slot);
    }
    if (missing.length > 0) {
      const ends = await inc.consumer.listOffsets({
        topics: [...new Set(missing.map((slot) => partitions.get(slot)?.topic as string))],
        timestamp: sub.fromBeginning ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
      });
      for (const slot of missing) {
        const tp = partitions.get(slot) as { topic: string; partition: number };
        out.set(slot, ends.get(tp.topic)?.[tp.partition] ?? 0n);
      }
    }
    return out;
  }

  /** True while the loop of this join may go on. */
  const live = (inc: Incarnation, epoch: number) => inc === current && inc.epoch === epoch && !holding();

  /** Fetches the assignment of one join until the next join, a failure or close. */
  async function fetchLoop(inc: Incarnation, epoch: number, slots: string[]): Promise<void> {
    const fromCommitted = await startOffsets(
      inc,
      slots.filter((slot) => watermarks.nextOffset(slot) === undefined),
    );
    // A kept partition goes on where handling stands; the rest from the committed offsets.
    const position = new Map<string, bigint>();
    for (const slot of slots) {
      const at = watermarks.nextOffset(slot) ?? fromCommitted.get(slot);
      if (at !== undefined) position.set(slot, at);
    }
    while (live(inc, epoch)) {
      if (rebalancing || !scheduler.hasRoom()) {
        await nap(POLL_MS);
        continue;
      }
      const metadata = await inc.consumer.metadata({ topics: sub.topics });
      if (!live(inc, epoch)) return;
      const requests = new Map<number, FetchRequestTopic[]>();
      const names = new Map<string, string>();
      for (const [slot, fetchOffset] of position) {
        const tp = partitions.get(slot) as { topic: string; partition: number };
        const topic = metadata.topics.get(tp.topic);
        const leader = topic?.partitions[tp.partition]?.leader;
        if (!topic || leader === undefined || leader < 0) continue;
        names.set(topic.id, tp.topic);
        const list = requests.get(leader) ?? [];
        requests.set(leader, list);
        list.push({
          topicId: topic.id,
          partitions: [
            {
              partition: tp.partition,
              fetchOffset,
              partitionMaxBytes: FETCH_MAX_BYTES_PER_PARTITION,
              currentLeaderEpoch: -1,
              lastFetchedEpoch: -1,
            },
          ],
        });
      }
      if (requests.size === 0) {
        await nap(POLL_MS);
        continue;
      }
      // A fetch returns whole record batches: the first may start below the offset asked for.
      const requested = new Map(position);
      let responses: FetchResponse[];
      try {
        responses = await Promise.all(
          [...requests].map(([node, topics]) =>
            inc.consumer.fetch({
              node,
              topics,
              minBytes: FETCH_MIN_BYTES,
              maxBytes: FETCH_MAX_BYTES,
              maxWaitTime: deps.maxWaitTimeMs,
              connectionPool: inc.pool,
            }),
          ),
        );
      } catch (err) {
        // A position the log no longer has (retention passed it) or does not have yet: move it into
        // the log, as kafkajs does (the oldest record for a fromBeginning group, else the newest).
        if (!hasApiError(err, 'OFFSET_OUT_OF_RANGE')) throw err;
        await clampPositions(inc, position);
        continue;
      }
      for (const response of responses) {
        if (!(await feed(inc, epoch, response, names, position, requested))) return;
      }
    }
  }

  async function clampPositions(inc: Incarnation, position: Map<string, bigint>): Promise<void> {
    const topics = [...new Set([...position.keys()].map((slot) => partitions.get(slot)?.topic as string))];
    const [earliest, latest] = await Promise.all([
      inc.consumer.listOffsets({ topics, timestamp: ListOffsetTimestamps.EARLIEST }),
      inc.consumer.listOffsets({ topics, timestamp: ListOffsetTimestamps.LATEST }),
    ]);
    for (const [slot, at] of position) {
      const tp = partitions.get(slot) as { topic: string; partition: number };
      const low = earliest.get(tp.topic)?.[tp.partition];
      const high = latest.get(tp.topic)?.[tp.partition];
      if (low === undefined || high === undefined || (at >= low && at <= high)) continue;
      const to = sub.fromBeginning ? low : high;
      log.warn({ slot, from: at.toString(), to: to.toString() }, 'fetch position out of the log; moved');
      // Moved below what was tracked (the topic was recreated): that tracking means nothing now.
      if (to < (watermarks.nextOffset(slot) ?? to)) revoke(slot);
      position.set(slot, to);
    }
  }

  /** Hands a fetched response to the scheduler as room appears; false once the loop must stop. */
  async function feed(
    inc: Incarnation,
    epoch: number,
    response: FetchResponse,
    names: Map<string, string>,
    position: Map<string, bigint>,
    requested: Map<string, bigint>,
  ): Promise<boolean> {
    for (const topicResponse of response.responses) {
      const topic = names.get(topicResponse.topicId);
      if (topic === undefined) continue;
      for (const { partitionIndex: partition, records: batches } of topicResponse.partitions) {
        const slot = slotKey(topic, partition);
        const from = requested.get(slot) ?? 0n;
        for (const batch of batches ?? []) {
          if (!(batch.attributes & IS_CONTROL)) {
            for (const record of batch.records) {
              while (!scheduler.hasRoom() || rebalancing) {
                if (!live(inc, epoch)) return false;
                await nap(POLL_MS);
              }
              if (!live(inc, epoch)) return false;
              const offset = batch.firstOffset + BigInt(record.offsetDelta);
              if (offset < from) continue;
              const ticket = track(slot, offset);
              if (ticket)
                take(slot, toBusMessage(topic, partition, offset, batch.firstTimestamp, record), ticket);
            }
          }
          // Past the batch, control batches (transaction markers) included.
          position.set(slot, batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n);
        }
      }
    }
    return live(inc, epoch);
  }

  function runFetchLoop(inc: Incarnation, slots: string[]): void {
    const epoch = ++inc.epoch;
    wakeAll();
    fetchLoop(inc, epoch, slots).catch((err: unknown) => {
      if (live(inc, epoch)) crash(inc, err);
      else log.debug({ err }, 'a superseded fetch loop failed');
    });
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
    runFetchLoop(inc, [...assigned]);
  }

  /**
   * Closes an incarnation: its fetch loop, its fetch connections and its consumer (leaving the
   * group), the consumer retried while the broker is away.
   */
  function retire(inc: Incarnation): Promise<void> {
    const done = (async () => {
      inc.epoch++;
      wakeAll();
      // The fetch loop stops at its next step; a fetch in flight on these connections just fails.
      await inc.pool.close().catch(() => undefined);
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
    const consumer: RawConsumer = new Consumer({
      ...deps.client,
      groupId: sub.groupId,
      autocommit: false,
      // Topics the bus subscribes to exist (ensureTopics) or are created as kafkajs would.
      autocreateTopics: true,
      ...groupOptions(),
    });
    const inc: Incarnation = {
      consumer,
      pool: new ConnectionPool(deps.client.clientId, deps.client),
      epoch: 0,
    };
    consumer.on('consumer:group:join', (payload) => onJoin(inc, payload));
    consumer.on('consumer:group:rebalance', () => {
      if (inc !== current) return;
      // Stop taking messages until the join tells which partitions are still ours.
      rebalancing = true;
      joined = false;
    });
    consumer.on('consumer:heartbeat:error', ({ error }) => crash(inc, error));
    // A rejoin that exhausted its retries.
    consumer.on('error', (err) => crash(inc, err));
    current = inc;
    try {
      // The group subscription lists the consumer's tracked topics.
      consumer.topics.trackAll(...sub.topics);
      await consumer.joinGroup(groupOptions());
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
      return joined && !rebalancing && !failed && !closing && current !== undefined;
    },
    get failed() {
      return failed;
    },
    close: once(async () => {
      closing = true;
      clearTimeout(restartTimer);
      scheduler.stop();
      const inc = current;
      if (inc) inc.epoch++;
      wakeAll();
      await drainAndCommit({
        scheduler,
        assigned,
        watermarks,
        committer,
        drainTimeoutMs: consumption.drainTimeoutMs,
        log,
      });
      current = undefined;
      if (inc) void retire(inc);
      await Promise.allSettled([...retiring]);
    }),
  };
}
