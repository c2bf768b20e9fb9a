import {
  bootService,
  createKafkaClientBus,
  createOpsServer,
  createRedisPubSub,
  createRedisStore,
  drainingCheck,
  failing,
  readinessOf,
  type Readiness,
} from '@relay/common';
import { createAiConsumer } from './ai-consumer.js';
import { SERVICE, configFragments } from './config.js';
import { setupKnowledge } from './knowledge/index.js';
import { setupModel } from './model-setup.js';

const { config, logger, metrics, shutdown, tracer } = await bootService(process, SERVICE, configFragments);

// Resources are closed in reverse order of registration: consumer (finishes the messages in hand,
// their final events acknowledged), bus (producer flushed), cancel pub/sub, knowledge checks, store,
// the bundled mock model (if started), ops server.
// Until the consumer is built, nothing but the start-up itself can be reported.
let ready = (): Readiness => readinessOf({ consuming: failing('starting') });
const ops = createOpsServer({
  service: SERVICE,
  host: config.http.host,
  port: config.http.port,
  metrics,
  health: () => ({ status: 'ok', service: SERVICE, server_id: config.http.serverId }),
  ready: () => readinessOf({ ...ready().checks, draining: drainingCheck(shutdown.draining) }),
});
shutdown.add('ops-server', () => ops.close());

try {
  const { port } = await ops.start();

  const {
    model,
    baseUrl,
    endpoint,
    fallback,
    close: closeModel,
  } = await setupModel(config, { logger, metrics });
  shutdown.add('model', closeModel);

  const store = createRedisStore({ url: config.redis.url, logger, connectionName: SERVICE });
  shutdown.add('redis', () => store.close());
  await store.ping();

  // Embeddings cached in Redis by content hash; the first index is built before consuming.
  const knowledge = await setupKnowledge(config.knowledge, {
    endpoint,
    store,
    openai: config.openai,
    breaker: {
      failureThreshold: config.consumer.breakerFailureThreshold,
      cooldownMs: config.consumer.breakerCooldownMs,
    },
    logger,
    metrics,
  });
  if (knowledge) shutdown.add('knowledge', () => knowledge.close());

  // Closed after the consumer: a cancel can still stop a generation while the consumer drains.
  const pubsub = createRedisPubSub({ url: config.redis.url, logger, connectionName: SERVICE });
  shutdown.add('redis-pubsub', () => pubsub.close());

  const bus = await createKafkaClientBus({
    client: config.kafka.client,
    brokers: config.kafka.brokers,
    clientId: `${SERVICE}-${config.http.serverId}`,
    logger,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    onFatal: (err) => {
      logger.error({ err }, 'kafka consumer failed, shutting down');
      void shutdown.shutdown('kafka consumer failed', 1);
    },
  });
  shutdown.add('kafka', () => bus.close());
  await bus.connect();

  const consumer = createAiConsumer({
    config,
    logger,
    metrics,
    bus,
    store,
    pubsub,
    model,
    tracer,
    ...(knowledge ? { knowledge } : {}),
  });
  shutdown.add('consumer', () => consumer.close());
  await consumer.start();
  ready = () => consumer.ready();

  logger.info(
    {
      port,
      model: config.openai.model,
      base_url: baseUrl,
      kafka_client: config.kafka.client,
      ...(fallback ? { fallback_model: fallback.model, fallback_base_url: fallback.baseUrl } : {}),
    },
    `${SERVICE} started`,
  );
} catch (err) {
  logger.fatal({ err }, `${SERVICE} failed to start`);
  await shutdown.shutdown('start failed', 1);
}
