import type { Logger } from 'pino';
import type { KafkaClientName } from '../config/fragments.js';
import type { Bus, FatalHandler } from './bus.js';
import { createKafkaBus } from './kafka-bus.js';

/** What every service gives its Kafka bus, whichever client library runs it. */
export interface KafkaClientBusOptions {
  /** The library: `KAFKA_CLIENT` (config.kafka.client). */
  client: KafkaClientName;
  brokers: string[];
  clientId: string;
  logger: Logger;
  onFatal: FatalHandler;
  /** @default 10000 */
  sessionTimeoutMs?: number;
  /** @default 5000 */
  publishTimeoutMs?: number;
  /** @default 0 */
  lingerMs?: number;
}

/**
 * The Kafka `Bus` on the configured client: kafka-bus.ts (kafkajs) or platformatic-bus.ts
 * (@platformatic/kafka). Both keep the Bus contract (common/src/testing/bus-contract.ts).
 * platformatic is imported only when chosen: loading it compiles its protocol schemas, ~450 ms of
 * every service's start-up (the embedded app's too) for a client the default does not use.
 */
export async function createKafkaClientBus(options: KafkaClientBusOptions): Promise<Bus> {
  const { client, ...rest } = options;
  const common = {
    brokers: rest.brokers,
    clientId: rest.clientId,
    logger: rest.logger.child({ kafka_client: client }),
    onFatal: rest.onFatal,
    ...(rest.sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs: rest.sessionTimeoutMs }),
    ...(rest.publishTimeoutMs === undefined ? {} : { publishTimeoutMs: rest.publishTimeoutMs }),
    ...(rest.lingerMs === undefined ? {} : { lingerMs: rest.lingerMs }),
  };
  if (client !== 'platformatic') return createKafkaBus(common);
  const { createPlatformaticBus } = await import('./platformatic-bus.js');
  return createPlatformaticBus(common);
}
