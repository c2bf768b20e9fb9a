import {
  REDIS_KEYS,
  TOPICS,
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  dlqEventSchema,
  parseEvent,
  promptEventSchema,
  responseEventSchema,
  type Bus,
  type BusMessage,
  type DlqEvent,
  type ResponseEvent,
  type Tracer,
  utcDay,
} from '@relay/common';
import { createRecordingTracer, silentLogger, waitFor } from '@relay/common/testing';
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
    /** @default 4 */
    maxWorkers?: number;
    /** @default 10000 */
    shutdownTimeoutMs?: number;
    /** Around the model the consumer calls (fault injection). */
    wrapModel?: (model: ModelClient) => ModelClient;
    tracer?: Tracer;
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
  const hub = createMemoryPubSubHub();
  // The consumer's connection and the one a gateway would publish cancels on.
  const consumerPubsub = hub.client();
  const gatewayPubsub = hub.client();
  cleanups.push(() => consumerPubsub.close());
  cleanups.push(() => gatewayPubsub.close());
  const metrics = createMetrics({ service: 'ai-consumer', instance: 'test', defaultMetrics: false });

  const real = createModelClient({
    apiKey: 'test',
    baseUrl: `${url}/v1`,
    model: 'mock-gpt',
    maxTokens: 256,
    timeoutMs: 5000,
    retry: { maxRetries: 2, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 5000 },
    breaker: { failureThreshold: 5, cooldownMs: 60_000 },
    logger: silentLogger,
    metrics,
    ...options.model,
  });
  // Records what the model was asked, to check the history that went with each prompt.
  const calls: ChatMessage[][] = [];
  const recording: ModelClient = {
    get breakerState() {
      return real.breakerState;
    },
    streamChat: (messages, o) => {
      calls.push(messages);
      return real.streamChat(messages, o);
    },
  };
  const model = options.wrapModel ? options.wrapModel(recording) : recording;

  const config: AiConsumerConfig = {
    kafka: { partitions: 4 },
    openai: { maxWorkers: options.maxWorkers ?? 4, systemPrompt: SYSTEM_PROMPT, model: 'mock-gpt' },
    consumer: { deltaFlushMs: 10, queueUpdateMs: 500, historyMaxMessages: 20, historyTtlSeconds: 3600 },
    delivery: { dedupeTtlMs: 3_600_000 },
    http: { shutdownTimeoutMs: options.shutdownTimeoutMs ?? 10_000 },
  };
  /** A consumer of the same group on the same bus and store (another process, after a restart). */
  const makeConsumer = async (overrides: Partial<AiConsumerConfig> = {}) => {
    const made = createAiConsumer({
      config: { ...config, ...overrides },
      logger: silentLogger,
      metrics,
      bus,
      store,
      pubsub: consumerPubsub,
      model,
      ...(options.tracer ? { tracer: options.tracer } : {}),
    });
    await made.start();
    cleanups.push(() => made.close());
    return made;
  };
  const consumer = await makeConsumer();

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
  /** Publishes the prompt record a gateway would; `extra` may fix the `request_id` (a redelivery). */
  const send = async (
    userid: string,
    content: string,
    extra: { request_id?: string } & Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) => {
    const request_id = extra.request_id ?? `req-${++n}`;
    const event = {
      v: 1,
      userid,
      content,
      received_at: new Date().toISOString(),
      ...extra,
      request_id,
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

  /** What a gateway does on a client's `cancel` (docs/delivery.md), either half of it. */
  const cancelByKey = (userid: string, requestId: string) =>
    store.set(REDIS_KEYS.cancel(userid, requestId), '1', { ttlMs: 600_000 });
  const cancelByChannel = (userid: string, requestId: string) =>
    gatewayPubsub.publish(REDIS_KEYS.cancelChannel, JSON.stringify({ userid, request_id: requestId }));
  /** Model calls whose prompt (the last message) was `content`. */
  const callsFor = (content: string) => calls.filter((c) => c.at(-1)?.content === content).length;

  return {
    mock,
    bus: memoryBus,
    store,
    metrics,
    consumer,
    makeConsumer,
    calls,
    callsFor,
    responses,
    dlq,
    send,
    eventsOf,
    finalOf,
    cancelByKey,
    cancelByChannel,
    gatewayPubsub,
  };
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

  it('traces a prompt: process → queue waits, chat (first_token), one deltas publish, the final publish', async () => {
    const recording = createRecordingTracer('ai-consumer');
    cleanups.push(() => recording.close());
    const t = await setup({ tracer: recording.tracer });
    const gatewaySpan = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' };
    const id = await t.send(
      'tracy',
      'trace me',
      {},
      { correlation_id: 'c-1', traceparent: `00-${gatewaySpan.traceId}-${gatewaySpan.spanId}-01` },
    );
    await t.finalOf(id);
    await waitFor(() => recording.spans().some((s) => s.name === 'incoming_messages process'));
    const spans = recording.spans();
    const one = (name: string) => {
      const found = spans.filter((s) => s.name === name);
      expect(found, name).toHaveLength(1);
      return found[0] as (typeof spans)[number];
    };
    const processing = one('incoming_messages process');
    expect(processing).toMatchObject({
      kind: 'consumer',
      traceId: gatewaySpan.traceId,
      parentSpanId: gatewaySpan.spanId,
      attributes: { 'relay.request_id': id, 'relay.outcome': 'ok', 'messaging.system': 'kafka' },
    });
    for (const name of ['user queue wait', 'model slot wait', 'chat mock-gpt']) {
      expect(one(name).parentSpanId, name).toBe(processing.spanId);
    }
    expect(one('chat mock-gpt')).toMatchObject({
      kind: 'client',
      events: ['first_token'],
      attributes: { 'gen_ai.request.model': 'mock-gpt', 'gen_ai.response.finish_reasons': 'stop' },
    });
    const publishes = spans.filter((s) => s.name === 'responses publish');
    expect(publishes.map((s) => [s.attributes['relay.event_type'], s.parentSpanId])).toEqual([
      ['delta', processing.spanId],
      ['final', processing.spanId],
    ]);
    const deltaEvents = t.responses.filter((r) => r.event.type === 'delta');
    expect(publishes[0]?.attributes['messaging.batch.message_count']).toBe(deltaEvents.length);
    // Every record carries the context of the span it was published under.
    const contextOf = (s: (typeof spans)[number] | undefined) => `00-${s?.traceId}-${s?.spanId}-01`;
    for (const r of t.responses) {
      expect(r.headers).toEqual({
        correlation_id: 'c-1',
        traceparent: contextOf(r.event.type === 'delta' ? publishes[0] : publishes[1]),
      });
    }
  });

  it('publishes no delta events for a prompt no streaming socket asked for, only the whole final', async () => {
    const t = await setup();
    const plain = await t.send('erin', 'no streaming please', { stream: false });
    const streamed = await t.send('erin', 'no streaming please');
    const [a, b] = [await t.finalOf(plain), await t.finalOf(streamed)];
    expect(t.eventsOf(plain).map((e) => e.type)).toEqual(['final']);
    expect(t.eventsOf(streamed).filter((e) => e.type === 'delta').length).toBeGreaterThan(0);
    expect(a.type === 'final' && b.type === 'final' && a.content === b.content).toBe(true);
    // The plain one was asked for as one chat.completion, the other as SSE.
    expect(t.mock.stats()).toMatchObject({ completions: 2, streamed: 1 });
  });

  it('a prompt nobody streams: one non-streamed call, the same final and usage, no TTFT observed', async () => {
    const t = await setup();
    const budget = { user: 1_000_000, site: 0 };
    const plain = await t.send('ivan', 'count my tokens', { stream: false, budget });
    const a = await t.finalOf(plain);
    expect(t.mock.stats()).toMatchObject({ completions: 1, streamed: 0 });
    const streamed = await t.send('judy', 'count my tokens', { budget });
    const b = await t.finalOf(streamed);
    // The final frame is the same, but for who asked and when.
    const frame = (e: ResponseEvent) =>
      e.type === 'final' ? { ...e, request_id: '', userid: '', timestamp: '', processing_time_ms: 0 } : e;
    const sameA = frame(a);
    expect(sameA).toEqual(frame(b));
    expect(sameA).toMatchObject({ finish_reason: 'stop', model: 'mock-gpt' });
    // Both spent the provider's usage (not the four-characters estimate), and the same.
    const day = utcDay(Date.now());
    const spent = Number(await t.store.get(REDIS_KEYS.userBudget('ivan', day)));
    expect(spent).toBe(Number(await t.store.get(REDIS_KEYS.userBudget('judy', day))));
    expect(spent).toBeGreaterThan(answerTokens('count my tokens').length);
    // Only the streamed call has a first token to time.
    expect(
      await t.metrics.registry.getSingleMetricAsString('ai_consumer_time_to_first_token_seconds'),
    ).toMatch(/ai_consumer_time_to_first_token_seconds_count\{[^}]*\} 1$/m);
  });

  it('a cancel of a non-streamed call aborts the request: final cancelled, empty, nothing kept', async () => {
    const t = await setup({ mock: { ttftMs: 3000 } });
    const id = await t.send('kim', 'a question answered slowly', { stream: false });
    await waitFor(() => t.mock.stats().requests === 1, { message: 'model request sent' });
    await t.cancelByChannel('kim', id);
    const final = await t.finalOf(id);
    expect(final).toMatchObject({
      type: 'final',
      content: '',
      finish_reason: 'cancelled',
      model: 'mock-gpt',
    });
    expect(t.eventsOf(id)).toEqual([final]);
    await waitFor(() => t.mock.stats().aborted === 1, { message: 'the HTTP request aborted' });
    expect(t.mock.stats()).toMatchObject({ requests: 1, streamed: 0 });
    expect(await t.store.listRange('history:kim:default', 0, -1)).toEqual([]);
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
    // Each turn says which request it came from and when (the history API shows both).
    const [firstTurn] = (await t.store.listRange('history:bob:default', 0, 0)).map(
      (e) => JSON.parse(e) as unknown,
    );
    expect(firstTurn).toMatchObject({
      request_id: expect.any(String),
      time: expect.stringMatching(/^\d{4}-/),
    });
    const index = await t.store.listRange('conversations:bob', 0, -1);
    expect(index.map((e) => (JSON.parse(e) as { conversation_id: string }).conversation_id)).toEqual(
      expect.arrayContaining(['default']),
    );
    expect(
      (await t.store.listRange('history:bob:default', 0, -1)).map((e) => JSON.parse(e) as unknown),
    ).toEqual([
      expect.objectContaining({ role: 'user', content: 'first question' }),
      expect.objectContaining({ role: 'assistant', content: f1.content }),
      expect.objectContaining({ role: 'user', content: 'second question' }),
      expect.objectContaining({ role: 'assistant', content: f2.content }),
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

  it('a bug met on one prompt ends it with internal_error and a DLQ record; the consumer goes on', async () => {
    const fatal = vi.fn();
    const t = await setup({
      onFatal: fatal,
      // A result that throws where the consumer reads it, outside every try of the answer path.
      wrapModel: (inner) => ({
        get breakerState() {
          return inner.breakerState;
        },
        async streamChat(messages, o) {
          const result = await inner.streamChat(messages, o);
          if (messages.at(-1)?.content !== 'poison') return result;
          return Object.defineProperty({ ...result }, 'content', {
            get: () => {
              throw new TypeError('adapter bug');
            },
          });
        },
      }),
    });
    const bad = await t.send('dave', 'poison');
    expect(await t.finalOf(bad)).toMatchObject({ type: 'error', code: 'internal_error', userid: 'dave' });
    await waitFor(() => t.dlq.length === 1);
    expect(t.dlq[0]).toMatchObject({ error: { code: 'internal_error' } });
    expect(t.dlq[0]?.error.message).toMatch(/adapter bug/);
    const ok = await t.send('dave', 'and now?');
    expect(await t.finalOf(ok)).toMatchObject({ type: 'final' });
    expect(fatal).not.toHaveBeenCalled();
    expect(t.consumer.ready().ready).toBe(true);
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
    // Not retryable, so failed for good: the prompt goes to the DLQ for an operator.
    const record = await waitFor(() => t.dlq.find((d) => d.value.includes(id)));
    expect(record.error.code).toBe('upstream_error');
    expect(await t.store.get(REDIS_KEYS.request('dave', id))).toBe('done');
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
    // Request ids are client-chosen: the same id of another user is another request.
    expect(t.consumer.cancel({ userid: 'mallory', request_id: id })).toBe(false);
    expect(t.consumer.cancel({ userid: 'heidi', request_id: id })).toBe(true);
    const final = await t.finalOf(id);
    if (final.type !== 'final') throw new Error('expected a final event');
    expect(final.finish_reason).toBe('cancelled');
    const streamed = t.eventsOf(id).flatMap((e) => (e.type === 'delta' ? [e.delta] : []));
    expect(streamed.join('')).toBe(final.content);
    expect(final.content.length).toBeLessThan(
      answerTokens('a prompt with a long enough answer please').join('').length,
    );
    expect(t.consumer.cancel({ userid: 'heidi', request_id: id })).toBe(false);
    expect(
      (await t.store.listRange('history:heidi:default', 0, -1)).map((e) => JSON.parse(e) as unknown),
    ).toEqual([
      expect.objectContaining({ role: 'user', content: 'a prompt with a long enough answer please' }),
      expect.objectContaining({ role: 'assistant', content: final.content }),
    ]);
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
    expect(t.consumer.ready().ready).toBe(true);
    const id = await t.send('ivan', 'finish me before you go');
    await waitFor(() => t.eventsOf(id).length > 0);
    expect(published.some((v) => v.includes('"type":"final"'))).toBe(false);
    await t.consumer.close();
    expect(t.consumer.ready().ready).toBe(false);
    expect(published.some((v) => v.includes('"type":"final"'))).toBe(true);
    await t.consumer.close();
  });

  it('a refused publish is retried until the broker takes it: no crash, the answer arrives after', async () => {
    const onFatal = vi.fn();
    let refused = 0;
    let failResponses = true;
    const t = await setup({
      onFatal,
      wrapBus: (bus) => ({
        ...bus,
        publish: async (topic, records) => {
          if (topic === TOPICS.responses && failResponses) {
            refused++;
            throw new Error('broker unavailable');
          }
          return bus.publish(topic, records);
        },
      }),
    });
    const id = await t.send('judy', 'hello');
    // A broker restart: several refusals while the handler holds the message (uncommitted).
    await waitFor(() => refused >= 3);
    expect(t.eventsOf(id)).toEqual([]);
    expect(t.consumer.ready().ready).toBe(true);
    failResponses = false;
    expect(await t.finalOf(id)).toMatchObject({ type: 'final' });
    expect(onFatal).not.toHaveBeenCalled();
  });
});

describe('ai-consumer delivery guarantees (docs/delivery.md)', () => {
  /** Deltas of a request after its last reset: what a client shows, and what the final must equal. */
  const deltasAfterReset = (events: ResponseEvent[]) => {
    const from = events.findLastIndex((e) => e.type === 'reset') + 1;
    return events.slice(from).flatMap((e) => (e.type === 'delta' ? [e] : []));
  };

  it('a prompt whose request state is done calls nothing and publishes nothing', async () => {
    const t = await setup();
    await t.store.set(REDIS_KEYS.request('kim', 'answered-1'), 'done', { ttlMs: 60_000 });
    await t.send('kim', 'answered already', { request_id: 'answered-1' });
    // Same user, so handled strictly after the first: once it is answered, the first was handled.
    const next = await t.send('kim', 'a new question');
    expect(await t.finalOf(next)).toMatchObject({ type: 'final' });
    expect(t.eventsOf('answered-1')).toEqual([]);
    expect(t.callsFor('answered already')).toBe(0);
    expect(t.mock.stats().requests).toBe(1);
    expect(await t.metrics.registry.metrics()).toMatch(
      /ai_consumer_redelivered_requests_total\{state="done"[^}]*\} 1/,
    );
  });

  it('a prompt whose request state is running is reset and generated again from seq 0', async () => {
    const t = await setup();
    await t.store.set(REDIS_KEYS.request('liam', 'crashed-1'), 'running', { ttlMs: 60_000 });
    await t.send('liam', 'the consumer died while answering this', { request_id: 'crashed-1' });
    const final = await t.finalOf('crashed-1');
    if (final.type !== 'final') throw new Error(`expected a final event, got ${final.type}`);
    const events = t.eventsOf('crashed-1');
    expect(events[0]).toEqual({ v: 1, type: 'reset', request_id: 'crashed-1', userid: 'liam' });
    const deltas = deltasAfterReset(events);
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
    expect(deltas.map((d) => d.delta).join('')).toBe(final.content);
    expect(final.content).toBe(answerTokens('the consumer died while answering this').join(''));
    expect(events.filter((e) => e.type === 'reset')).toHaveLength(1);
    expect(await t.store.get(REDIS_KEYS.request('liam', 'crashed-1'))).toBe('done');
  });

  it('the same prompt delivered twice in a row is answered once', async () => {
    const t = await setup();
    await t.send('mia', 'only once please', { request_id: 'dup-1' });
    await t.send('mia', 'only once please', { request_id: 'dup-1' });
    const next = await t.send('mia', 'and then this');
    await t.finalOf(next);
    expect(t.callsFor('only once please')).toBe(1);
    expect(t.eventsOf('dup-1').filter((e) => e.type === 'final')).toHaveLength(1);
    expect(t.eventsOf('dup-1').some((e) => e.type === 'reset')).toBe(false);
    // The history holds the turn once, so the next call saw it once.
    expect(t.calls.find((c) => c.at(-1)?.content === 'and then this')).toHaveLength(4);
  });

  it('exhausted retries end in an error event and a DLQ record of the original prompt', async () => {
    const t = await setup();
    const id = await t.send('noah', 'always failing [mock:status=500]', {}, { correlation_id: 'corr-dlq' });
    expect(await t.finalOf(id)).toMatchObject({ type: 'error', code: 'upstream_unavailable' });
    expect(t.mock.stats().requests).toBe(3);
    const record = await waitFor(() => t.dlq.find((d) => d.value.includes(id)));
    expect(record).toMatchObject({
      v: 1,
      source_topic: TOPICS.incoming,
      key: 'noah',
      error: { code: 'upstream_unavailable' },
    });
    // The original record, unchanged, so `dlq replay` can publish it again.
    expect(parseEvent(promptEventSchema, record.value)).toMatchObject({
      ok: true,
      event: { request_id: id, userid: 'noah', content: 'always failing [mock:status=500]' },
    });
    // The operator sees why (the provider's 500), not only the catalog message.
    expect(record.error.message).toMatch(/^Service temporarily unavailable: .*500/);
    expect(await t.metrics.registry.metrics()).toMatch(
      /ai_consumer_dlq_messages_total\{reason="upstream_unavailable"[^}]*\} 1/,
    );
    expect(await t.store.get(REDIS_KEYS.request('noah', id))).toBe('done');
  });

  it('a cancel key set before the request starts: final cancelled, empty, no model call', async () => {
    const t = await setup();
    await t.cancelByKey('olga', 'cancel-early');
    await t.send('olga', 'never mind', { request_id: 'cancel-early' });
    const final = await t.finalOf('cancel-early');
    expect(final).toMatchObject({ type: 'final', content: '', finish_reason: 'cancelled' });
    expect(t.eventsOf('cancel-early')).toEqual([final]);
    expect(t.calls).toEqual([]);
    expect(t.mock.stats().requests).toBe(0);
    expect(await t.store.get(REDIS_KEYS.request('olga', 'cancel-early'))).toBe('done');
    // Nothing was answered, so nothing joins the conversation.
    expect(await t.store.listRange('history:olga:default', 0, -1)).toEqual([]);
  });

  it('a cancel on the channel stops a generation; the partial answer is final and kept in history', async () => {
    const t = await setup({ mock: { tokenMs: 40 } });
    const prompt = 'a prompt with a long enough answer to cancel midway';
    const id = await t.send('paul', prompt);
    await waitFor(() => t.eventsOf(id).some((e) => e.type === 'delta'));
    // Garbage on the channel is ignored, and a cancel for another user's request of the same id too.
    await t.gatewayPubsub.publish(REDIS_KEYS.cancelChannel, 'not json');
    await t.gatewayPubsub.publish(REDIS_KEYS.cancelChannel, JSON.stringify({ request_id: id }));
    await t.cancelByChannel('someone-else', id);
    await t.cancelByChannel('paul', id);
    const final = await t.finalOf(id);
    if (final.type !== 'final') throw new Error(`expected a final event, got ${final.type}`);
    expect(final.finish_reason).toBe('cancelled');
    expect(final.content.length).toBeGreaterThan(0);
    expect(final.content.length).toBeLessThan(answerTokens(prompt).join('').length);
    const deltas = t.eventsOf(id).flatMap((e) => (e.type === 'delta' ? [e.delta] : []));
    expect(deltas.join('')).toBe(final.content);
    expect(
      (await t.store.listRange('history:paul:default', 0, -1)).map((e) => JSON.parse(e) as unknown),
    ).toEqual([
      expect.objectContaining({ role: 'user', content: prompt }),
      expect.objectContaining({ role: 'assistant', content: final.content }),
    ]);
    expect(await t.metrics.registry.metrics()).toMatch(
      /ai_consumer_requests_total\{outcome="cancelled"[^}]*\} 1/,
    );
  });

  it('a request cancelled while it waits behind a busy worker never reaches the model', async () => {
    // One worker: the second user's request waits behind the first user's slow one.
    const t = await setup({ mock: { tokenMs: 30 }, maxWorkers: 1 });
    const slow = await t.send('quinn', 'a slow answer that holds the only worker for a while');
    await waitFor(() => t.eventsOf(slow).some((e) => e.type === 'delta'));
    const queued = await t.send('rita', 'waiting for a slot');
    // What a gateway does on cancel: the key, then the channel. Nobody holds the request yet, so
    // the channel message finds no taker; the key stops it when its turn comes.
    await t.cancelByKey('rita', queued);
    await t.cancelByChannel('rita', queued);
    expect(t.consumer.cancel({ userid: 'rita', request_id: queued })).toBe(false);
    expect(await t.finalOf(slow)).toMatchObject({ type: 'final', finish_reason: 'stop' });
    expect(await t.finalOf(queued)).toMatchObject({ type: 'final', content: '', finish_reason: 'cancelled' });
    expect(t.callsFor('waiting for a slot')).toBe(0);
  });

  it('close() past the drain time leaves a generation unanswered; the next consumer reruns it', async () => {
    // 400 ms deadline → 200 ms of drain; the answer takes over a second.
    const t = await setup({ mock: { tokenMs: 100 }, shutdownTimeoutMs: 400 });
    const prompt = 'a slow answer cut off by a shutdown';
    const id = await t.send('sam', prompt);
    await waitFor(() => t.eventsOf(id).some((e) => e.type === 'delta'));
    const closing = Date.now();
    await t.consumer.close();
    expect(Date.now() - closing).toBeLessThan(1000);
    // Nothing final went out, and the state still says a generation was under way.
    expect(t.eventsOf(id).some((e) => e.type === 'final' || e.type === 'error')).toBe(false);
    expect(await t.store.get(REDIS_KEYS.request('sam', id))).toBe('running');

    await t.makeConsumer({ http: { shutdownTimeoutMs: 10_000 } });
    const final = await t.finalOf(id);
    if (final.type !== 'final') throw new Error(`expected a final event, got ${final.type}`);
    expect(final.content).toBe(answerTokens(prompt).join(''));
    const events = t.eventsOf(id);
    expect(events.filter((e) => e.type === 'reset')).toHaveLength(1);
    expect(
      deltasAfterReset(events)
        .map((d) => d.delta)
        .join(''),
    ).toBe(final.content);
    expect(t.callsFor(prompt)).toBe(2);
  });
});
