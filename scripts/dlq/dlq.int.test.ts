import { afterEach, describe, expect, inject, it } from 'vitest';
import { createKafkaBus, type Bus, type BusMessage, type DlqEvent } from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import {
  formatDeadLetter,
  listDeadLetters,
  REPLAY_HEADER,
  replayDeadLetters,
  type ReplayProgress,
} from './dlq.js';

const brokers = inject('kafkaBrokers').split(',');

function deadLetter(sourceTopic: string, i: number): DlqEvent {
  return {
    v: 1,
    source_topic: sourceTopic,
    partition: 0,
    offset: String(40 + i),
    key: `user-${i}`,
    value: JSON.stringify({ v: 1, request_id: `r${i}`, userid: `user-${i}`, content: `hello ${i}` }),
    error: { code: 'invalid_message', message: `content was bad #${i}` },
    failed_at: new Date(Date.UTC(2024, 0, 1, 12, 0, i)).toISOString(),
  };
}

describe('dead letters CLI functions', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function setup(): Promise<{ bus: Bus; dlqTopic: string; sourceTopic: string }> {
    const bus = createKafkaBus({
      brokers,
      clientId: uniqueName('dlq-test'),
      logger: silentLogger,
      onFatal: () => {},
    });
    cleanup.push(() => bus.close());
    await bus.connect();
    const dlqTopic = `${uniqueName('incoming')}.dlq`;
    const sourceTopic = uniqueName('incoming');
    await bus.ensureTopics([
      { topic: dlqTopic, partitions: 2 },
      { topic: sourceTopic, partitions: 2 },
    ]);
    await bus.publish(
      dlqTopic,
      [0, 1, 2].map((i) => ({ key: `user-${i}`, value: JSON.stringify(deadLetter(sourceTopic, i)) })),
    );
    // Not a DLQ record, and one that would loop back into a DLQ: both are skipped by replay.
    await bus.publish(dlqTopic, [{ key: 'user-x', value: 'not json' }]);
    await bus.publish(dlqTopic, [
      { key: 'user-y', value: JSON.stringify({ ...deadLetter(sourceTopic, 9), source_topic: dlqTopic }) },
    ]);
    return { bus, dlqTopic, sourceTopic };
  }

  it('lists every record up to the current end, then stops; honours --limit', async () => {
    const { dlqTopic, sourceTopic } = await setup();
    const { result, letters } = await listDeadLetters({ brokers, topic: dlqTopic });
    expect(result).toEqual({ topic: dlqTopic, exists: true, read: 5 });
    expect(letters.filter((l) => l.record)).toHaveLength(4);
    expect(letters.filter((l) => l.invalid)).toHaveLength(1);

    const first = letters.find((l) => l.record?.key === 'user-0');
    expect(first).toBeDefined();
    const line = formatDeadLetter(first!);
    expect(line).toContain('2024-01-01T12:00:00.000Z');
    expect(line).toContain(`${sourceTopic}/0@40`);
    expect(line).toContain('key=user-0');
    expect(line).toContain('invalid_message: content was bad #0');
    expect(line).toContain('value={"v":1,"request_id":"r0"');
    expect(formatDeadLetter(letters.find((l) => l.invalid)!)).toContain('not a DLQ record');
    expect(formatDeadLetter(first!, 20)).toMatch(/value=.{19}…$/);

    const limited = await listDeadLetters({ brokers, topic: dlqTopic, limit: 2 });
    expect(limited.letters).toHaveLength(2);
  });

  it('reports a missing topic as empty instead of waiting for it', async () => {
    const { result, letters } = await listDeadLetters({ brokers, topic: `${uniqueName('none')}.dlq` });
    expect(result.exists).toBe(false);
    expect(letters).toEqual([]);
  });

  it('a dry run publishes nothing; a replay re-publishes original key and value to the source topic', async () => {
    const { bus, dlqTopic, sourceTopic } = await setup();
    const got: BusMessage[] = [];
    const sub = await bus.subscribe({
      groupId: uniqueName('dlq-replay-g'),
      topics: [sourceTopic],
      fromBeginning: true,
      handler: async (m) => void got.push(m),
    });
    cleanup.push(() => sub.close());
    await waitFor(() => sub.ready, { timeoutMs: 30_000 });

    const dryProgress: ReplayProgress[] = [];
    const dry = await replayDeadLetters({
      brokers,
      topic: dlqTopic,
      dryRun: true,
      onProgress: (p) => dryProgress.push(p),
    });
    expect(dry).toMatchObject({
      dryRun: true,
      read: 5,
      replayed: 3,
      skipped: 2,
      byTarget: { [sourceTopic]: 3 },
    });
    expect(dryProgress.filter((p) => p.action === 'would-replay')).toHaveLength(3);
    expect(dryProgress.filter((p) => p.action === 'skipped').map((p) => p.reason)).toEqual(
      expect.arrayContaining([
        expect.stringContaining('not a DLQ record'),
        expect.stringContaining('is a DLQ'),
      ]),
    );

    const summary = await replayDeadLetters({ brokers, topic: dlqTopic });
    expect(summary).toMatchObject({ dryRun: false, read: 5, replayed: 3, skipped: 2 });
    await waitFor(() => got.length >= 3, { timeoutMs: 20_000 });
    // Only the real replay arrived (the dry run published nothing).
    expect(got).toHaveLength(3);
    for (const i of [0, 1, 2]) {
      const original = deadLetter(sourceTopic, i);
      const m = got.find((g) => g.key === original.key);
      expect(m?.value).toBe(original.value);
      expect(m?.headers[REPLAY_HEADER]).toMatch(new RegExp(`^${dlqTopic.replace(/\./g, '\\.')}/\\d+/\\d+$`));
    }

    const one = await replayDeadLetters({ brokers, topic: dlqTopic, limit: 1 });
    expect(one.read).toBe(1);
  });
});
