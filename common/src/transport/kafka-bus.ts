import {
  Kafka,
  Partitioners,
  logLevel as KafkaLogLevel,
  type ISocketFactory,
  type Message,
  type Producer,
  type RetryOptions,
  type logCreator,
} from 'kafkajs';
import type { Logger } from 'pino';
import type { Bus, BusRecord, PartitionLag, SubscribeOptions, Subscription, TopicSpec } from './bus.js';
import { createProduceBatcher } from './produce-batcher.js';
import { startKafkaSubscription, type KafkaSubscription } from './kafka-subscription.js';
import { once } from '../lifecycle/once.js';
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

export interface KafkaBusOptions extends KafkaBusCommonOptions {
  /**
   * kafkajs retry for connecting, consumers and the admin client (the producer's is derived from
   * `publishTimeoutMs`). A consumer that exhausts it crashes and is restarted by kafkajs (it
   * rejoins its group). @default kafkajs' defaults
   */
  retry?: RetryOptions;
  /** Replaces kafkajs' socket factory; tests use it to cut this client off from the broker. */
  socketFactory?: ISocketFactory;
}

/** Routes kafkajs' own logs into pino at the matching level. */
function pinoLogCreator(logger: Logger): logCreator {
  return () =>
    ({ level, log }) => {
      const { message, ...rest } = log;
      const child = { kafkajs: rest.logger, ...rest };
      if (level <= KafkaLogLevel.ERROR) logger.error(child, message);
      else if (level === KafkaLogLevel.WARN) logger.warn(child, message);
      else logger.debug(child, message);
    };
}

/**
 * The Bus on kafkajs. Producer: acks from all in-sync replicas, bounded by `publishTimeoutMs`.
 * Consumers: see kafka-subscription.ts (watermark commits after handlers resolve).
 */
export function createKafkaBus(options: KafkaBusOptions): Bus {
  const { logger, onFatal } = options;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5000;
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000;
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    logLevel: KafkaLogLevel.WARN,
    logCreator: pinoLogCreator(logger.child({ component: 'kafkajs' })),
    // The client-level retry also governs (re)connecting to the cluster, for every client.
    ...(options.retry ? { retry: options.retry } : {}),
    ...(options.socketFactory ? { socketFactory: options.socketFactory } : {}),
  });
  // The Java client's murmur2 partitioner, named explicitly: a key lands on the same partition
  // whichever client produced it (and kafkajs stops warning about its changed default).
  const producer: Producer = kafka.producer({
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
    // kafkajs' default retry needs 10-30 s to give up on a dead broker. Short backoffs that fit in
    // publishTimeoutMs let a blip heal inside one publish; the timer below is the hard bound.
    retry: {
      initialRetryTime: 100,
      maxRetryTime: Math.max(100, Math.floor(publishTimeoutMs / 4)),
      retries: 5,
    },
  });
  // One produce request per event-loop turn (or linger) instead of one per publish.
  const batcher = createProduceBatcher<Message>({
    lingerMs: options.lingerMs ?? 0,
    sizeOf: (m) => recordSize(m.key, m.value),
    send: (topicMessages) => producer.sendBatch({ acks: -1, topicMessages }).then(() => undefined),
  });
  const admin = kafka.admin();
  const subscriptions = new Set<KafkaSubscription>();
  let producerConnected = false;
  let adminConnected = false;
  let adminConnecting: Promise<void> | undefined;
  let crashed = false;
  let closed = false;
  /** The last publish failed and no probe or publish has succeeded since, and why. */
  const publish: PublishState = { failing: false, error: undefined };

  producer.on(producer.events.CONNECT, () => (producerConnected = true));
  producer.on(producer.events.DISCONNECT, () => (producerConnected = false));

  function connectAdmin(): Promise<void> {
    // Shared, so a probe and ensureTopics racing do not connect twice.
    adminConnecting ??= admin.connect().then(
      () => void (adminConnected = true),
      (err: unknown) => {
        adminConnecting = undefined;
        throw err;
      },
    );
    return adminConnecting;
  }

  /** While publishing fails, polls the broker so readiness recovers without waiting for traffic. */
  const probe = createBrokerProbe({
    check: async () => {
      await connectAdmin();
      await admin.describeCluster();
    },
    timeoutMs: publishTimeoutMs,
    state: publish,
    logger,
    closed: () => closed,
  });

  async function subscribe(sub: SubscribeOptions): Promise<Subscription> {
    const subscription = await startKafkaSubscription(
      {
        kafka,
        logger,
        sessionTimeoutMs,
        heartbeatIntervalMs: options.heartbeatIntervalMs ?? Math.floor(sessionTimeoutMs / 3),
        ...(options.retry ? { retry: options.retry } : {}),
        onFatal: (err) => {
          crashed = true;
          onFatal(err);
        },
      },
      sub,
    );
    return trackedSubscription(subscriptions, subscription);
  }

  return {
    kind: 'kafka',
    async connect() {
      await producer.connect();
    },
    async ensureTopics(specs: TopicSpec[]) {
      await connectAdmin();
      const existing = new Set(await admin.listTopics());
      const missing = specs.filter((s) => !existing.has(s.topic));
      if (missing.length === 0) return;
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((s) => ({ topic: s.topic, numPartitions: s.partitions, replicationFactor: -1 })),
      });
    },
    async publish(topic: string, records: BusRecord[]) {
      const send = batcher.add(
        topic,
        records.map((r) => ({ key: r.key, value: r.value, headers: r.headers ?? {} })),
      );
      await awaitSend(send, topic, {
        timeoutMs: publishTimeoutMs,
        state: publish,
        logger,
        onFailure: probe.schedule,
      });
    },
    subscribe,
    healthy: () => producerConnected && !crashed && !publish.failing,
    health: () => kafkaBusHealth({ crashed, producerConnected, publish }),
    consumerLag: (groupId: string, topics: string[]) =>
      withTimeout(
        (async (): Promise<PartitionLag[]> => {
          await connectAdmin();
          const [ends, committed] = await Promise.all([
            Promise.all(
              topics.map(async (topic) => ({ topic, offsets: await admin.fetchTopicOffsets(topic) })),
            ),
            admin.fetchOffsets({ groupId, topics }),
          ]);
          const done = new Map<string, number>();
          for (const t of committed) {
            for (const p of t.partitions) done.set(`${t.topic}|${p.partition}`, Number(p.offset));
          }
          return ends.flatMap(({ topic, offsets }) =>
            offsets.map((p) => {
              // -1: the group never committed on this partition; it starts from the oldest record.
              const at = done.get(`${topic}|${p.partition}`) ?? -1;
              const end = Number(p.high);
              return {
                topic,
                partition: p.partition,
                lag: Math.max(0, end - (at >= 0 ? at : Number(p.low))),
              };
            }),
          );
        })(),
        publishTimeoutMs,
        'consumer lag',
      ),
    close: once(async () => {
      closed = true;
      probe.stop();
      await Promise.allSettled([...subscriptions].map((s) => s.close()));
      if (adminConnected) await admin.disconnect();
      await producer.disconnect();
    }),
  };
}
