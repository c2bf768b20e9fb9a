import { describe, expect, it } from 'vitest';
import type { SubscribeOptions } from './bus.js';
import { laneKey, resolveConsumption, slotKey } from './subscribe-options.js';

const base: SubscribeOptions = { groupId: 'g', topics: ['t'], handler: async () => {} };

describe('subscribe options', () => {
  it('defaults to one message at a time in partition order', () => {
    expect(resolveConsumption(base)).toEqual({
      concurrency: 1,
      ordering: 'partition',
      maxQueued: 4,
      drainTimeoutMs: 10_000,
    });
  });

  it('orders by key when more than one message may run', () => {
    expect(resolveConsumption({ ...base, concurrency: 8 })).toMatchObject({ ordering: 'key', maxQueued: 32 });
    expect(resolveConsumption({ ...base, concurrency: 8, ordering: 'partition' }).ordering).toBe('partition');
  });

  it('maps the deprecated partitionsConcurrently to concurrency with partition order', () => {
    expect(resolveConsumption({ ...base, partitionsConcurrently: 3 })).toMatchObject({
      concurrency: 3,
      ordering: 'partition',
    });
    expect(resolveConsumption({ ...base, partitionsConcurrently: 3, concurrency: 5 })).toMatchObject({
      concurrency: 5,
      ordering: 'key',
    });
  });

  it('rejects invalid values naming the option', () => {
    expect(() => resolveConsumption({ ...base, concurrency: 0 })).toThrow(/concurrency/);
    expect(() => resolveConsumption({ ...base, drainTimeoutMs: -1 })).toThrow(/drainTimeoutMs/);
  });

  it('gives one lane per key within a partition, and one per partition otherwise', () => {
    const slot = slotKey('t', 0);
    expect(laneKey('key', slot, 'u1')).not.toBe(laneKey('key', slot, 'u2'));
    expect(laneKey('key', slot, null)).toBe(slot);
    expect(laneKey('key', slot, '')).not.toBe(laneKey('key', slot, null));
    expect(laneKey('partition', slot, 'u1')).toBe(laneKey('partition', slot, 'u2'));
  });
});
