/**
 * Queue positions through a whole ai-consumer: the in-process bus (the same lane scheduler as the
 * Kafka subscription), MAX_WORKERS = 1, and a model whose calls end when the test says so.
 */
import { createMetrics, type ResponseEvent } from '@relay/common';
import { waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { ModelClient } from './model-client.js';
import { startConsumerHarness } from './testing/consumer-harness.js';

/** A model that streams two tokens per call and finishes a call only when released. */
function gatedModel() {
  const started: string[] = [];
  const releases = new Map<string, () => void>();
  const model: ModelClient = {
    breakerState: 'closed',
    async streamChat(messages, options) {
      const content = messages.at(-1)?.content ?? '';
      started.push(content);
      await new Promise<void>((resolve) => releases.set(content, resolve));
      options.onDelta?.('Echo: ');
      options.onDelta?.(content);
      return { content: `Echo: ${content}`, finishReason: 'stop', attempts: 1, model: 'gated' };
    },
  };
  const release = (content: string) => {
    const open = releases.get(content);
    if (!open) throw new Error(`no call for ${content} is waiting`);
    open();
  };
  return { model, started, release };
}

const types = (events: ResponseEvent[]) => events.map((e) => e.type);

describe('queue positions from the ai-consumer', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(queueUpdateMs: number) {
    const gated = gatedModel();
    const metrics = createMetrics({ service: 'ai-consumer', instance: 'test', defaultMetrics: false });
    const h = await startConsumerHarness({
      model: gated.model,
      metrics,
      maxWorkers: 1,
      queueUpdateMs,
      cleanup: (close) => cleanups.push(close),
    });
    return { ...h, ...gated };
  }

  it('tells a waiting streaming prompt its position until it starts, then streams; others hear nothing', async () => {
    const h = await start(20);
    const running = await h.send('alice', 'first');
    await waitFor(() => h.started.length === 1);
    // The original protocol (stream: false) waits too, and counts as ahead, but is never told.
    const plain = await h.send('carol', 'second', { stream: false });
    const streaming = await h.send('bob', 'third', { stream: true });
    await waitFor(() => h.eventsOf(streaming).some((e) => e.type === 'queued'), { message: 'bob queued' });
    expect(h.eventsOf(streaming)).toEqual([
      { v: 1, type: 'queued', request_id: streaming, userid: 'bob', position: 1 },
    ]);

    h.release('first');
    await waitFor(() => h.started.length === 2);
    await waitFor(() => h.eventsOf(streaming).length === 2, { message: 'bob moved up' });
    expect(h.eventsOf(streaming)[1]).toMatchObject({ type: 'queued', position: 0 });

    h.release('second');
    await waitFor(() => h.started.length === 3);
    h.release('third');
    const final = await h.answerOf(streaming);
    expect(final.content).toBe('Echo: third');
    const events = h.eventsOf(streaming);
    // Positions only before the first delta; the deltas add up to the answer.
    expect(types(events)).toEqual(['queued', 'queued', 'delta', 'delta', 'final']);
    expect(
      events
        .filter((e) => e.type === 'delta')
        .map((e) => (e.type === 'delta' ? e.delta : ''))
        .join(''),
    ).toBe(final.content);

    await h.answerOf(plain);
    // alice found a free worker: no queued event; carol does not stream: none either.
    expect(types(h.eventsOf(running))).not.toContain('queued');
    expect(types(h.eventsOf(plain))).toEqual(['final']);
  });

  it('counts the user’s own earlier prompt, waiting behind their running one', async () => {
    const h = await start(20);
    await h.send('alice', 'one');
    await waitFor(() => h.started.length === 1);
    const second = await h.send('alice', 'two');
    const third = await h.send('alice', 'three');
    await waitFor(() => h.eventsOf(third).some((e) => e.type === 'queued'));
    expect(h.eventsOf(second)).toMatchObject([{ type: 'queued', position: 0 }]);
    expect(h.eventsOf(third)).toMatchObject([{ type: 'queued', position: 1 }]);
    for (const content of ['one', 'two', 'three']) {
      await waitFor(() => h.started.includes(content));
      h.release(content);
    }
    await h.answerOf(third);
    expect(types(h.eventsOf(third))).toEqual(['queued', 'queued', 'delta', 'delta', 'final']);
  });

  it('sends no positions with QUEUE_UPDATE_MS=0', async () => {
    const h = await start(0);
    await h.send('alice', 'first');
    await waitFor(() => h.started.length === 1);
    const waiting = await h.send('bob', 'second');
    // Long enough for a round at any interval the other tests use.
    await new Promise((resolve) => setTimeout(resolve, 100));
    h.release('first');
    await waitFor(() => h.started.length === 2);
    h.release('second');
    await h.answerOf(waiting);
    expect(types(h.eventsOf(waiting))).toEqual(['delta', 'delta', 'final']);
  });
});
