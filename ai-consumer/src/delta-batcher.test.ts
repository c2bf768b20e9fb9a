import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createDeltaBatcher } from './delta-batcher.js';

interface Sent {
  seq: number;
  delta: string;
  at: number;
}

function setup(flushMs = 25, publishMs = 0) {
  const sent: Sent[] = [];
  const onError = vi.fn();
  const batcher = createDeltaBatcher({
    flushMs,
    onError,
    publish: async (seq, delta) => {
      if (publishMs > 0) await new Promise((r) => setTimeout(r, publishMs));
      sent.push({ seq, delta, at: Date.now() });
    },
  });
  return { batcher, sent, onError };
}

describe('delta batcher', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('publishes a token after a quiet spell at once, later ones flushMs after the previous publish', async () => {
    const { batcher, sent } = setup(25);
    batcher.push('Hel');
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual([{ seq: 0, delta: 'Hel', at: 0 }]);
    await vi.advanceTimersByTimeAsync(10);
    batcher.push('lo');
    await vi.advanceTimersByTimeAsync(5);
    batcher.push(' wor');
    await vi.advanceTimersByTimeAsync(9);
    expect(sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent[1]).toEqual({ seq: 1, delta: 'lo wor', at: 25 });
    // Quiet for longer than flushMs: the next token goes out as it arrives.
    await vi.advanceTimersByTimeAsync(100);
    batcher.push('ld');
    await vi.advanceTimersByTimeAsync(0);
    expect(sent[2]).toEqual({ seq: 2, delta: 'ld', at: 125 });
    await batcher.flush();
    expect(sent).toHaveLength(3);
  });

  it('a token stream every 5 ms gives events ≥ flushMs apart, none later than flushMs, same text', async () => {
    const { batcher, sent } = setup(25);
    const tokens = Array.from({ length: 100 }, (_, i) => `t${i} `);
    const pushedAt: number[] = [];
    for (const t of tokens) {
      batcher.push(t);
      pushedAt.push(Date.now());
      await vi.advanceTimersByTimeAsync(5);
    }
    await batcher.flush();
    expect(sent.map((s) => s.delta).join('')).toBe(tokens.join(''));
    expect(sent.map((s) => s.seq)).toEqual(sent.map((_, i) => i));
    for (let i = 1; i < sent.length - 1; i++) {
      expect((sent[i]?.at ?? 0) - (sent[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(25);
    }
    // The oldest token of every event waited at most 25 ms.
    const startOf: number[] = [];
    tokens.reduce((offset, t) => (startOf.push(offset), offset + t.length), 0);
    let offset = 0;
    for (const event of sent) {
      const oldest = startOf.findLastIndex((start) => start <= offset);
      expect(event.at - (pushedAt[oldest] ?? Number.NaN)).toBeLessThanOrEqual(25);
      offset += event.delta.length;
    }
    expect(sent.length).toBeLessThan(30);
  });

  it('with flushMs 0 every token is its own event', async () => {
    const { batcher, sent } = setup(0);
    batcher.push('a');
    batcher.push('b');
    batcher.push('c');
    await batcher.flush();
    // 'a' went out at once; 'b' and 'c' waited for it, so they share the next event.
    expect(sent.map((s) => s.delta)).toEqual(['a', 'bc']);
  });

  it('never overlaps publishes: a slow broker gets fewer, larger events', async () => {
    const { batcher, sent } = setup(25, 100);
    for (let i = 0; i < 40; i++) {
      batcher.push(`${i},`);
      await vi.advanceTimersByTimeAsync(5);
    }
    const flushed = batcher.flush();
    await vi.advanceTimersByTimeAsync(1000);
    await flushed;
    expect(sent.map((s) => s.delta).join('')).toBe(Array.from({ length: 40 }, (_, i) => `${i},`).join(''));
    expect(sent.length).toBeLessThanOrEqual(4);
  });

  it('ignores empty pushes and flush() with nothing buffered', async () => {
    const { batcher, sent } = setup(25);
    batcher.push('');
    await batcher.flush();
    expect(sent).toEqual([]);
    expect(batcher.published).toBe(0);
  });

  it('reports the first publish failure, drops later tokens, and flush() rejects', async () => {
    const onError = vi.fn();
    let calls = 0;
    const batcher = createDeltaBatcher({
      flushMs: 25,
      onError,
      publish: async () => {
        calls++;
        throw new Error('broker down');
      },
    });
    batcher.push('a');
    await vi.advanceTimersByTimeAsync(25);
    expect(onError).toHaveBeenCalledTimes(1);
    batcher.push('b');
    await vi.advanceTimersByTimeAsync(100);
    await expect(batcher.flush()).rejects.toThrow('broker down');
    expect(calls).toBe(1);
  });
});
