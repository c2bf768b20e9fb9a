import { describe, expect, it } from 'vitest';
import { silentLogger } from '../testing/silent-logger.js';
import type { Bus, BusRecord } from './bus.js';
import { createMemoryBus } from './memory-bus.js';
import { publishWithRetry } from './publish-retry.js';

/** A bus whose first `failures` publishes are refused, as during a broker restart. */
function flakyBus(failures: number) {
  const stats = { attempts: 0, published: [] as BusRecord[] };
  const bus: Bus = {
    ...createMemoryBus(),
    async publish(_topic, records) {
      stats.attempts++;
      if (stats.attempts <= failures) throw new Error('kafka unreachable');
      stats.published.push(...records);
    },
  };
  return { bus, stats };
}

describe('publishWithRetry', () => {
  it('retries until the broker takes the records', async () => {
    const { bus, stats } = flakyBus(3);
    await publishWithRetry(bus, 't', [{ key: 'k', value: 'v' }], {
      logger: silentLogger,
      stopped: () => false,
      baseMs: 1,
      maxMs: 4,
    });
    expect(stats.attempts).toBe(4);
    expect(stats.published).toEqual([{ key: 'k', value: 'v' }]);
  });

  it('gives up with the error once the caller stops, leaving the message uncommitted', async () => {
    const { bus, stats } = flakyBus(1000);
    let stop = false;
    const done = publishWithRetry(bus, 't', [{ key: 'k', value: 'v' }], {
      logger: silentLogger,
      stopped: () => stop,
      baseMs: 1,
      maxMs: 2,
    });
    setTimeout(() => (stop = true), 20);
    await expect(done).rejects.toThrow('kafka unreachable');
    expect(stats.published).toEqual([]);
  });
});
