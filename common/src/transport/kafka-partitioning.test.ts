import { compatibilityPartitioner } from '@platformatic/kafka';
import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';

/**
 * Per-user order needs one user's records on one partition, whichever client produced them: a
 * gateway on kafkajs and a consumer publishing with platformatic (or a fleet switching clients)
 * must agree. platformatic-bus.ts uses platformatic's compatibilityPartitioner for that.
 */
describe('partitioning is the same on both Kafka clients', () => {
  it.each([1, 3, 6, 12, 50])('every key lands on the same of %i partitions', (count) => {
    const kafkajs = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({
      partitionId,
      leader: 1,
      partitionErrorCode: 0,
      replicas: [1],
      isr: [1],
    }));
    for (let i = 0; i < 2000; i++) {
      const key = i % 7 === 0 ? `site:anon-${i.toString(36)}` : `user-${i}`;
      const expected = kafkajs({ topic: 't', partitionMetadata, message: { key, value: 'v' } });
      const raw = compatibilityPartitioner({ topic: 't', key, value: 'v' }, Buffer.from(key));
      // The producer reduces the partitioner's number modulo the topic's partition count.
      expect(raw % count).toBe(expected);
    }
  });
});
