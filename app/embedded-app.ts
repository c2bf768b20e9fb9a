import {
  TOPICS,
  createKafkaClientBus,
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createRedisPubSub,
  createRedisStore,
  combinedReadiness,
  failing,
  once,
  readinessOf,
  runAll,
  type Bus,
  type ConfigOf,
  type Gauge,
  type KeyValueStore,
  type MemoryStore,
  type Metrics,
  type PubSub,
  type Readiness,
  type Tracer,
} from '@relay/common';
import { createAiConsumer, setupKnowledge, setupModel } from '@relay/ai-consumer';
import { createRelay } from '@relay/message-relay';
import {
  createGateway,
  createTokenService,
  loadStaticFiles,
  loadUws,
  type Sites,
} from '@relay/websocket-server';
import type { Logger } from 'pino';
import type { configFragments } from './config.js';

export interface EmbeddedAppOptions {
  config: ConfigOf<typeof configFragments>;
  transports: { kafka: boolean; redis: boolean };
  logger: Logger;
  metrics: Metrics;
  /** One tracer for all three: their spans share the service name `ai-relay`. @default tracing off */
  tracer?: Tracer;
  /** The gateway's sites (`sitesFor`). */
  sites: Sites;
  /** Directory of the chat page. */
  staticDir: string;
  /** A consumer or relay cannot go on: the caller should exit. */
  onFatal: (err: Error) => void;
}

export interface EmbeddedApp {
  start(): Promise<{ port: number; bus: Bus['kind']; store: KeyValueStore['kind']; model: string }>;
  close(): Promise<void>;
  /** The three services' checks, each name prefixed with its service (`relay.redis`, …). */
  ready(): Readiness;
}

/**
 * The in-process store's size and what it dropped, read at each scrape: an operator of the embedded
 * app sees when the bound starts evicting (a resend after its dedupe marker went is answered again).
 */
function observedMemoryStore(store: MemoryStore, metrics: Metrics): MemoryStore {
  const keys: Gauge = metrics.gauge({
    name: 'memory_store_keys',
    help: 'Keys the in-process store holds (MEMORY_STORE_MAX_KEYS bounds it), expired ones not swept yet included',
    collect: () => keys.set(store.stats().keys),
  });
  const removed: Gauge<'reason'> = metrics.gauge({
    name: 'memory_store_removed_keys',
    help: 'Keys the in-process store removed since start, by reason: expired (TTL) or evicted (over MEMORY_STORE_MAX_KEYS)',
    labelNames: ['reason'],
    collect: () => {
      const stats = store.stats();
      removed.set({ reason: 'expired' }, stats.expired);
      removed.set({ reason: 'evicted' }, stats.evicted);
    },
  });
  return store;
}

/**
 * Gateway, AI consumer, relay and (without OPENAI_API_KEY) the mock model in one process, wired
 * through the same ports the distributed services use: in-process by default, real Kafka / Redis
 * when their variables are set.
 */
export async function createEmbeddedApp(options: EmbeddedAppOptions): Promise<EmbeddedApp> {
  const { config, logger, metrics, transports, tracer } = options;
  const hub = createMemoryPubSubHub();
  const bus: Bus = transports.kafka
    ? await createKafkaClientBus({
        client: config.kafka.client,
        brokers: config.kafka.brokers,
        clientId: 'ai-relay-embedded',
        logger,
        sessionTimeoutMs: config.kafka.sessionTimeoutMs,
        onFatal: options.onFatal,
      })
    : createMemoryBus({ defaultPartitions: config.kafka.partitions, onFatal: options.onFatal });
  const store: KeyValueStore = transports.redis
    ? createRedisStore({ url: config.redis.url, logger })
    : observedMemoryStore(createMemoryStore({ maxKeys: config.embedded.memoryStoreMaxKeys }), metrics);
  const pubsubFor = (hooks: { onResubscribed?: () => void; onDisconnected?: () => void } = {}): PubSub =>
    transports.redis ? createRedisPubSub({ url: config.redis.url, logger, ...hooks }) : hub.client();
  // After a Redis reconnect the gateway's sockets catch up from the replay log on what they missed.
  let gatewayHooks = { resync: () => {}, suspend: () => {} };
  const gatewayPubsub = pubsubFor({
    onResubscribed: () => gatewayHooks.resync(),
    onDisconnected: () => gatewayHooks.suspend(),
  });
  const relayPubsub = pubsubFor();
  // Cancels reach the consumer over pub/sub (control:cancel), on a connection of its own.
  const consumerPubsub = pubsubFor();
  const closers: Array<readonly [string, () => unknown]> = [];

  async function start() {
    await bus.connect();
    await bus.ensureTopics(
      Object.values(TOPICS).map((topic) => ({ topic, partitions: config.kafka.partitions })),
    );
    const model = await setupModel(config, { logger, metrics });
    closers.push(['model', () => model.close()]);

    const knowledge = await setupKnowledge(config.knowledge, {
      endpoint: model.endpoint,
      store,
      openai: config.openai,
      breaker: {
        failureThreshold: config.consumer.breakerFailureThreshold,
        cooldownMs: config.consumer.breakerCooldownMs,
      },
      logger,
      metrics,
    });
    if (knowledge) closers.push(['knowledge', () => knowledge.close()]);

    const relay = createRelay({ config, logger, metrics, bus, store, pubsub: relayPubsub, tracer });
    await relay.start();
    closers.push(['relay', () => relay.close()]);

    const consumer = createAiConsumer({
      config,
      logger,
      metrics,
      bus,
      store,
      pubsub: consumerPubsub,
      model: model.model,
      tracer,
      ...(knowledge ? { knowledge } : {}),
    });
    await consumer.start();
    closers.push(['consumer', () => consumer.close()]);

    const gateway = createGateway({
      uws: loadUws().uws,
      sites: options.sites,
      delivery: config.delivery,
      settings: {
        ...config.gateway,
        modelLabel: model.mock ? 'mock model (bundled)' : config.gateway.modelLabel,
      },
      host: config.http.host,
      port: config.http.port,
      serverId: config.http.serverId,
      logger,
      metrics,
      tracer,
      bus,
      store,
      pubsub: gatewayPubsub,
      tokens: createTokenService({
        secret: config.gateway.jwtSecret,
        ttlSeconds: config.gateway.tokenTtlSeconds,
      }),
      staticFiles: await loadStaticFiles(config.gateway.staticDir ?? options.staticDir),
    });
    const { port } = await gateway.start();
    gatewayHooks = { resync: () => gateway.resync(), suspend: () => gateway.suspend() };
    closers.push(['gateway', () => gateway.close()]);
    ready = () =>
      combinedReadiness({ gateway: gateway.ready(), consumer: consumer.ready(), relay: relay.ready() });
    return {
      port,
      bus: bus.kind,
      store: store.kind,
      model: model.mock ? `mock at ${model.baseUrl}` : model.baseUrl,
    };
  }

  let ready = (): Readiness => readinessOf({ app: failing('starting') });
  return {
    start,
    ready: () => ready(),
    // Reverse order of start: sockets first, then the consumers finish what they hold, then transports.
    close: once(() =>
      runAll([
        ...closers.reverse(),
        ['bus', () => bus.close()],
        ['gateway-pubsub', () => gatewayPubsub.close()],
        ['relay-pubsub', () => relayPubsub.close()],
        ['consumer-pubsub', () => consumerPubsub.close()],
        ['store', () => store.close()],
      ]),
    ),
  };
}
