import { createMetrics } from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { createModelClient, type ModelClientOptions } from './model-client.js';

/** What the openai client sent: the JSON body of each request. */
interface Sent {
  body: Record<string, unknown>;
  signal: AbortSignal | undefined;
}

type Reply = (sent: Sent) => Response | Promise<Response>;

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

const completion = (content: string, finishReason = 'stop') =>
  json(200, {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finishReason }],
    usage: { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 },
  });

const sse = (tokens: string[]) => {
  const chunk = (choices: unknown[], usage: unknown = null) =>
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices, usage })}\n\n`;
  const text =
    tokens.map((t) => chunk([{ index: 0, delta: { content: t }, finish_reason: null }])).join('') +
    chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]) +
    chunk([], { prompt_tokens: 11, completion_tokens: tokens.length, total_tokens: 11 + tokens.length }) +
    'data: [DONE]\n\n';
  return new Response(text, { status: 200, headers: { 'content-type': 'text/event-stream' } });
};

/** A model client on a fake HTTP layer: `replies` answer the requests in turn. */
function setup(replies: Reply[], overrides: Partial<ModelClientOptions> = {}) {
  const sent: Sent[] = [];
  const fetch: typeof globalThis.fetch = async (_url, init) => {
    const entry: Sent = {
      body: JSON.parse(String(init?.body)) as Record<string, unknown>,
      signal: init?.signal ?? undefined,
    };
    sent.push(entry);
    const reply = replies[sent.length - 1];
    if (!reply) throw new Error(`unexpected request #${sent.length}`);
    return reply(entry);
  };
  const model = createModelClient({
    apiKey: 'test',
    baseUrl: 'http://model.invalid/v1',
    model: 'm',
    maxTokens: 64,
    timeoutMs: 5000,
    retry: { maxRetries: 2, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 },
    breaker: { failureThreshold: 1, cooldownMs: 60_000 },
    logger: silentLogger,
    metrics: createMetrics({ service: 't', instance: 't', defaultMetrics: false }),
    sleep: async () => {},
    fetch,
    ...overrides,
  });
  return { model, sent };
}

const ask = [{ role: 'user' as const, content: 'hi' }];

describe('model client: streamed or not', () => {
  it('stream: false sends one plain chat.completion request and takes the answer whole', async () => {
    const t = setup([() => completion('Echo: hi')]);
    const deltas: string[] = [];
    const result = await t.model.streamChat(ask, { stream: false, onDelta: (d) => deltas.push(d) });
    expect(t.sent).toHaveLength(1);
    expect(t.sent[0]?.body).toEqual({ model: 'm', messages: ask, max_tokens: 64, stream: false });
    expect(result).toEqual({
      content: 'Echo: hi',
      finishReason: 'stop',
      usage: { promptTokens: 11, completionTokens: 3 },
      attempts: 1,
      model: 'm',
    });
    expect(deltas).toEqual([]);
  });

  it('by default streams with usage in the last chunk', async () => {
    const t = setup([() => sse(['Echo:', ' hi'])]);
    const deltas: string[] = [];
    const result = await t.model.streamChat(ask, { onDelta: (d) => deltas.push(d) });
    expect(t.sent[0]?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect(deltas).toEqual(['Echo:', ' hi']);
    expect(result).toMatchObject({ content: 'Echo: hi', usage: { promptTokens: 11, completionTokens: 2 } });
  });

  it('stream: false retries a 5xx and a completion without finish_reason, like a broken stream', async () => {
    const t = setup(
      [
        () => json(503, { error: { message: 'down', type: 'server_error' } }),
        () => completion('half', ''),
        () => completion('Echo: hi'),
      ],
      { breaker: { failureThreshold: 3, cooldownMs: 60_000 } },
    );
    const result = await t.model.streamChat(ask, { stream: false });
    expect(result).toMatchObject({ content: 'Echo: hi', attempts: 3 });
    expect(t.sent.map((s) => s.body.stream)).toEqual([false, false, false]);
    expect(t.model.breakerState).toBe('closed');
  });

  it('stream: false cancelled mid-call aborts the request: cancelled, empty, not retried', async () => {
    const controller = new AbortController();
    const t = setup([
      ({ signal }) =>
        new Promise<Response>((_resolve, reject) => {
          signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
          controller.abort();
        }),
    ]);
    const result = await t.model.streamChat(ask, { stream: false, signal: controller.signal });
    expect(result).toEqual({ content: '', finishReason: 'cancelled', attempts: 1, model: 'm' });
    expect(t.sent).toHaveLength(1);
    expect(t.sent[0]?.signal?.aborted).toBe(true);
    expect(t.model.breakerState).toBe('closed');
  });
});
