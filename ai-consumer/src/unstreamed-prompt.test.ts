/**
 * A prompt no socket streams (`stream: false`, docs/delivery.md) through a whole ai-consumer on the
 * in-process bus and store: the model port is asked without streaming, and its usage is what the
 * daily budgets count.
 */
import { REDIS_KEYS, createMetrics, utcDay } from '@relay/common';
import { afterEach, describe, expect, it } from 'vitest';
import type { ModelClient, StreamChatOptions } from './model-client.js';
import { startConsumerHarness } from './testing/consumer-harness.js';

/** Answers "Echo: <prompt>" with a fixed usage, streamed as two deltas unless asked not to. */
function echoModel() {
  const asked: StreamChatOptions[] = [];
  const model: ModelClient = {
    breakerState: 'closed',
    async streamChat(messages, options) {
      asked.push(options);
      const content = `Echo: ${messages.at(-1)?.content ?? ''}`;
      if (options.stream !== false) {
        options.onDelta?.('Echo: ');
        options.onDelta?.(content.slice('Echo: '.length));
      }
      return {
        content,
        finishReason: 'stop',
        usage: { promptTokens: 40, completionTokens: 2 },
        attempts: 1,
        model: 'echo',
      };
    },
  };
  return { model, asked };
}

describe('ai-consumer: prompts nobody streams', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('asks the model without streaming, publishes the final only, and spends its usage', async () => {
    const echo = echoModel();
    const metrics = createMetrics({ service: 'ai-consumer', instance: 'test', defaultMetrics: false });
    const h = await startConsumerHarness({
      model: echo.model,
      metrics,
      cleanup: (close) => cleanups.push(close),
    });
    const budget = { user: 10_000, site: 10_000 };
    const plain = await h.send('ann', 'quietly', { stream: false, site: 'acme', budget });
    expect(await h.answerOf(plain)).toMatchObject({
      content: 'Echo: quietly',
      finish_reason: 'stop',
      model: 'echo',
    });
    expect(h.eventsOf(plain).map((e) => e.type)).toEqual(['final']);
    expect(echo.asked.map((o) => o.stream)).toEqual([false]);

    const streamed = await h.send('bob', 'loudly', { site: 'acme', budget });
    await h.answerOf(streamed);
    expect(h.eventsOf(streamed).some((e) => e.type === 'delta')).toBe(true);
    expect(echo.asked.map((o) => o.stream)).toEqual([false, true]);

    const day = utcDay(Date.now());
    expect(await h.store.get(REDIS_KEYS.userBudget('ann', day))).toBe('42');
    expect(await h.store.get(REDIS_KEYS.siteBudget('acme', day))).toBe('84');
    // A first token only the streamed call had.
    expect(await metrics.registry.getSingleMetricAsString('ai_consumer_time_to_first_token_seconds')).toMatch(
      /_count\{[^}]*\} 1$/m,
    );
  });
});
