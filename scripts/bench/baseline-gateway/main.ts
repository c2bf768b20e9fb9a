/**
 * The baseline gateway as a process: the same environment, transports and shutdown order as
 * websocket-server/src/main.ts, so a benchmark can run it beside the uWS gateways unchanged.
 * Only the defaults differ: APP_NAME `baseline-gateway` and PORT 8083.
 *
 *   PORT=8083 JWT_SECRET=<same as the gateways> KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
 *   REDIS_URL=redis://127.0.0.1:6379 SERVER_ID=baseline-gateway \
 *   node --import tsx --conditions=source scripts/bench/baseline-gateway/main.ts
 *
 * or through the harness with `baselineGateway` from ./service.ts (`BASELINE_GATEWAY_PORT`).
 */
import {
  TOPICS,
  bootService,
  createKafkaBus,
  createRedisPubSub,
  createRedisStore,
  httpFragment,
} from '@relay/common';
import { configFragments } from '../../../websocket-server/src/config.js';
import type { Gateway } from '../../../websocket-server/src/gateway.js';
import { createGatewayMetrics } from '../../../websocket-server/src/gateway-metrics.js';
import { createTokenService } from '../../../websocket-server/src/token-service.js';
import { BASELINE_SERVICE, createBaselineGateway } from './gateway.js';

const { config, logger, metrics, shutdown } = bootService(process, BASELINE_SERVICE, {
  ...configFragments,
  http: httpFragment({ service: BASELINE_SERVICE, port: 8083 }),
});

const bus = createKafkaBus({
  brokers: config.kafka.brokers,
  clientId: `${BASELINE_SERVICE}-${config.http.serverId}`,
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
    built.gateway?.resync();
  },
});
shutdown.add('redis-store', () => store.close());
shutdown.add('redis-pubsub', () => pubsub.close());
shutdown.add('kafka', () => bus.close());

await bus.connect();
await bus.ensureTopics([{ topic: TOPICS.incoming, partitions: config.kafka.partitions }]);
const gateway = createBaselineGateway({
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
});
built.gateway = gateway;
const { port } = await gateway.start();
shutdown.add('gateway', () => gateway.close());
logger.info({ port, kafka: config.kafka.brokers, redis: 'configured' }, `${BASELINE_SERVICE} started`);
