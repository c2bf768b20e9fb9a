import {
  Admin,
  ListOffsetTimestamps,
  ProduceAcks,
  Producer,
  compatibilityPartitioner,
  stringSerializers,
  type MessageToProduce,
} from '@platformatic/kafka';
import type { Bus, BusRecord, PartitionLag, SubscribeOptions, Subscription, TopicSpec } from './bus.js';
import {
  awaitSend,
  kafkaBusHealth,
  createBrokerProbe,
  trackedSubscription,
  recordSize,
  withTimeout,
  type KafkaBusCommonOptions,
  type PublishState,
} from './kafka-common.js';
import { createProduceBatcher } from './produce-batcher.js';
import {
  hasApiError,
  startPlatformaticSubscription,
  type PlatformaticClientOptions,
  type PlatformaticSubscription,
} from './platformatic-subscription.js';
import { once } from '../lifecycle/once.js';

export interface PlatformaticBusOptions extends KafkaBusCommonOptions {
  /**
   * Retries of a consumer or admin operation (fetch, join, commit, metadata) before it fails; a
   * subscription whose consumer fails is restarted and rejoins its group (as kafkajs does).
   * @default 3
   */
  retries?: number;
  /** Wait between those retries. @default 250 */
  retryDelayMs?: number;
  /**
   * How long the broker holds a fetch that found nothing. A fetch returns as soon as a record
   * arrives; this only bounds idle polling and how long a closing stream waits for its last fetch.
   * @default 1000
   */
  maxWaitTimeMs?: number;
  /**
   * Opaque value on every connection this bus opens (platformatic's `context`); tests find this
   * bus' sockets by it on the `plt:kafka:connections:connects` diagnostics channel.
   */
  context?: unknown;
}

/**
 * The Bus on @platformatic/kafka, with the semantics of the kafkajs adapter (kafka-bus.ts).
 * Producer: acks from all in-sync replicas, the Java client's murmur2 partitioning (a key lands on
 * the partition kafkajs would pick), publishes of one turn in one request, bounded by
 * `publishTimeoutMs`. Consumers: see platformatic-subscription.ts.
 */
export function createPlatformaticBus(options: PlatformaticBusOptions): Bus {
  const { logger, onFatal } = options;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000;
  const connectTimeout = options.connectionTimeoutMs ?? 3000;
  const base = {
    clientId: options.clientId,
    bootstrapBrokers: options.brokers,
    connectTimeout,
    ...(options.context === undefined ? {} : { context: options.context }),
  };
  const clientOptions: PlatformaticClientOptions = {
    ...base,
    retries: options.retries ?? 3,
    retryDelay: options.retryDelayMs ?? 250,
    // A request the broker never answers (half-open socket) fails instead of hanging the stream.
    requestTimeout: Math.max(10_000, sessionTimeoutMs),
  };
  // Short backoffs that fit in publishTimeoutMs let a blip heal inside one publish; the timer in
  // publish() is the hard bound (the same budget kafka-bus.ts gives kafkajs).
  const maxRetryDelay = Math.max(100, Math.floor(publishTimeoutMs / 4));
  const producer = new Producer<string, string, string, string>({
    ...base,
    serializers: stringSerializers,
    acks: ProduceAcks.ALL,
    // kafkajs' DefaultPartitioner is the Java client's: murmur2 & 0x7fffffff. Both adapters put a
    // user on the same partition, so services on different clients keep per-user order.
    partitioner: compatibilityPartitioner,
    autocreateTopics: true,
    timeout: publishTimeoutMs,
    requestTimeout: publishTimeoutMs,
    retries: 5,
    retryDelay: (_client, _operation, attempt) => Math.min(maxRetryDelay, 100 * 2 ** (attempt - 1)),
  });
  const admin = new Admin({ ...clientOptions });
  // An unhandled 'error' event would end the process; the calls that failed reject on their own.
  producer.on('error', (err) => logger.warn({ err }, 'kafka producer error'));
  admin.on('error', (err) => logger.warn({ err }, 'kafka admin error'));
  const inFlight = new Set<Promise<unknown>>();
  const batcher = createProduceBatcher<MessageToProduce<string, string, string, string>>({
    lingerMs: options.lingerMs ?? 0,
    sizeOf: (m) => recordSize(m.key, m.value),
    send: async (batches) => {
      const messages =
        batches.length === 1 ? (batches[0]?.messages ?? []) : batches.flatMap((b) => b.messages);
      await producer.send({ messages });
    },
  });
  const subscriptions = new Set<PlatformaticSubscription>();
  let producerConnected = false;
  let crashed = false;
  let closed = false;
  /** The last publish failed and no probe or publish has succeeded since, and why. */
  const publish: PublishState = { failing: false, error: undefined };

  /** While publishing fails, polls the broker so readiness recovers without waiting for traffic. */
  const probe = createBrokerProbe({
    check: () => admin.metadata({ topics: [], forceUpdate: true }),
    timeoutMs: publishTimeoutMs,
    state: publish,
    logger,
    closed: () => closed,
  });

  async function subscribe(sub: SubscribeOptions): Promise<Subscription> {
    const subscription = await startPlatformaticSubscription(
      {
        client: clientOptions,
        logger,
        sessionTimeoutMs,
        heartbeatIntervalMs: options.heartbeatIntervalMs ?? Math.floor(sessionTimeoutMs / 3),
        maxWaitTimeMs: options.maxWaitTimeMs ?? 1000,
        onFatal: (err) => {
          crashed = true;
          onFatal(err);
        },
      },
      sub,
    );
    return trackedSubscription(subscriptions, subscription);
  }

  async function ensureTopics(specs: TopicSpec[]): Promise<void> {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.topic));
    // One request per partition count: createTopics takes one count for all its topics.
    const byCount = new Map<number, string[]>();
    for (const s of missing) byCount.set(s.partitions, [...(byCount.get(s.partitions) ?? []), s.topic]);
    for (const [partitions, topics] of byCount) {
      try {
        await admin.createTopics({ topics, partitions, replicas: -1 });
      } catch (err) {
        // Another service created it between listTopics and here: that is what we wanted.
        if (!hasApiError(err, 'TOPIC_ALREADY_EXISTS')) throw err;
      }
    }
    if (missing.length > 0) await waitForLeaders(missing.map((s) => s.topic));
  }

  /** As kafkajs' `waitForLeaders`: a publish right after creating a topic finds its leaders. */
  async function waitForLeaders(topics: string[]): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const metadata = await admin.metadata({ topics, forceUpdate: true });
      const ready = topics.every((t) => {
        const topic = metadata.topics.get(t);
        return topic !== undefined && topic.partitions.every((p) => p.leader >= 0);
      });
      if (ready || Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Log end − committed offset per partition (from the oldest record where the group never committed). */
  async function consumerLag(groupId: string, topics: string[]): Promise<PartitionLag[]> {
    const metadata = await admin.metadata({ topics, forceUpdate: true });
    const request = topics.map((name) => ({
      name,
      partitions: Array.from(
        { length: metadata.topics.get(name)?.partitionsCount ?? 0 },
        (_, partitionIndex) => ({
          partitionIndex,
        }),
      ),
    }));
    const at = (timestamp: bigint) =>
      admin.listOffsets({
        topics: request.map((t) => ({ ...t, partitions: t.partitions.map((p) => ({ ...p, timestamp })) })),
      });
    const [ends, starts, groups] = await Promise.all([
      at(ListOffsetTimestamps.LATEST),
      at(ListOffsetTimestamps.EARLIEST),
      admin.listConsumerGroupOffsets({ groups: [groupId] }),
    ]);
    const key = (topic: string, partition: number) => `${topic}|${partition}`;
    const low = new Map<string, bigint>();
    for (const t of starts) for (const p of t.partitions) low.set(key(t.name, p.partitionIndex), p.offset);
    const done = new Map<string, bigint>();
    for (const g of groups) {
      for (const t of g.topics) {
        for (const p of t.partitions) done.set(key(t.name, p.partitionIndex), p.committedOffset);
      }
    }
    return ends.flatMap((t) =>
      t.partitions.map((p) => {
        // -1: the group never committed on this partition; it starts from the oldest record.
        const committed = done.get(key(t.name, p.partitionIndex)) ?? -1n;
        const from = committed >= 0n ? committed : (low.get(key(t.name, p.partitionIndex)) ?? 0n);
        return { topic: t.name, partition: p.partitionIndex, lag: Math.max(0, Number(p.offset - from)) };
      }),
    );
  }

  return {
    kind: 'kafka',
    async connect() {
      // platformatic connects lazily; a metadata round trip makes connect() fail fast on a dead broker.
      await withTimeout(producer.metadata({ topics: [] }), publishTimeoutMs, 'connect');
      producerConnected = true;
    },
    ensureTopics,
    async publish(topic: string, records: BusRecord[]) {
      const send = batcher.add(
        topic,
        records.map((r) => ({ topic, key: r.key, value: r.value, headers: r.headers ?? {} })),
      );
      inFlight.add(send);
      void send.then(
        () => inFlight.delete(send),
        () => inFlight.delete(send),
      );
      await awaitSend(send, topic, {
        timeoutMs: publishTimeoutMs,
        state: publish,
        logger,
        onFailure: probe.schedule,
      });
    },
    subscribe,
    consumerLag: (groupId: string, topics: string[]) =>
      withTimeout(consumerLag(groupId, topics), publishTimeoutMs, 'consumer lag'),
    healthy: () => producerConnected && !crashed && !publish.failing && !closed,
    health: () => kafkaBusHealth({ closed, crashed, producerConnected, publish }),
    close: once(async () => {
      closed = true;
      probe.stop();
      await Promise.allSettled([...subscriptions].map((s) => s.close()));
      // Publishes already handed to the producer get their answer before its sockets close.
      await withTimeout(Promise.allSettled([...inFlight]), publishTimeoutMs, 'final publishes').catch(
        (err: unknown) => logger.warn({ err }, 'publishes still unanswered at close'),
      );
      producerConnected = false;
      await Promise.allSettled([admin.close(), producer.close()]);
    }),
  };
}
