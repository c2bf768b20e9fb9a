import {
  createKafkaClientBus,
  createOpsServer,
  createRedisPubSub,
  createRedisStore,
  bootService,
  drainingCheck,
  readinessOf,
} from '@relay/common';
import { SERVICE, configFragments } from './config.js';
import { createRelay } from './relay.js';

const { config, logger, metrics, shutdown, tracer } = await bootService(process, SERVICE, configFragments);

const connectionName = `${SERVICE}:${config.http.serverId}`;
const bus = await createKafkaClientBus({
  client: config.kafka.client,
  brokers: config.kafka.brokers,
  clientId: connectionName,
  logger,
  sessionTimeoutMs: config.kafka.sessionTimeoutMs,
  // A consumer that cannot go on must not linger as a zombie: drain and exit so it gets restarted.
  onFatal: (err) => {
    logger.fatal({ err }, 'kafka subscription failed; shutting down');
    void shutdown.shutdown('kafka subscription failed', 1);
  },
});
const store = createRedisStore({ url: config.redis.url, logger, connectionName });
const pubsub = createRedisPubSub({ url: config.redis.url, logger, connectionName });
const relay = createRelay({ config, logger, metrics, bus, store, pubsub, tracer });

const ops = createOpsServer({
  service: SERVICE,
  host: config.http.host,
  port: config.http.port,
  metrics,
  health: () => ({ status: 'ok', service: SERVICE, server_id: config.http.serverId }),
  ready: () => readinessOf({ ...relay.ready().checks, draining: drainingCheck(shutdown.draining) }),
});

// Closed in reverse: relay subscription, bus, pub/sub, store, then the ops server (so /ready says 503
// until the very end).
shutdown.add('ops-server', () => ops.close());
shutdown.add('redis-store', () => store.close());
shutdown.add('redis-pubsub', () => pubsub.close());
shutdown.add('kafka-bus', () => bus.close());
shutdown.add('relay', () => relay.close());

try {
  // The ops server comes first so /health answers (and /ready says 503) while Kafka is joined.
  const { port } = await ops.start();
  await bus.connect();
  await relay.start();
  logger.info({ port, kafka_client: config.kafka.client }, `${SERVICE} started`);
} catch (err) {
  logger.fatal({ err }, `${SERVICE} failed to start`);
  await shutdown.shutdown('start-up failed', 1);
}
