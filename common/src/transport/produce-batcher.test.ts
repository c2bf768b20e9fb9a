import { describe, expect, it } from 'vitest';
import { createProduceBatcher, type TopicBatch } from './produce-batcher.js';

function recorder(outcome: () => Promise<void> = () => Promise.resolve()) {
  const sent: Array<Array<TopicBatch<string>>> = [];
  const batcher = createProduceBatcher<string>({
    lingerMs: 0,
    send: (batch) => {
      sent.push(batch);
      return outcome();
    },
  });
  return { sent, batcher };
}

describe('produce batcher', () => {
  it('sends the publishes of one event-loop turn as one batch, in the order they were added', async () => {
    const { sent, batcher } = recorder();
    await Promise.all([batcher.add('a', ['a1']), batcher.add('b', ['b1']), batcher.add('a', ['a2', 'a3'])]);
    expect(sent).toEqual([
      [
        { topic: 'a', messages: ['a1', 'a2', 'a3'] },
        { topic: 'b', messages: ['b1'] },
      ],
    ]);
  });

  it('starts a new batch for publishes after the flush', async () => {
    const { sent, batcher } = recorder();
    await batcher.add('a', ['1']);
    await batcher.add('a', ['2']);
    expect(sent.map((b) => b[0]?.messages)).toEqual([['1'], ['2']]);
  });

  it('rejects every caller of a failed batch, and only those', async () => {
    let fail = true;
    const { batcher } = recorder(() => (fail ? Promise.reject(new Error('broker down')) : Promise.resolve()));
    const first = [batcher.add('a', ['1']), batcher.add('a', ['2'])];
    await expect(
      Promise.all(
        first.map((p) =>
          p.then(
            () => 'ok',
            (e: Error) => e.message,
          ),
        ),
      ),
    ).resolves.toEqual(['broker down', 'broker down']);
    fail = false;
    await expect(batcher.add('a', ['3'])).resolves.toBeUndefined();
  });

  it('waits lingerMs for company when asked to', async () => {
    const sent: Array<Array<TopicBatch<number>>> = [];
    const batcher = createProduceBatcher<number>({
      lingerMs: 20,
      send: (batch) => {
        sent.push(batch);
        return Promise.resolve();
      },
    });
    const first = batcher.add('t', [1]);
    await new Promise((r) => setTimeout(r, 5));
    const second = batcher.add('t', [2]);
    await Promise.all([first, second]);
    expect(sent).toEqual([[{ topic: 't', messages: [1, 2] }]]);
  });
});

describe('produce batcher size bound', () => {
  it('sends a batch as soon as it reaches maxBatchBytes, and the rest of the turn in the next one', async () => {
    const sent: Array<Array<TopicBatch<string>>> = [];
    const batcher = createProduceBatcher<string>({
      lingerMs: 0,
      maxBatchBytes: 10,
      sizeOf: (m) => m.length,
      send: (batch) => {
        sent.push(batch);
        return Promise.resolve();
      },
    });
    const adds = [batcher.add('t', ['aaaa']), batcher.add('t', ['bbbbbb']), batcher.add('t', ['cc'])];
    // The first two reached 10 bytes: already on their way, before the turn ended.
    expect(sent).toEqual([[{ topic: 't', messages: ['aaaa', 'bbbbbb'] }]]);
    await Promise.all(adds);
    expect(sent).toEqual([
      [{ topic: 't', messages: ['aaaa', 'bbbbbb'] }],
      [{ topic: 't', messages: ['cc'] }],
    ]);
  });
});
