import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Bus, BusRecord } from './bus.js';

export interface PublishRetryOptions {
  logger: Logger;
  /** True once the caller is shutting down: the last error is thrown and the message stays uncommitted. */
  stopped: () => boolean;
  /** @default 100 */
  baseMs?: number;
  /** @default 2000 */
  maxMs?: number;
}

/**
 * Publishes, retrying with capped, jittered backoff while the broker does not take it. A consumer
 * that must publish before it commits (its final event, a dead letter) waits out a broker restart
 * this way instead of failing the message and exiting: its offset stays uncommitted meanwhile, and
 * it carries on when Kafka is back (SPEC §7: consumers resume when the broker returns). Our records
 * are valid by construction, so a refused publish is an outage, not bad input.
 */
export async function publishWithRetry(
  bus: Bus,
  topic: string,
  records: BusRecord[],
  options: PublishRetryOptions,
): Promise<void> {
  const base = options.baseMs ?? 100;
  const max = options.maxMs ?? 2000;
  for (let attempt = 0; ; attempt++) {
    try {
      await bus.publish(topic, records);
      if (attempt > 0)
        options.logger.info({ topic, attempts: attempt + 1 }, 'publish went through after retries');
      return;
    } catch (err) {
      if (options.stopped()) throw err;
      if (attempt === 0 || attempt % 10 === 0) {
        options.logger.warn({ err, topic, attempt }, 'publish failed; retrying until the broker takes it');
      }
      const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 16));
      await sleep(ceiling / 2 + (Math.random() * ceiling) / 2);
    }
  }
}
