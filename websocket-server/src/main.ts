import { createKafkaBus, createRedisPubSub, createRedisStore, TOPICS, bootService } from '@relay/common';
import { SERVICE, configFragments } from './config.js';
import { createGateway, type Gateway } from './gateway.js';
import { createGatewayMetrics } from './gateway-metrics.js';
import { loadStaticFiles } from './static-files.js';
import { createTokenService } from './token-service.js';
import { loadUws } from './uws.js';

const { config, logger, metrics, shutdown } = bootService(process, SERVICE, configFragments);
const { uws, native } = loadUws();
if (!native) {
  logger.fatal('uWebSockets.js native addon did not load (pure-JS fallback); refusing to run');
  process.exit(1);
}

const bus = createKafkaBus({
  brokers: config.kafka.brokers,
  clientId: `${SERVICE}-${config.http.serverId}`,
  logger,
  onFatal: (err) => {
    logger.fatal({ err }, 'kafka failed for good');
    void shutdown.shutdown('kafka fatal', 1);
  },
});
const gatewayMetrics = createGatewayMetrics(metrics);
// The gateway once built: the Redis pub/sub below asks it to resync after a reconnect.
const built: { gateway?: Gateway } = {};
const store = createRedisStore({ url: config.redis.url, logger, connectionName: config.http.serverId });
const pubsub = createRedisPubSub({
  url: config.redis.url,
  logger,
  connectionName: config.http.serverId,
  onDisconnected: () => built.gateway?.suspend(),
  onResubscribed: (channels) => {
    gatewayMetrics.resubscribes.inc(channels);
    // Frames published while the subscription was down are in the replay logs.
    built.gateway?.resync();
  },
});
shutdown.add('redis-store', () => store.close());
shutdown.add('redis-pubsub', () => pubsub.close());
shutdown.add('kafka', () => bus.close());

await bus.connect();
await bus.ensureTopics([{ topic: TOPICS.incoming, partitions: config.kafka.partitions }]);
const gateway = createGateway({
  uws,
  settings: config.gateway,
  delivery: config.delivery,
  host: config.http.host,
  port: config.http.port,
  serverId: config.http.serverId,
  logger,
  metrics,
  bus,
  store,
  pubsub,
  tokens: createTokenService({
    secret: config.gateway.jwtSecret,
    ttlSeconds: config.gateway.tokenTtlSeconds,
  }),
  ...(config.gateway.staticDir ? { staticFiles: await loadStaticFiles(config.gateway.staticDir) } : {}),
});
built.gateway = gateway;
const { port } = await gateway.start();
shutdown.add('gateway', () => gateway.close());
logger.info({ port, kafka: config.kafka.brokers, redis: 'configured' }, `${SERVICE} started`);
