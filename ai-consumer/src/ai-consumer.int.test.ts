import {
  REDIS_KEYS,
  createKafkaBus,
  createMetrics,
  createRedisPubSub,
  createRedisStore,
  dlqEventSchema,
  parseEvent,
  responseEventSchema,
  type DlqEvent,
  type ResponseEvent,
} from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAiConsumer, type TopicNames } from './ai-consumer.js';
import { historyKey, type ChatMessage } from './history.js';
import { answerTokens, createMockOpenAI, type MockOpenAIServer } from './mock-openai/index.js';
import { createModelClient, type ModelClient } from './model-client.js';

const brokers = inject('kafkaBrokers').split(',');
const redisUrl = inject('redisUrl');

describe('ai-consumer on real Kafka and Redis', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  const topics: TopicNames = {
    incoming: uniqueName('incoming'),
    responses: uniqueName('responses'),
    incomingDlq: uniqueName('incoming-dlq'),
    responsesDlq: uniqueName('responses-dlq'),
  };
  const fatal: Error[] = [];
  const responses: Array<{ event: ResponseEvent; key: string | null; headers: Record<string, string> }> = [];
  const dlq: DlqEvent[] = [];
  const calls: ChatMessage[][] = [];
  const bus = createKafkaBus({
    brokers,
    clientId: uniqueName('ai-consumer-int'),
    logger: silentLogger,
    onFatal: (e) => fatal.push(e),
    sessionTimeoutMs: 6000,
  });
  const store = createRedisStore({ url: redisUrl, logger: silentLogger });
  const pubsub = createRedisPubSub({ url: redisUrl, logger: silentLogger });
  const userid = uniqueName('user');
  let mock: MockOpenAIServer;
  /** Redis keys the tests made (request states, cancel keys), removed at the end. */
  const keys: string[] = [];

  const eventsOf = (requestId: string) =>
    responses.filter((r) => r.event.request_id === requestId).map((r) => r.event);
  const finalOf = (requestId: string) =>
    waitFor(() => eventsOf(requestId).find((e) => e.type === 'final' || e.type === 'error'), {
      timeoutMs: 30_000,
      message: `final event of ${requestId}`,
    });
  const promptRecord = (requestId: string, content: string, headers: Record<string, string> = {}) => {
    keys.push(REDIS_KEYS.request(userid, requestId), REDIS_KEYS.cancel(userid, requestId));
    const event = { v: 1, request_id: requestId, userid, content, received_at: new Date().toISOString() };
    return { key: userid, value: JSON.stringify(event), headers };
  };
  const send = async (requestId: string, content: string, headers: Record<string, string> = {}) => {
    await bus.publish(topics.incoming, [promptRecord(requestId, content, headers)]);
  };

  beforeAll(async () => {
    mock = createMockOpenAI({ port: 0, ttftMs: 5, tokenMs: 5 });
    const { url } = await mock.start();
    cleanups.push(() => mock.close());
    // For prompts starting with "slow:": slow enough that a cancel lands mid-answer.
    const slowMock = createMockOpenAI({ port: 0, ttftMs: 5, tokenMs: 150 });
    const { url: slowUrl } = await slowMock.start();
    cleanups.push(() => slowMock.close());
    await bus.connect();
    cleanups.push(() => bus.close());
    cleanups.push(() => store.close());
    cleanups.push(() => pubsub.close());
    cleanups.push(() => store.del(historyKey(userid, 'default')));
    cleanups.push(() => Promise.all(keys.map((k) => store.del(k))));

    const metrics = createMetrics({ service: 'ai-consumer', instance: 'int', defaultMetrics: false });
    const clientFor = (baseUrl: string) =>
      createModelClient({
        apiKey: 'test',
        baseUrl: `${baseUrl}/v1`,
        model: 'mock-gpt',
        maxTokens: 256,
        timeoutMs: 10_000,
        retry: { maxRetries: 2, baseDelayMs: 10, maxDelayMs: 100, maxRetryAfterMs: 2000 },
        breaker: { failureThreshold: 5, cooldownMs: 30_000 },
        logger: silentLogger,
        metrics,
      });
    const real = clientFor(url);
    const slow = clientFor(slowUrl);
    const model: ModelClient = {
      get breakerState() {
        return real.breakerState;
      },
      streamChat: (messages, options) => {
        calls.push(messages);
        const client = messages.at(-1)?.content.startsWith('slow:') ? slow : real;
        return client.streamChat(messages, options);
      },
    };
    const consumer = createAiConsumer({
      config: {
        kafka: { partitions: 3 },
        openai: { maxWorkers: 4, systemPrompt: 'You are an integration test.' },
        consumer: { deltaFlushMs: 25, queueUpdateMs: 500, historyMaxMessages: 20, historyTtlSeconds: 600 },
        delivery: { dedupeTtlMs: 600_000 },
        http: { shutdownTimeoutMs: 10_000 },
      },
      logger: silentLogger,
      metrics,
      bus,
      store,
      pubsub,
      model,
      topics,
      groupId: uniqueName('ai-consumer'),
    });
    await consumer.start();
    // Closed before the bus (cleanups run in reverse).
    cleanups.push(() => consumer.close());

    for (const [topic, onValue] of [
      [
        topics.responses,
        (value: string, key: string | null, headers: Record<string, string>) => {
          const parsed = parseEvent(responseEventSchema, value);
          if (!parsed.ok) throw new Error(parsed.error);
          responses.push({ event: parsed.event, key, headers });
        },
      ],
      [
        topics.incomingDlq,
        (value: string) => {
          const parsed = parseEvent(dlqEventSchema, value);
          if (!parsed.ok) throw new Error(parsed.error);
          dlq.push(parsed.event);
        },
      ],
    ] as const) {
      const sub = await bus.subscribe({
        groupId: uniqueName('collector'),
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => onValue(m.value, m.key, m.headers),
      });
      cleanups.push(() => sub.close());
    }
    await waitFor(() => consumer.ready().ready, { timeoutMs: 30_000, message: 'consumer joined its group' });
  });

  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it('answers a prompt with deltas and a final event, and keeps the turn in Redis', async () => {
    const id = uniqueName('req');
    await send(id, 'hello from the integration test', { correlation_id: 'corr-int' });
    const final = await finalOf(id);
    if (final.type !== 'final') throw new Error(`expected a final event, got ${JSON.stringify(final)}`);
    const deltas = eventsOf(id).flatMap((e) => (e.type === 'delta' ? [e] : []));
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
    expect(deltas.map((d) => d.delta).join('')).toBe(final.content);
    expect(final.content).toBe(answerTokens('hello from the integration test').join(''));
    expect(final.processing_time_ms).toBeGreaterThan(0);
    expect(final.finish_reason).toBe('stop');
    for (const r of responses.filter((x) => x.event.request_id === id)) {
      expect(r.key).toBe(userid);
      expect(r.headers.correlation_id).toBe('corr-int');
    }
    await waitFor(async () => (await store.listRange(historyKey(userid, 'default'), 0, -1)).length === 2);
    const ttl = await store.client.pttl(historyKey(userid, 'default'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600_000);
    expect(fatal).toEqual([]);
  });

  it('sends the history with the next turn', async () => {
    const id = uniqueName('req');
    await send(id, 'and a follow-up');
    const final = await finalOf(id);
    expect(final.type).toBe('final');
    const call = calls.find((c) => c.at(-1)?.content === 'and a follow-up');
    expect(call?.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(call?.[1]?.content).toBe('hello from the integration test');
    // The turn is saved after the final is published, as in the test above.
    await waitFor(async () => (await store.listRange(historyKey(userid, 'default'), 0, -1)).length === 4);
  });

  it('routes an invalid event to the DLQ and answers its user with invalid_message', async () => {
    const id = uniqueName('bad');
    await bus.publish(topics.incoming, [
      { key: userid, value: JSON.stringify({ v: 1, request_id: id, userid, content: 42 }) },
    ]);
    expect(await finalOf(id)).toMatchObject({ type: 'error', code: 'invalid_message' });
    const record = await waitFor(() => dlq.find((d) => d.value.includes(id)), { timeoutMs: 30_000 });
    expect(record).toMatchObject({
      source_topic: topics.incoming,
      key: userid,
      error: { code: 'invalid_message' },
    });
    expect(fatal).toEqual([]);
  });

  it('answers a prompt record published twice once: one model call, one final event', async () => {
    const id = uniqueName('req');
    const content = 'answer me once even if Kafka delivers me twice';
    const record = promptRecord(id, content);
    const before = mock.stats().requests;
    // Two records with the same request, as a redelivery after a crash before the commit would be.
    await bus.publish(topics.incoming, [record, record]);
    const final = await finalOf(id);
    expect(final).toMatchObject({ type: 'final', content: answerTokens(content).join('') });
    // A later prompt of the same user is handled after both copies (same key, same partition).
    const next = uniqueName('req');
    await send(next, 'after the duplicate');
    await finalOf(next);
    expect(eventsOf(id).filter((e) => e.type === 'final' || e.type === 'error')).toHaveLength(1);
    expect(eventsOf(id).some((e) => e.type === 'reset')).toBe(false);
    expect(calls.filter((c) => c.at(-1)?.content === content)).toHaveLength(1);
    expect(mock.stats().requests - before).toBe(2);
    expect(await store.get(REDIS_KEYS.request(userid, id))).toBe('done');
    const ttl = await store.client.pttl(REDIS_KEYS.request(userid, id));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600_000);
    expect(fatal).toEqual([]);
  });

  it('a cancel on the Redis channel stops a running generation with its partial answer', async () => {
    const id = uniqueName('req');
    const content = 'slow: cancel me midway please';
    await send(id, content);
    await waitFor(() => eventsOf(id).some((e) => e.type === 'delta'), { timeoutMs: 30_000 });
    const publisher = createRedisPubSub({ url: redisUrl, logger: silentLogger });
    cleanups.push(() => publisher.close());
    await publisher.publish(REDIS_KEYS.cancelChannel, JSON.stringify({ userid, request_id: id }));
    const final = await finalOf(id);
    if (final.type !== 'final') throw new Error(`expected a final event, got ${JSON.stringify(final)}`);
    expect(final.finish_reason).toBe('cancelled');
    expect(final.content.length).toBeLessThan(answerTokens(content).join('').length);
    const deltas = eventsOf(id).flatMap((e) => (e.type === 'delta' ? [e.delta] : []));
    expect(deltas.join('')).toBe(final.content);
    expect(fatal).toEqual([]);
  });
});
