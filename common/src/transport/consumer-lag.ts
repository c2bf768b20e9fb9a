import type { Logger } from 'pino';
import type { Metrics } from '../metrics/metrics.js';
import type { Bus, PartitionLag } from './bus.js';

export interface ConsumerLagOptions {
  metrics: Metrics;
  bus: Bus;
  logger: Logger;
  /** The consumer group this process is a member of, and the topics it consumes. */
  groupId: string;
  topics: string[];
}

/**
 * `kafka_consumergroup_lag{consumergroup, topic, partition}` (the name and labels of the common
 * Kafka exporter, so its dashboards and alerts fit): read from the broker when Prometheus scrapes,
 * so nothing runs between scrapes. Every member of a group reports the whole group; queries take
 * `max by (consumergroup, topic, partition)`. One lookup at a time: a scrape during a slow one shares
 * it. When the broker does not answer, the series go away for that scrape (the Kafka alerts say
 * why) rather than repeat a stale number.
 */
export function exportConsumerLag(options: ConsumerLagOptions): void {
  const { bus, logger, groupId, topics } = options;
  const lookup = bus.consumerLag?.bind(bus);
  if (!lookup) return;
  let pending: Promise<PartitionLag[]> | undefined;
  const gauge = options.metrics.gauge({
    name: 'kafka_consumergroup_lag',
    help: 'Records of the topic partition the consumer group has not committed (log end - committed offset), as the broker reports at scrape time',
    labelNames: ['consumergroup', 'topic', 'partition'],
    collect: async () => {
      pending ??= lookup(groupId, topics).finally(() => (pending = undefined));
      try {
        const lags = await pending;
        gauge.reset();
        for (const { topic, partition, lag } of lags) {
          gauge.set({ consumergroup: groupId, topic, partition: String(partition) }, lag);
        }
      } catch (err) {
        gauge.reset();
        logger.debug({ err, group: groupId }, 'consumer lag unavailable for this scrape');
      }
    },
  });
}
