import type { EachBatchPayload, IHeaders, Kafka, KafkaMessage, RetryOptions } from 'kafkajs';
import type { Logger } from 'pino';
import type { BusMessage, FatalHandler, SubscribeOptions, Subscription } from './bus.js';
import { createCommitCoalescer } from './commit-coalescer.js';
import { drainAndCommit } from './kafka-common.js';
import { createLaneScheduler } from './lane-scheduler.js';
import { createOffsetWatermarks, type WatermarkTicket } from './offset-watermarks.js';
import { laneKey, resolveConsumption, slotKey } from './subscribe-options.js';
import { once } from '../lifecycle/once.js';

export interface KafkaSubscriptionDeps {
  kafka: Kafka;
  logger: Logger;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** kafkajs retry for the consumer (fetch, join, commit); exhausting it crashes and restarts it. */
  retry?: RetryOptions;
  /** The subscription cannot continue (handler bug, non-retriable crash). */
  onFatal: FatalHandler;
}

export interface KafkaSubscription extends Subscription {
  readonly failed: boolean;
}

/** How often a waiting batch walk re-checks whether the consumer still runs (and heartbeats). */
const POLL_MS = 100;

function headersToStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const [k, v] of Object.entries(headers)) {
    const first = Array.isArray(v) ? v[0] : v;
    if (first !== undefined) out[k] = first.toString();
  }
  return out;
}

function toBusMessage(topic: string, partition: number, message: KafkaMessage): BusMessage {
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key ? message.key.toString() : null,
    value: message.value ? message.value.toString() : '',
    headers: headersToStrings(message.headers),
    timestamp: Number(message.timestamp),
  };
}

/**
 * Least time between two offset commits of a partition. Watermarks still commit only what every
 * handler finished; the interval just turns hundreds of OffsetCommit requests a second under load
 * into ten per partition, at the price of redelivering up to that much after a crash (the relay's
 * append and the consumer's request state dedupe redeliveries).
 */
const COMMIT_INTERVAL_MS = 100;

/**
 * One consumer-group member on kafkajs `eachBatch`, with manual commits of per-partition
 * watermarks (see offset-watermarks.ts).
 *
 * The batch walk hands each message to a lane scheduler (bounded concurrency, ordered lanes) and
 * resolves its offset, which in kafkajs only moves the fetch position (autoCommit is off). The
 * walk returns once every message is handed over, so the next fetch overlaps long handlers; it
 * blocks only while the scheduler is full, heartbeating meanwhile. Commits come from handler
 * completions, coalesced per partition, and only for partitions this member is assigned.
 */
export async function startKafkaSubscription(
  deps: KafkaSubscriptionDeps,
  sub: SubscribeOptions,
): Promise<KafkaSubscription> {
  const consumption = resolveConsumption(sub);
  const log = deps.logger.child({ group: sub.groupId });
  const consumer = deps.kafka.consumer({
    groupId: sub.groupId,
    sessionTimeout: deps.sessionTimeoutMs,
    heartbeatInterval: deps.heartbeatIntervalMs,
    allowAutoTopicCreation: true,
    // A fetch still returns as soon as a record arrives; the cap only bounds how long an idle
    // consumer's disconnect waits for its long poll (kafkajs' default 5 s slowed every shutdown).
    maxWaitTimeInMs: 1000,
    ...(deps.retry ? { retry: deps.retry } : {}),
  });

  let joined = false;
  let failed = false;
  let closing = false;
  let memberId: string | undefined;
  /** Slots of the current assignment, from the last GROUP_JOIN. */
  let assigned = new Set<string>();
  const partitions = new Map<string, { topic: string; partition: number }>();
  const watermarks = createOffsetWatermarks();

  const sleepers = new Set<() => void>();
  const wake = () => {
    for (const resolve of sleepers) resolve();
    sleepers.clear();
  };
  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        sleepers.delete(done);
        resolve();
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      sleepers.add(done);
    });

  const observer = sub.onWaitingChange;
  const scheduler = createLaneScheduler<BusMessage>({
    concurrency: consumption.concurrency,
    maxQueued: consumption.maxQueued,
    onTaskError: (err) => fail(err),
    onChange: wake,
    ...(observer ? { onWaitingChange: () => observer(() => scheduler.waiting()) } : {}),
  });

  const committer = createCommitCoalescer({
    minIntervalMs: COMMIT_INTERVAL_MS,
    commit: async (slot, offset) => {
      // Revoked since: the new owner commits. (A commit racing the revocation is harmless: it only
      // covers messages this member finished, so at worst it causes redeliveries.)
      const tp = partitions.get(slot);
      if (!tp || !assigned.has(slot)) return;
      await consumer.commitOffsets([{ ...tp, offset: offset.toString() }]);
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

  function fail(err: unknown, message?: BusMessage): void {
    if (failed) return;
    failed = true;
    scheduler.stop();
    wake();
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

  /**
   * Waits while `blocked()` holds, heartbeating so the group keeps this member. False when the
   * batch must be abandoned: the runner is stopping, or the heartbeat failed (usually a rebalance,
   * which kafkajs handles once the batch returns).
   */
  async function waitWhile(blocked: () => boolean, payload: EachBatchPayload): Promise<boolean> {
    while (blocked()) {
      if (!payload.isRunning() || payload.isStale()) return false;
      await nap(POLL_MS);
      try {
        await payload.heartbeat();
      } catch (err) {
        log.debug({ err }, 'heartbeat failed while waiting; leaving the batch to kafkajs');
        return false;
      }
    }
    return true;
  }

  const holding = () => failed || closing;

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const next = new Set<string>();
    for (const [topic, parts] of Object.entries(payload.memberAssignment)) {
      for (const partition of parts) {
        const slot = slotKey(topic, partition);
        partitions.set(slot, { topic, partition });
        next.add(slot);
      }
    }
    // A new member id means this process left the group in between (crash, session timeout):
    // others may have owned these partitions meanwhile, so no earlier tracking is trusted.
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
    log.debug({ assignment: payload.memberAssignment }, 'kafka consumer joined its group');
  });
  consumer.on(consumer.events.REBALANCING, () => (joined = false));
  consumer.on(consumer.events.CRASH, (event) => {
    joined = false;
    // kafkajs disconnected the consumer (it left the group): everything it tracked belongs to the
    // next owner; handlers still running finish uncommitted.
    for (const slot of new Set([...assigned, ...watermarks.slots()])) revoke(slot);
    assigned = new Set();
    memberId = undefined;
    const { error, restart } = event.payload;
    if (restart) {
      log.warn({ err: error }, 'kafka consumer crashed; kafkajs restarts it and it rejoins its group');
      return;
    }
    if (closing) return;
    failed = true;
    scheduler.stop();
    log.error({ err: error }, 'kafka consumer crashed for good');
    deps.onFatal(error);
  });

  await consumer.connect();
  await consumer.subscribe({ topics: sub.topics, fromBeginning: sub.fromBeginning ?? false });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    // One walk at a time: the scheduler provides the concurrency, and a serial walk keeps lane
    // order equal to offset order.
    partitionsConsumedConcurrently: 1,
    eachBatch: async (payload) => {
      const { batch, resolveOffset } = payload;
      const slot = slotKey(batch.topic, batch.partition);
      for (const message of batch.messages) {
        if (holding()) break;
        const offset = BigInt(message.offset);
        const next = watermarks.nextOffset(slot);
        if (next !== undefined && offset < next) {
          // Taken before a rebalance that kept this partition: kafkajs refetches from the committed
          // watermark, but the message is already running or done here.
          resolveOffset(message.offset);
          continue;
        }
        if (!(await waitWhile(() => !scheduler.hasRoom() && !holding(), payload))) return;
        if (holding()) break;
        const ticket = watermarks.track(slot, offset);
        if (!ticket) continue;
        // Moves only the fetch position: nothing is committed before the handler finishes.
        resolveOffset(message.offset);
        const busMessage = toBusMessage(batch.topic, batch.partition, message);
        scheduler.submit({
          lane: laneKey(consumption.ordering, slot, busMessage.key),
          tag: slot,
          run: () => handle(busMessage, ticket),
          item: busMessage,
        });
      }
      // After a failure or during close, hold the batch (and so the fetch loop) without resolving
      // more, until close() stops the runner; returning would refetch the same records at once.
      if (holding()) await waitWhile(() => true, payload);
    },
  });

  return {
    get ready() {
      return joined && !failed && !closing;
    },
    get failed() {
      return failed;
    },
    close: once(async () => {
      closing = true;
      scheduler.stop();
      wake();
      try {
        consumer.pause(sub.topics.map((topic) => ({ topic })));
      } catch (err) {
        // Between a crash and its restart there is no consumer group to pause; nothing is fetched.
        log.debug({ err }, 'could not pause the consumer before closing');
      }
      await drainAndCommit({
        scheduler,
        assigned,
        watermarks,
        committer,
        drainTimeoutMs: consumption.drainTimeoutMs,
        log,
      });
      await consumer.disconnect();
    }),
  };
}
