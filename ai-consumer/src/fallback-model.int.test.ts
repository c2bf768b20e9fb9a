/**
 * The fallback model on in-process transports with the real mock over HTTP: the primary forced to
 * fail (a `model=`-scoped marker on one mock, or a second mock that always answers 500), the
 * fallback on the mock's other model name or on a mock of its own.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMetrics, type Metrics } from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { ModelSetupConfig } from './model-setup.js';
import { setupModel } from './model-setup.js';
import { answerTokens, createMockOpenAI, type MockOpenAIOptions } from './mock-openai/index.js';
import { createFallbackModel } from './fallback-model.js';
import { createModelClient, type ModelClientOptions } from './model-client.js';
import { startConsumerHarness } from './testing/consumer-harness.js';

const cleanups: Array<() => Promise<void>> = [];
const cleanup = (close: () => Promise<void>) => cleanups.push(close);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startMock(options: MockOpenAIOptions = {}) {
  const mock = createMockOpenAI({ port: 0, ttftMs: 0, tokenMs: 1, ...options });
  const { url } = await mock.start();
  cleanup(() => mock.close());
  return { mock, baseUrl: `${url}/v1` };
}

function client(
  metrics: Metrics,
  baseUrl: string,
  model: string,
  overrides: Partial<ModelClientOptions> = {},
) {
  return createModelClient({
    apiKey: 'test',
    baseUrl,
    model,
    maxTokens: 256,
    timeoutMs: 5000,
    retry: { maxRetries: 2, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 100 },
    breaker: { failureThreshold: 5, cooldownMs: 60_000 },
    logger: silentLogger,
    metrics,
    ...overrides,
  });
}

async function setup(options: {
  primary: { baseUrl: string; overrides?: Partial<ModelClientOptions> };
  fallback: { baseUrl: string; overrides?: Partial<ModelClientOptions> };
}) {
  const metrics = createMetrics({ service: 'ai-consumer', instance: 'test', defaultMetrics: false });
  const model = createFallbackModel({
    primary: client(metrics, options.primary.baseUrl, 'primary-gpt', options.primary.overrides),
    fallback: client(metrics, options.fallback.baseUrl, 'fallback-gpt', options.fallback.overrides),
    names: { primary: 'primary-gpt', fallback: 'fallback-gpt' },
    logger: silentLogger,
    metrics,
  });
  const h = await startConsumerHarness({ model, metrics, cleanup });
  return { ...h, metrics, text: () => metrics.registry.metrics() };
}

describe('fallback model (OPENAI_FALLBACK_MODEL)', () => {
  it('retries exhausted on the primary before any delta: the fallback answers, the final says which', async () => {
    const { mock, baseUrl } = await startMock();
    const t = await setup({ primary: { baseUrl }, fallback: { baseUrl } });
    const prompt = 'hello there [mock:status=500,model=primary-gpt]';
    const id = await t.send('alice', prompt);
    const final = await t.answerOf(id);
    expect(final).toMatchObject({ model: 'fallback-gpt', finish_reason: 'stop' });
    expect(final.content).toBe(answerTokens(prompt).join(''));
    // Three attempts on the primary (1 + 2 retries), then one on the fallback; its deltas streamed.
    expect(mock.stats()).toMatchObject({ requests: 4, completions: 1 });
    const deltas = t.eventsOf(id).flatMap((e) => (e.type === 'delta' ? [e.delta] : []));
    expect(deltas.join('')).toBe(final.content);
    const metrics = await t.text();
    expect(metrics).toMatch(/ai_consumer_model_attempts_total\{result="5xx",model="primary-gpt"[^}]*\} 3/);
    expect(metrics).toMatch(/ai_consumer_model_attempts_total\{result="ok",model="fallback-gpt"[^}]*\} 1/);
    expect(metrics).toMatch(/ai_consumer_model_fallbacks_total\{reason="upstream_unavailable"[^}]*\} 1/);
    expect(metrics).toMatch(
      /ai_consumer_model_call_duration_seconds_count\{[^}]*outcome="ok",model="fallback-gpt"[^}]*\} 1/,
    );

    // The primary answers again as soon as it can: the fallback is per call, not a switch.
    const ok = await t.answerOf(await t.send('alice', 'and now?'));
    expect(ok.model).toBe('primary-gpt');
  });

  it('a prompt nobody streams: every attempt, the fallback’s too, is one non-streamed completion', async () => {
    const { mock, baseUrl } = await startMock();
    const t = await setup({ primary: { baseUrl }, fallback: { baseUrl } });
    const prompt = 'quietly [mock:status=503,model=primary-gpt]';
    const id = await t.send('carol', prompt, { stream: false });
    const final = await t.answerOf(id);
    expect(final).toMatchObject({ model: 'fallback-gpt', finish_reason: 'stop' });
    expect(final.content).toBe(answerTokens(prompt).join(''));
    expect(t.eventsOf(id).map((e) => e.type)).toEqual(['final']);
    expect(mock.stats()).toMatchObject({ requests: 4, completions: 1, streamed: 0 });
    expect(await t.text()).toMatch(
      /ai_consumer_model_retries_total\{reason="5xx",model="primary-gpt"[^}]*\} 2/,
    );
  });

  it('the primary breaker open: the fallback answers at once, without a request to the primary', async () => {
    const down = await startMock({ failRate: 1 });
    const healthy = await startMock();
    const t = await setup({
      primary: {
        baseUrl: down.baseUrl,
        overrides: {
          retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 },
          breaker: { failureThreshold: 2, cooldownMs: 60_000 },
        },
      },
      fallback: { baseUrl: healthy.baseUrl },
    });
    expect((await t.answerOf(await t.send('bob', 'first'))).model).toBe('fallback-gpt');
    // Two failures opened the primary's breaker.
    expect(down.mock.stats().requests).toBe(2);
    const second = await t.answerOf(await t.send('bob', 'second'));
    expect(second).toMatchObject({ model: 'fallback-gpt', content: answerTokens('second').join('') });
    expect(down.mock.stats().requests).toBe(2);
    expect(healthy.mock.stats().completions).toBe(2);
    const metrics = await t.text();
    expect(metrics).toMatch(/ai_consumer_model_fallbacks_total\{reason="circuit_open"[^}]*\} 1/);
    // One breaker per model.
    expect(metrics).toMatch(/ai_consumer_circuit_breaker_state\{model="primary-gpt"[^}]*\} 2/);
    expect(metrics).toMatch(/ai_consumer_circuit_breaker_state\{model="fallback-gpt"[^}]*\} 0/);
  });

  it('a stream that broke after deltas is not restarted on the fallback: an error event after them', async () => {
    // The first token at once, the next only after the attempt timed out.
    const slow = await startMock({ ttftMs: 0, tokenMs: 2000 });
    const healthy = await startMock();
    const t = await setup({
      primary: { baseUrl: slow.baseUrl, overrides: { timeoutMs: 300 } },
      fallback: { baseUrl: healthy.baseUrl },
    });
    const id = await t.send('carol', 'a long answer please');
    const error = await t.finalOf(id);
    expect(error).toMatchObject({ type: 'error', code: 'timeout' });
    expect(t.eventsOf(id).map((e) => e.type)).toEqual(['delta', 'error']);
    expect(t.eventsOf(id)[0]).toMatchObject({ type: 'delta', delta: 'Echo:' });
    expect(healthy.mock.stats().requests).toBe(0);
    expect(await t.text()).not.toMatch(/ai_consumer_model_fallbacks_total\{[^}]*\} [1-9]/);
  });

  it('both down: the error of the fallback, as without one', async () => {
    const { mock, baseUrl } = await startMock();
    const t = await setup({ primary: { baseUrl }, fallback: { baseUrl } });
    const error = await t.finalOf(await t.send('dave', 'nobody home [mock:status=503]'));
    expect(error).toMatchObject({ type: 'error', code: 'upstream_unavailable' });
    expect(mock.stats().requests).toBe(6);
  });

  it('a request the primary rejected (400) is not sent to the fallback', async () => {
    const { mock, baseUrl } = await startMock();
    const t = await setup({ primary: { baseUrl }, fallback: { baseUrl } });
    const error = await t.finalOf(await t.send('erin', 'bad [mock:status=400,model=primary-gpt]'));
    expect(error).toMatchObject({ type: 'error', code: 'upstream_error' });
    expect(mock.stats().requests).toBe(1);
  });
});

describe('setupModel with OPENAI_FALLBACK_*', () => {
  /** A provider that is down and records who called it with which key. */
  async function recordingServer() {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'down', type: 'server_error', param: null, code: null } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup(() => new Promise((resolve) => server.close(() => resolve())));
    return { seen, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` };
  }

  const config = (overrides: Partial<ModelSetupConfig>): ModelSetupConfig => ({
    openai: {
      apiKey: 'sk-primary',
      baseUrl: undefined,
      model: 'big',
      timeoutMs: 5000,
      maxTokens: 64,
      maxRetries: 0,
    },
    consumer: {
      deltaFlushMs: 5,
      queueUpdateMs: 500,
      historyMaxMessages: 0,
      historyTtlSeconds: 60,
      retryBaseDelayMs: 1,
      retryMaxDelayMs: 1,
      retryAfterMaxMs: 1,
      breakerFailureThreshold: 5,
      breakerCooldownMs: 1000,
    },
    mockModel: { host: '127.0.0.1', port: 0, ttftMs: 0, tokenMs: 0, minTokens: 0, failRate: 0, seed: 1 },
    ...overrides,
  });
  const ask = [{ role: 'user' as const, content: 'hi' }];

  it("sends the primary's key to the primary's server only; another server gets its own key or none", async () => {
    const primary = await recordingServer();
    const other = await recordingServer();
    const metrics = createMetrics({ service: 't', instance: 't', defaultMetrics: false });
    const withKey = await setupModel(
      config({
        openai: { ...config({}).openai, baseUrl: primary.baseUrl },
        fallback: { model: 'small', baseUrl: other.baseUrl, apiKey: 'sk-fallback' },
      }),
      { logger: silentLogger, metrics },
    );
    await expect(withKey.model.streamChat(ask, { onDelta: () => {} })).rejects.toMatchObject({
      code: 'upstream_unavailable',
      model: 'small',
    });
    expect(primary.seen.map((h) => h.authorization)).toEqual(['Bearer sk-primary']);
    expect(other.seen.map((h) => h.authorization)).toEqual(['Bearer sk-fallback']);

    const keyless = await setupModel(
      config({
        openai: { ...config({}).openai, baseUrl: primary.baseUrl },
        fallback: { model: 'small', baseUrl: other.baseUrl, apiKey: undefined },
      }),
      {
        logger: silentLogger,
        metrics: createMetrics({ service: 't', instance: 't', defaultMetrics: false }),
      },
    );
    await expect(keyless.model.streamChat(ask, { onDelta: () => {} })).rejects.toMatchObject({
      model: 'small',
    });
    expect(other.seen.at(-1)?.authorization).toBe('Bearer no-key');
    expect(keyless.fallback).toEqual({ model: 'small', baseUrl: other.baseUrl });

    // Same server (no OPENAI_FALLBACK_BASE_URL): the primary's key, and a label of its own when the names meet.
    const same = await setupModel(
      config({
        openai: { ...config({}).openai, baseUrl: primary.baseUrl },
        fallback: { model: 'big', baseUrl: undefined, apiKey: undefined },
      }),
      { logger: silentLogger, metrics },
    );
    await expect(same.model.streamChat(ask, { onDelta: () => {} })).rejects.toMatchObject({ model: 'big' });
    expect(primary.seen.slice(-2).map((h) => h.authorization)).toEqual([
      'Bearer sk-primary',
      'Bearer sk-primary',
    ]);
    expect(await metrics.registry.metrics()).toMatch(/model="big \(fallback\)"/);
  });
});
