import {
  TOPICS,
  bootService,
  createKafkaClientBus,
  createRedisPubSub,
  createRedisStore,
} from '@relay/common';
import { loadSitesOrExit, logSites, type configFragments } from './config.js';
import type { Gateway, GatewayDeps } from './gateway.js';
import { createGatewayMetrics } from './gateway-metrics.js';
import { createTokenService } from './token-service.js';

/** What every gateway needs, whatever its WebSocket library: transports, settings, tokens. */
export type GatewayProcessDeps = Omit<GatewayDeps, 'uws' | 'staticFiles'>;

/**
 * A gateway as a process: config from the environment, Kafka and Redis, the Redis pub/sub wired to
 * the gateway's suspend/resync, shutdown in reverse order. `create` builds the gateway on top;
 * the uWS gateway (main.ts) and the bench's `ws` baseline share everything else.
 */
export async function runGatewayProcess(
  service: string,
  fragments: typeof configFragments,
  create: (deps: GatewayProcessDeps) => Gateway | Promise<Gateway>,
): Promise<void> {
  const { config, logger, metrics, shutdown, tracer } = await bootService(process, service, fragments);
  const sites = loadSitesOrExit(config.gateway, config.http.host, (line) => {
    process.stderr.write(`${line}\n`);
    process.exit(1);
  });
  logSites(logger, sites);
  const bus = await createKafkaClientBus({
    client: config.kafka.client,
    brokers: config.kafka.brokers,
    clientId: `${service}-${config.http.serverId}`,
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
  const gateway = await create({
    settings: config.gateway,
    delivery: config.delivery,
    presence: config.presence,
    host: config.http.host,
    port: config.http.port,
    serverId: config.http.serverId,
    logger,
    metrics,
    tracer,
    bus,
    store,
    pubsub,
    tokens: createTokenService({
      secret: config.gateway.jwtSecret,
      ttlSeconds: config.gateway.tokenTtlSeconds,
    }),
    sites,
  });
  built.gateway = gateway;
  const { port } = await gateway.start();
  shutdown.add('gateway', () => gateway.close());
  logger.info(
    { port, kafka: config.kafka.brokers, kafka_client: config.kafka.client, redis: 'configured' },
    `${service} started`,
  );
}
