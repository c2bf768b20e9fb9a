import {
  TOPICS,
  createMemoryBus,
  createMemoryStore,
  createMetrics,
  dlqEventSchema,
  parseEvent,
  responseEventSchema,
  type Bus,
  type BusMessage,
  type DlqEvent,
  type ResponseEvent,
} from '@relay/common';
import { silentLogger, waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAiConsumer, type AiConsumerConfig } from './ai-consumer.js';
import type { ChatMessage } from './history.js';
import { answerTokens, createMockOpenAI, type MockOpenAIOptions } from './mock-openai/index.js';
import { createModelClient, type ModelClient, type ModelClientOptions } from './model-client.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SYSTEM_PROMPT = 'You are a test assistant.';

interface Received {
  event: ResponseEvent;
  headers: Record<string, string>;
}

async function setup(
  options: {
    mock?: MockOpenAIOptions;
    model?: Partial<ModelClientOptions>;
    wrapBus?: (bus: Bus) => Bus;
    onFatal?: (error: Error) => void;
  } = {},
) {
  const mock = createMockOpenAI({ port: 0, ttftMs: 0, tokenMs: 2, ...options.mock });
  const { url } = await mock.start();
  cleanups.push(() => mock.close());

  const memoryBus = createMemoryBus({
    defaultPartitions: 4,
    ...(options.onFatal ? { onFatal: options.onFatal } : {}),
  });
  await memoryBus.connect();
  cleanups.push(() => memoryBus.close());
  const bus = options.wrapBus ? options.wrapBus(memoryBus) : memoryBus;
  const store = createMemoryStore();
  const metrics = createMetrics({ service: 'ai-consumer', instance: 'test', defaultMetrics: false });

  const real = createModelClient({
    apiKey: 'test',
    baseUrl: `${url}/v1`,
    model: 'mock-gpt',
    timeoutMs: 5000,
    retry: { maxRetries: 2, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 5000 },
    breaker: { failureThreshold: 5, cooldownMs: 60_000 },
    logger: silentLogger,
    metrics,
    ...options.model,
  });
  // Records what the model was asked, to check the history that went with each prompt.
  const calls: ChatMessage[][] = [];
  const model: ModelClient = {
    get breakerState() {
      return real.breakerState;
    },
    streamChat: (messages, o) => {
      calls.push(messages);
      return real.streamChat(messages, o);
    },
  };

  const config: AiConsumerConfig = {
    kafka: { partitions: 4 },
    openai: { maxWorkers: 4, systemPrompt: SYSTEM_PROMPT },
    consumer: { deltaFlushMs: 10, historyMaxMessages: 20, historyTtlSeconds: 3600 },
  };
  const consumer = createAiConsumer({ config, logger: silentLogger, metrics, bus, store, model });
  await consumer.start();
  cleanups.push(() => consumer.close());

  const responses: Received[] = [];
  const dlq: DlqEvent[] = [];
  const collect = async (topic: string, onMessage: (m: BusMessage) => void) => {
    const sub = await memoryBus.subscribe({
      groupId: `collector-${topic}`,
      topics: [topic],
      fromBeginning: true,
      handler: async (m) => onMessage(m),
    });
    cleanups.push(() => sub.close());
  };
  await collect(TOPICS.responses, (m) => {
    const parsed = parseEvent(responseEventSchema, m.value);
    if (!parsed.ok) throw new Error(`bad response event: ${parsed.error}`);
    expect(m.key).toBe(parsed.event.userid);
    responses.push({ event: parsed.event, headers: m.headers });
  });
  await collect(TOPICS.incomingDlq, (m) => {
    const parsed = parseEvent(dlqEventSchema, m.value);
    if (!parsed.ok) throw new Error(`bad DLQ event: ${parsed.error}`);
    dlq.push(parsed.event);
  });

  let n = 0;
  const send = async (
    userid: string,
    content: string,
    extra: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) => {
    const request_id = `req-${++n}`;
    const event = {
      v: 1,
      request_id,
      userid,
      content,
      received_at: new Date().toISOString(),
      ...extra,
    };
    await memoryBus.publish(TOPICS.incoming, [{ key: userid, value: JSON.stringify(event), headers }]);
    return request_id;
  };
  const eventsOf = (requestId: string) =>
    responses.filter((r) => r.event.request_id === requestId).map((r) => r.event);
  const finalOf = (requestId: string) =>
    waitFor(() => eventsOf(requestId).find((e) => e.type === 'final' || e.type === 'error'), {
      timeoutMs: 8000,
      message: `final event of ${requestId}`,
    });

  return { mock, bus: memoryBus, store, metrics, consumer, calls, responses, dlq, send, eventsOf, finalOf };
}

describe('ai-consumer (memory bus + memory store + mock model via the openai client)', () => {
  it('streams delta events, then a final event whose content is their concatenation', async () => {
    const t = await setup();
    const id = await t.send(
      'alice',
      'tell me something about relays',
      {},
      {
        correlation_id: 'corr-1',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      },
    );
    const final = await t.finalOf(id);
    if (final.type !== 'final') throw new Error(`expected a final event, got ${final.type}`);
    const events = t.eventsOf(id);
    const deltas = events.flatMap((e) => (e.type === 'delta' ? [e] : []));
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
    expect(deltas.map((d) => d.delta).join('')).toBe(final.content);
    expect(final.content).toBe(answerTokens('tell me something about relays').join(''));
    expect(events.at(-1)).toBe(final);
    expect(final).toMatchObject({ v: 1, userid: 'alice', finish_reason: 'stop', conversation_id: 'default' });
    expect(final.processing_time_ms).toBeGreaterThanOrEqual(0);
    expect(Number.isNaN(Date.parse(final.timestamp))).toBe(false);
    for (const r of t.responses) {
      expect(r.headers).toEqual({
        correlation_id: 'corr-1',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      });
    }
    expect(t.calls[0]).toEqual([
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'user', content: 'tell me something about relays' },
    ]);
    const metrics = await t.metrics.registry.metrics();
    expect(metrics).toMatch(/ai_consumer_requests_total\{outcome="ok"[^}]*\} 1/);
    expect(metrics).not.toMatch(/alice/);
  });

  it('uses the conversation history on the next turn, in order, per conversation', async () => {
    const t = await setup();
    // Sent back to back: the second must wait for the first answer to be in the history.
    const first = await t.send('bob', 'first question');
    const second = await t.send('bob', 'second question');
    const other = await t.send('bob', 'elsewhere', { conversation_id: 'side' });
    const f1 = await t.finalOf(first);
    const f2 = await t.finalOf(second);
    await t.finalOf(other);
    if (f1.type !== 'final' || f2.type !== 'final') throw new Error('expected final events');
    const secondCall = t.calls.find((c) => c.at(-1)?.content === 'second question');
    expect(secondCall).toEqual([
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: f1.content },
      { role: 'user', content: 'second question' },
    ]);
    expect(t.calls.find((c) => c.at(-1)?.content === 'elsewhere')).toHaveLength(2);
    expect(await t.store.listRange('history:bob:default', 0, -1)).toEqual([
      JSON.stringify({ role: 'user', content: 'first question' }),
      JSON.stringify({ role: 'assistant', content: f1.content }),
      JSON.stringify({ role: 'user', content: 'second question' }),
      JSON.stringify({ role: 'assistant', content: f2.content }),
    ]);
  });

  it('sends an invalid event to the DLQ, tells its user, and keeps consuming', async () => {
    const t = await setup();
    await t.bus.publish(TOPICS.incoming, [
      { key: 'carol', value: JSON.stringify({ v: 1, request_id: 'bad-1', userid: 'carol' }) },
      { key: 'carol', value: 'not json at all' },
    ]);
    const error = await t.finalOf('bad-1');
    expect(error).toMatchObject({
      type: 'error',
      userid: 'carol',
      code: 'invalid_message',
      message: 'Invalid message',
    });
    await waitFor(() => t.dlq.length === 2);
    expect(t.dlq[0]).toMatchObject({
      source_topic: TOPICS.incoming,
      key: 'carol',
      error: { code: 'invalid_message' },
    });
    expect(t.dlq[0]?.error.message).toMatch(/content/);
    expect(t.dlq[1]).toMatchObject({
      value: 'not json at all',
      error: { message: 'value is not valid JSON' },
    });
    // Only the first carried an address; the garbage one has nobody to tell.
    expect(t.responses).toHaveLength(1);
    const ok = await t.send('carol', 'still there?');
    expect(await t.finalOf(ok)).toMatchObject({ type: 'final' });
  });

  it('a 400 from the model ends in an upstream_error event, not retried', async () => {
    const t = await setup();
    const id = await t.send('dave', 'please fail [mock:status=400]');
    const error = await t.finalOf(id);
    expect(error).toMatchObject({
      type: 'error',
      code: 'upstream_error',
      message: 'The model provider rejected the request',
    });
    expect(t.mock.stats().requests).toBe(1);
    expect(await t.store.listRange('history:dave:default', 0, -1)).toEqual([]);
  });

  it('a 429 with Retry-After: 1 is retried after about a second, then answered', async () => {
    const t = await setup();
    const started = Date.now();
    const id = await t.send('erin', 'busy? [mock:status=429,retry_after=1,times=1]');
    const final = await t.finalOf(id);
    expect(final.type).toBe('final');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(t.mock.stats().requests).toBe(2);
    expect(await t.metrics.registry.metrics()).toMatch(
      /ai_consumer_model_retries_total\{reason="429"[^}]*\} 1/,
    );
  });

  it('opens the breaker after repeated 500s, then fails fast with upstream_unavailable', async () => {
    const t = await setup({ model: { breaker: { failureThreshold: 5, cooldownMs: 60_000 } } });
    const a = await t.send('frank', 'one [mock:status=500]');
    expect(await t.finalOf(a)).toMatchObject({ type: 'error', code: 'upstream_unavailable' });
    expect(t.mock.stats().requests).toBe(3);
    const b = await t.send('frank', 'two [mock:status=500]');
    expect(await t.finalOf(b)).toMatchObject({ type: 'error', code: 'upstream_unavailable' });
    // The fifth failure opened it; the sixth attempt was refused without a request.
    expect(t.mock.stats().requests).toBe(5);
    const c = await t.send('grace', 'would succeed');
    expect(await t.finalOf(c)).toMatchObject({
      type: 'error',
      code: 'upstream_unavailable',
      message: 'Service temporarily unavailable',
    });
    expect(t.mock.stats().requests).toBe(5);
  });

  it('cancel() ends a generation with the partial content and finish_reason cancelled', async () => {
    const t = await setup({ mock: { tokenMs: 40 } });
    const id = await t.send('heidi', 'a prompt with a long enough answer please');
    await waitFor(() => t.eventsOf(id).some((e) => e.type === 'delta'));
    expect(t.consumer.cancel(id)).toBe(true);
    const final = await t.finalOf(id);
    if (final.type !== 'final') throw new Error('expected a final event');
    expect(final.finish_reason).toBe('cancelled');
    const streamed = t.eventsOf(id).flatMap((e) => (e.type === 'delta' ? [e.delta] : []));
    expect(streamed.join('')).toBe(final.content);
    expect(final.content.length).toBeLessThan(
      answerTokens('a prompt with a long enough answer please').join('').length,
    );
    expect(t.consumer.cancel(id)).toBe(false);
    expect(await t.store.listRange('history:heidi:default', 0, -1)).toEqual([]);
  });

  it('close() waits for the message in hand: its final event is out before close resolves', async () => {
    const published: string[] = [];
    const t = await setup({
      mock: { tokenMs: 20 },
      wrapBus: (bus) => ({
        ...bus,
        publish: async (topic, records) => {
          await bus.publish(topic, records);
          published.push(...records.map((r) => r.value));
        },
      }),
    });
    expect(t.consumer.ready()).toBe(true);
    const id = await t.send('ivan', 'finish me before you go');
    await waitFor(() => t.eventsOf(id).length > 0);
    expect(published.some((v) => v.includes('"type":"final"'))).toBe(false);
    await t.consumer.close();
    expect(t.consumer.ready()).toBe(false);
    expect(published.some((v) => v.includes('"type":"final"'))).toBe(true);
    await t.consumer.close();
  });

  it('a failed publish stops the handler without committing (the bus reports it as fatal)', async () => {
    const onFatal = vi.fn();
    let failResponses = true;
    const t = await setup({
      onFatal,
      wrapBus: (bus) => ({
        ...bus,
        publish: async (topic, records) => {
          if (topic === TOPICS.responses && failResponses) throw new Error('broker unavailable');
          return bus.publish(topic, records);
        },
      }),
    });
    await t.send('judy', 'hello');
    await waitFor(() => onFatal.mock.calls.length === 1);
    expect(String(onFatal.mock.calls[0]?.[0])).toMatch(/broker unavailable/);
    expect(t.consumer.ready()).toBe(false);
    failResponses = false;
  });
});
