import { getEventListeners } from 'node:events';
import { createServer } from 'node:net';
import { createMetrics, RelayError } from '@relay/common';
import { silentLogger, waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { answerTokens, createMockOpenAI, type MockOpenAIOptions } from './mock-openai/index.js';
import { createModelClient, type ModelClientOptions } from './model-client.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startMock(options: MockOpenAIOptions = {}) {
  const mock = createMockOpenAI({ port: 0, ttftMs: 0, tokenMs: 0, ...options });
  cleanups.push(() => mock.close());
  const { url } = await mock.start();
  return { mock, baseUrl: `${url}/v1` };
}

function client(baseUrl: string, overrides: Partial<ModelClientOptions> = {}) {
  const waits: number[] = [];
  const metrics = createMetrics({ service: 'test', instance: 't', defaultMetrics: false });
  const model = createModelClient({
    apiKey: 'test',
    baseUrl,
    model: 'mock-gpt',
    maxTokens: 256,
    timeoutMs: 5000,
    retry: { maxRetries: 2, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 2000 },
    breaker: { failureThreshold: 100, cooldownMs: 60_000 },
    logger: silentLogger,
    metrics,
    sleep: async (ms) => {
      waits.push(ms);
      await new Promise((r) => setTimeout(r, ms));
    },
    ...overrides,
  });
  return { model, waits, metrics };
}

async function failure(promise: Promise<unknown>): Promise<RelayError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RelayError)) throw new Error(`expected a RelayError, got ${String(error)}`);
  return error;
}

const ask = (content: string) => [
  { role: 'system' as const, content: 'be brief' },
  { role: 'user' as const, content },
];

describe('model client (real openai client against the mock)', () => {
  it('streams deltas whose concatenation is the content', async () => {
    const { baseUrl, mock } = await startMock();
    const { model } = client(baseUrl);
    const deltas: string[] = [];
    const result = await model.streamChat(ask('hello there model'), { onDelta: (d) => deltas.push(d) });
    expect(result.content).toBe(answerTokens('hello there model').join(''));
    expect(deltas.join('')).toBe(result.content);
    expect(deltas.length).toBeGreaterThan(3);
    expect(result.finishReason).toBe('stop');
    expect(result.usage?.completionTokens).toBe(deltas.length);
    expect(result.attempts).toBe(1);
    expect(mock.stats().requests).toBe(1);
  });

  it('does not retry a 400: upstream_error after one request', async () => {
    const { baseUrl, mock } = await startMock();
    const { model, metrics } = client(baseUrl);
    const error = await failure(model.streamChat(ask('bad [mock:status=400]'), { onDelta: () => {} }));
    expect(error.code).toBe('upstream_error');
    expect(error.message).toBe('The model provider rejected the request');
    expect(mock.stats().requests).toBe(1);
    // Every reason's series starts at 0 and stays there.
    expect(await metrics.registry.getSingleMetricAsString('ai_consumer_model_retries_total')).not.toMatch(
      /^ai_consumer_model_retries_total\{.*\} [1-9]/m,
    );
  });

  it('honours Retry-After on a 429, then succeeds', async () => {
    const { baseUrl, mock } = await startMock();
    const { model, waits } = client(baseUrl);
    const result = await model.streamChat(ask('slow down [mock:status=429,retry_after_ms=120,times=1]'), {
      onDelta: () => {},
    });
    expect(result.finishReason).toBe('stop');
    expect(result.attempts).toBe(2);
    expect(waits).toEqual([120]);
    expect(mock.stats().requests).toBe(2);
  });

  it('retries 5xx up to maxRetries, then upstream_unavailable', async () => {
    const { baseUrl, mock } = await startMock();
    const { model, waits } = client(baseUrl);
    const error = await failure(model.streamChat(ask('down [mock:status=503]'), { onDelta: () => {} }));
    expect(error.code).toBe('upstream_unavailable');
    expect(mock.stats().requests).toBe(3);
    expect(waits).toHaveLength(2);
    for (const [i, w] of waits.entries()) expect(w).toBeLessThan(Math.min(5, 2 ** i));
  });

  it('opens the breaker after repeated 500s and then fails fast without a request', async () => {
    const { baseUrl, mock } = await startMock();
    const { model, metrics } = client(baseUrl, { breaker: { failureThreshold: 4, cooldownMs: 60_000 } });
    const first = await failure(model.streamChat(ask('x [mock:status=500]'), { onDelta: () => {} }));
    expect(first.code).toBe('upstream_unavailable');
    expect(model.breakerState).toBe('closed');
    const second = await failure(model.streamChat(ask('x [mock:status=500]'), { onDelta: () => {} }));
    expect(second.code).toBe('upstream_unavailable');
    expect(model.breakerState).toBe('open');
    expect(mock.stats().requests).toBe(4);
    const third = await failure(model.streamChat(ask('fine now'), { onDelta: () => {} }));
    expect(third.code).toBe('upstream_unavailable');
    expect(mock.stats().requests).toBe(4);
    expect(await metrics.registry.getSingleMetricAsString('ai_consumer_circuit_breaker_state')).toMatch(
      /ai_consumer_circuit_breaker_state\{[^}]*\} 2/,
    );
  });

  it('half-opens after the cool-down and closes on a good trial', async () => {
    let clock = 1_000_000;
    const { baseUrl } = await startMock();
    const { model } = client(baseUrl, {
      now: () => clock,
      retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 },
      breaker: { failureThreshold: 1, cooldownMs: 1000 },
    });
    await failure(model.streamChat(ask('x [mock:status=502]'), { onDelta: () => {} }));
    expect(model.breakerState).toBe('open');
    clock += 1000;
    expect(model.breakerState).toBe('half_open');
    await model.streamChat(ask('ok'), { onDelta: () => {} });
    expect(model.breakerState).toBe('closed');
  });

  it('times out an attempt that gets no token in time, retries it, then reports timeout', async () => {
    const { baseUrl, mock } = await startMock({ ttftMs: 2000 });
    const { model } = client(baseUrl, {
      timeoutMs: 100,
      retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 },
    });
    const started = Date.now();
    const error = await failure(model.streamChat(ask('hello'), { onDelta: () => {} }));
    expect(error.code).toBe('timeout');
    expect(mock.stats().requests).toBe(2);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('does not retry a stream that fails after deltas were emitted', async () => {
    // The first token comes at once, the next one only after the attempt timed out.
    const { baseUrl, mock } = await startMock({ ttftMs: 0, tokenMs: 2000 });
    const { model } = client(baseUrl, { timeoutMs: 200 });
    const deltas: string[] = [];
    const error = await failure(model.streamChat(ask('hello'), { onDelta: (d) => deltas.push(d) }));
    expect(error.code).toBe('timeout');
    expect(deltas).toEqual(['Echo:']);
    expect(mock.stats().requests).toBe(1);
  });

  it('reports an unreachable provider as upstream_unavailable after the retries', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const address = s.address();
        s.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const { model, waits } = client(`http://127.0.0.1:${port}/v1`);
    const error = await failure(model.streamChat(ask('anyone?'), { onDelta: () => {} }));
    expect(error.code).toBe('upstream_unavailable');
    expect(waits).toHaveLength(2);
  });

  it('cancels: resolves with the partial content and finish_reason cancelled', async () => {
    const { baseUrl, mock } = await startMock({ ttftMs: 0, tokenMs: 50 });
    const { model } = client(baseUrl);
    const controller = new AbortController();
    const deltas: string[] = [];
    const result = await model.streamChat(ask('a longer prompt to answer'), {
      signal: controller.signal,
      onDelta: (d) => {
        deltas.push(d);
        if (deltas.length === 2) controller.abort();
      },
    });
    expect(result.finishReason).toBe('cancelled');
    expect(result.content).toBe(deltas.join(''));
    expect(deltas).toHaveLength(2);
    expect(model.breakerState).toBe('closed');
    expect(mock.stats().requests).toBe(1);
  });

  it('leaves nothing on the caller’s signal once a call is done (every attempt stayed in memory)', async () => {
    const { baseUrl } = await startMock();
    const { model } = client(baseUrl);
    // Node 20 keeps an AbortSignal.any() signal that has a listener (the openai client adds one and
    // never removes it) until it aborts: one leaked per attempt.
    const any = vi.spyOn(AbortSignal, 'any');
    cleanups.push(async () => any.mockRestore());
    const controller = new AbortController();
    for (let i = 0; i < 3; i++) {
      const result = await model.streamChat(ask(`call ${i}`), {
        signal: controller.signal,
        onDelta: () => {},
      });
      expect(result.finishReason).toBe('stop');
    }
    expect(getEventListeners(controller.signal, 'abort')).toEqual([]);
    expect(any).not.toHaveBeenCalled();
  });
});

describe('model client without streaming (stream: false, one chat.completion)', () => {
  it('asks for a chat.completion, not SSE: the whole content, finish_reason and usage, no delta', async () => {
    const { baseUrl, mock } = await startMock();
    const { model } = client(baseUrl);
    const deltas: string[] = [];
    const result = await model.streamChat(ask('hello there model'), {
      stream: false,
      onDelta: (d) => deltas.push(d),
    });
    const tokens = answerTokens('hello there model');
    expect(result).toMatchObject({
      content: tokens.join(''),
      finishReason: 'stop',
      attempts: 1,
      model: 'mock-gpt',
      usage: { completionTokens: tokens.length },
    });
    expect(result.usage?.promptTokens).toBeGreaterThan(0);
    expect(deltas).toEqual([]);
    expect(mock.stats()).toMatchObject({ requests: 1, completions: 1, streamed: 0 });
  });

  it('says finish_reason length when max_tokens cut the answer', async () => {
    const { baseUrl } = await startMock();
    const { model } = client(baseUrl, { maxTokens: 3 });
    const result = await model.streamChat(ask('a prompt with a long answer'), { stream: false });
    expect(result.finishReason).toBe('length');
    expect(result.content).toBe(answerTokens('a prompt with a long answer').slice(0, 3).join(''));
    expect(result.usage?.completionTokens).toBe(3);
  });

  it('retries 5xx with the same backoff, then answers; a 400 is not retried', async () => {
    const { baseUrl, mock } = await startMock();
    const { model, waits, metrics } = client(baseUrl);
    const result = await model.streamChat(ask('flaky [mock:status=503,times=2]'), { stream: false });
    expect(result).toMatchObject({ finishReason: 'stop', attempts: 3 });
    expect(result.content).toBe(answerTokens('flaky [mock:status=503,times=2]').join(''));
    expect(waits).toHaveLength(2);
    expect(mock.stats()).toMatchObject({ requests: 3, completions: 1, streamed: 0 });
    expect(await metrics.registry.getSingleMetricAsString('ai_consumer_model_retries_total')).toMatch(
      /reason="5xx"[^}]*\} 2/,
    );
    const rejected = await failure(model.streamChat(ask('bad [mock:status=400]'), { stream: false }));
    expect(rejected.code).toBe('upstream_error');
    expect(mock.stats().requests).toBe(4);
  });

  it('the per-attempt timeout covers the whole completion: retried, then timeout', async () => {
    // A streamed call would have its first token at once; without streaming nothing comes for ~2 s.
    const { baseUrl, mock } = await startMock({ ttftMs: 0, tokenMs: 200 });
    const { model } = client(baseUrl, {
      timeoutMs: 150,
      retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 },
    });
    const error = await failure(model.streamChat(ask('hello'), { stream: false }));
    expect(error.code).toBe('timeout');
    expect(mock.stats().requests).toBe(2);
    await waitFor(() => mock.stats().aborted === 2, { message: 'both requests aborted' });
  });

  it('opens the breaker after repeated 500s, as a streamed call does', async () => {
    const { baseUrl, mock } = await startMock();
    const { model } = client(baseUrl, {
      retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 },
      breaker: { failureThreshold: 2, cooldownMs: 60_000 },
    });
    await failure(model.streamChat(ask('x [mock:status=500]'), { stream: false }));
    await failure(model.streamChat(ask('x [mock:status=500]'), { stream: false }));
    expect(model.breakerState).toBe('open');
    const refused = await failure(model.streamChat(ask('fine now'), { stream: false }));
    expect(refused.code).toBe('upstream_unavailable');
    expect(mock.stats().requests).toBe(2);
  });

  it('cancel aborts the HTTP request: cancelled with empty content, no retry, breaker untouched', async () => {
    const { baseUrl, mock } = await startMock({ ttftMs: 2000 });
    const { model } = client(baseUrl, { breaker: { failureThreshold: 1, cooldownMs: 60_000 } });
    const controller = new AbortController();
    const call = model.streamChat(ask('a longer prompt to answer'), {
      stream: false,
      signal: controller.signal,
    });
    await waitFor(() => mock.stats().requests === 1, { message: 'request sent' });
    controller.abort();
    const result = await call;
    expect(result).toMatchObject({ content: '', finishReason: 'cancelled', attempts: 1 });
    expect(model.breakerState).toBe('closed');
    await waitFor(() => mock.stats().aborted === 1, { message: 'the mock saw the client go away' });
    expect(mock.stats().requests).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toEqual([]);
  });
});
