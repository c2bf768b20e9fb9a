import { describe, expect, it } from 'vitest';
import { createMetrics, renderMetrics } from '../metrics/metrics.js';
import { silentLogger } from '../testing/silent-logger.js';
import type { Bus, PartitionLag } from './bus.js';
import { exportConsumerLag } from './consumer-lag.js';
import { createMemoryBus } from './memory-bus.js';

const lines = (body: string) => body.split('\n').filter((l) => l.startsWith('kafka_consumergroup_lag{'));

describe('exportConsumerLag', () => {
  it('reports each partition of the group at scrape time', async () => {
    const metrics = createMetrics({ service: 's', instance: 'i', defaultMetrics: false });
    const bus = createMemoryBus();
    await bus.connect();
    await bus.ensureTopics([{ topic: 't', partitions: 2 }]);
    exportConsumerLag({ metrics, bus, logger: silentLogger, groupId: 'g', topics: ['t'] });
    expect(lines((await renderMetrics(metrics.registry)).body)).toEqual([
      'kafka_consumergroup_lag{consumergroup="g",topic="t",partition="0",service="s",instance="i"} 0',
      'kafka_consumergroup_lag{consumergroup="g",topic="t",partition="1",service="s",instance="i"} 0',
    ]);
    await bus.publish('t', [
      { key: 'a', value: '1' },
      { key: 'a', value: '2' },
    ]);
    const after = lines((await renderMetrics(metrics.registry)).body);
    expect(after.map((l) => Number(l.split(' ')[1])).reduce((a, b) => a + b, 0)).toBe(2);
    await bus.close();
  });

  it('drops the series for a scrape the broker does not answer, and shares one slow lookup', async () => {
    const metrics = createMetrics({ service: 's', instance: 'i', defaultMetrics: false });
    let calls = 0;
    let answer: (lags: PartitionLag[]) => void = () => {};
    let failNext = false;
    const bus = {
      consumerLag: () => {
        calls++;
        if (failNext) return Promise.reject(new Error('broker down'));
        return new Promise<PartitionLag[]>((resolve) => (answer = resolve));
      },
    } as Pick<Bus, 'consumerLag'> as Bus;
    exportConsumerLag({ metrics, bus, logger: silentLogger, groupId: 'g', topics: ['t'] });
    const scrapes = [renderMetrics(metrics.registry), renderMetrics(metrics.registry)];
    answer([{ topic: 't', partition: 3, lag: 7 }]);
    for (const scrape of await Promise.all(scrapes)) {
      expect(lines(scrape.body)).toEqual([
        'kafka_consumergroup_lag{consumergroup="g",topic="t",partition="3",service="s",instance="i"} 7',
      ]);
    }
    expect(calls).toBe(1);
    failNext = true;
    expect(lines((await renderMetrics(metrics.registry)).body)).toEqual([]);
  });
});
