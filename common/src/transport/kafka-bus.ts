import {
  Kafka,
  Partitioners,
  logLevel as KafkaLogLevel,
  type Consumer,
  type IHeaders,
  type Producer,
  type logCreator,
} from 'kafkajs';
import type { Logger } from 'pino';
import type {
  Bus,
  BusMessage,
  BusRecord,
  FatalHandler,
  SubscribeOptions,
  Subscription,
  TopicSpec,
} from './bus.js';
import { once } from '../lifecycle/once.js';

export interface KafkaBusOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** A subscription crashed for good: make the process unready and exit. */
  onFatal: FatalHandler;
  /** @default 10000 */
  sessionTimeoutMs?: number;
  /** @default sessionTimeoutMs / 3 */
  heartbeatIntervalMs?: number;
  /** How long to wait for the first broker connection. @default 3000 */
  connectionTimeoutMs?: number;
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

function headersToStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const [k, v] of Object.entries(headers)) {
    const first = Array.isArray(v) ? v[0] : v;
    if (first !== undefined) out[k] = first.toString();
  }
  return out;
}

/**
 * The Bus on kafkajs. Producer: acks from all in-sync replicas. Consumers: manual commits, one per
 * message, sent only after the handler resolved, so a crash never commits unfinished work.
 */
export function createKafkaBus(options: KafkaBusOptions): Bus {
  const { logger, onFatal } = options;
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    logLevel: KafkaLogLevel.WARN,
    logCreator: pinoLogCreator(logger.child({ component: 'kafkajs' })),
  });
  // The Java client's murmur2 partitioner, named explicitly: a key lands on the same partition
  // whichever client produced it (and kafkajs stops warning about its changed default).
  const producer: Producer = kafka.producer({
    allowAutoTopicCreation: true,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  const consumers = new Set<Consumer>();
  let producerConnected = false;
  let crashed = false;

  producer.on(producer.events.CONNECT, () => (producerConnected = true));
  producer.on(producer.events.DISCONNECT, () => (producerConnected = false));

  async function subscribe(sub: SubscribeOptions): Promise<Subscription> {
    const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
    const consumer = kafka.consumer({
      groupId: sub.groupId,
      sessionTimeout,
      heartbeatInterval: options.heartbeatIntervalMs ?? Math.floor(sessionTimeout / 3),
      allowAutoTopicCreation: true,
      // A fetch still returns as soon as a record arrives; the cap only bounds how long an idle
      // consumer's disconnect waits for its long poll (kafkajs' default 5 s slowed every shutdown).
      maxWaitTimeInMs: 1000,
    });
    let joined = false;
    let failed = false;
    let closing = false;
    let releaseStuck: () => void = () => {};
    const stuck = new Promise<void>((resolve) => (releaseStuck = resolve));

    consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
    consumer.on(consumer.events.REBALANCING, () => (joined = false));
    consumer.on(consumer.events.CRASH, (event) => {
      joined = false;
      const { error, restart } = event.payload;
      if (restart) {
        logger.warn({ err: error, group: sub.groupId }, 'kafka consumer crashed, kafkajs restarts it');
        return;
      }
      failed = true;
      crashed = true;
      logger.error({ err: error, group: sub.groupId }, 'kafka consumer crashed for good');
      onFatal(error);
    });

    await consumer.connect();
    consumers.add(consumer);
    await consumer.subscribe({ topics: sub.topics, fromBeginning: sub.fromBeginning ?? false });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: sub.partitionsConcurrently ?? 1,
      eachMessage: async ({ topic, partition, message, heartbeat }) => {
        // After a handler failure nothing more is handled or committed on this consumer.
        if (failed) return stuck;
        const busMessage: BusMessage = {
          topic,
          partition,
          offset: message.offset,
          key: message.key ? message.key.toString() : null,
          value: message.value ? message.value.toString() : '',
          headers: headersToStrings(message.headers),
          timestamp: Number(message.timestamp),
        };
        // Long handlers (model calls) keep the group membership alive.
        const beat = setInterval(
          () => void heartbeat().catch(() => undefined),
          Math.max(500, sessionTimeout / 3),
        );
        try {
          await sub.handler(busMessage);
        } catch (err) {
          failed = true;
          crashed = true;
          const error = err instanceof Error ? err : new Error(String(err));
          logger.error(
            { err: error, topic, partition, offset: message.offset },
            'message handler failed; not committing',
          );
          onFatal(error);
          // Hold the partition without committing until close(); throwing would make kafkajs retry.
          return stuck;
        } finally {
          clearInterval(beat);
        }
        await consumer.commitOffsets([
          { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
        ]);
      },
    });

    return {
      get ready() {
        return joined && !failed && !closing;
      },
      close: once(async () => {
        closing = true;
        releaseStuck();
        await consumer.disconnect();
        consumers.delete(consumer);
      }),
    };
  }

  const admin = kafka.admin();
  let adminConnected = false;

  return {
    kind: 'kafka',
    async connect() {
      await producer.connect();
    },
    async ensureTopics(specs: TopicSpec[]) {
      if (!adminConnected) {
        await admin.connect();
        adminConnected = true;
      }
      const existing = new Set(await admin.listTopics());
      const missing = specs.filter((s) => !existing.has(s.topic));
      if (missing.length === 0) return;
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((s) => ({ topic: s.topic, numPartitions: s.partitions, replicationFactor: -1 })),
      });
    },
    async publish(topic: string, records: BusRecord[]) {
      await producer.send({
        topic,
        acks: -1,
        messages: records.map((r) => ({ key: r.key, value: r.value, headers: r.headers ?? {} })),
      });
    },
    subscribe,
    healthy: () => producerConnected && !crashed,
    close: once(async () => {
      await Promise.allSettled([...consumers].map((c) => c.disconnect()));
      if (adminConnected) await admin.disconnect();
      await producer.disconnect();
    }),
  };
}
