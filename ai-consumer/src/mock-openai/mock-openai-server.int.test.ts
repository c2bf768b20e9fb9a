import OpenAI from 'openai';
import { describe, expect, it, onTestFinished } from 'vitest';

import { createMockOpenAI } from './index.js';
import type { MockOpenAIOptions, MockOpenAIServer } from './index.js';

// Loopback HTTP only: each test gets its own server on an ephemeral port, closed when the test ends.
async function startMock(options: MockOpenAIOptions = {}): Promise<MockOpenAIServer> {
  const mock = createMockOpenAI({ host: '127.0.0.1', port: 0, ttftMs: 0, tokenMs: 0, ...options });
  onTestFinished(() => mock.close());
  await mock.start();
  return mock;
}

function clientFor(mock: MockOpenAIServer, maxRetries = 0): OpenAI {
  return new OpenAI({ apiKey: 'test', baseURL: `${mock.url}/v1`, maxRetries, timeout: 10_000 });
}

async function waitFor(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('waitFor: condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const ask = (content: string) => ({ model: 'gpt-test', messages: [{ role: 'user' as const, content }] });

describe('mock OpenAI server', () => {
  describe('chat completions', () => {
    it('answers deterministically, with usage', async () => {
      const client = clientFor(await startMock());

      const first = await client.chat.completions.create(ask('hello there'));
      const again = await client.chat.completions.create(ask('hello there'));
      const other = await client.chat.completions.create(ask('something else entirely'));

      expect(first.object).toBe('chat.completion');
      expect(first.id).toMatch(/^chatcmpl-/);
      expect(first.model).toBe('gpt-test');
      const choice = first.choices[0];
      expect(choice?.message.role).toBe('assistant');
      expect(choice?.finish_reason).toBe('stop');
      expect(choice?.message.content).toMatch(/^Echo: hello there — /);
      expect(again.choices[0]?.message.content).toBe(choice?.message.content);
      expect(other.choices[0]?.message.content).not.toBe(choice?.message.content);
      expect(first.usage?.completion_tokens).toBeGreaterThanOrEqual(5);
      expect(first.usage?.total_tokens).toBe(
        (first.usage?.prompt_tokens ?? 0) + (first.usage?.completion_tokens ?? 0),
      );
    });

    it('answers the last user message and gives a one-word prompt several tokens', async () => {
      const client = clientFor(await startMock());
      const completion = await client.chat.completions.create({
        model: 'gpt-test',
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'first question' },
          { role: 'assistant', content: 'an answer' },
          { role: 'user', content: 'hi' },
        ],
      });
      expect(completion.choices[0]?.message.content).toMatch(/^Echo: hi — /);
      expect(completion.usage?.completion_tokens).toBeGreaterThanOrEqual(5);
    });

    it('caps the answer at max_tokens with finish_reason length', async () => {
      const client = clientFor(await startMock());
      const full = await client.chat.completions.create(ask('cap me please'));
      const capped = await client.chat.completions.create({ ...ask('cap me please'), max_tokens: 3 });

      expect(capped.choices[0]?.finish_reason).toBe('length');
      expect(capped.usage?.completion_tokens).toBe(3);
      expect(capped.choices[0]?.message.content).toBe('Echo: cap me');
      expect(full.choices[0]?.message.content?.startsWith('Echo: cap me')).toBe(true);
    });

    it('streams the same content as the non-streaming answer, framed like OpenAI', async () => {
      const client = clientFor(await startMock({ tokenMs: 1 }));
      const prompt = 'stream this prompt for me';
      const whole = await client.chat.completions.create(ask(prompt));

      const stream = await client.chat.completions.create({
        ...ask(prompt),
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks: OpenAI.ChatCompletionChunk[] = [];
      for await (const chunk of stream) chunks.push(chunk);

      expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk')).toBe(true);
      expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1);
      expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: '', refusal: null });
      const usageChunk = chunks.at(-1);
      expect(usageChunk?.choices).toEqual([]);
      expect(usageChunk?.usage).toEqual(whole.usage);
      const finishChunk = chunks.at(-2);
      expect(finishChunk?.choices[0]?.finish_reason).toBe('stop');
      expect(finishChunk?.choices[0]?.delta).toEqual({});

      const contentChunks = chunks.slice(1, -2);
      expect(contentChunks.length).toBe(whole.usage?.completion_tokens);
      const text = contentChunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
      expect(text).toBe(whole.choices[0]?.message.content);
    });

    it('omits the usage chunk without include_usage', async () => {
      const client = clientFor(await startMock());
      const stream = await client.chat.completions.create({ ...ask('no usage'), stream: true });
      const chunks: OpenAI.ChatCompletionChunk[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
      expect(chunks.some((chunk) => chunk.usage)).toBe(false);
    });

    it('waits ttftMs before the first content token', async () => {
      const ttftMs = 300;
      const client = clientFor(await startMock({ ttftMs, tokenMs: 5 }));
      const startedAt = performance.now();
      const stream = await client.chat.completions.create({ ...ask('how long'), stream: true });
      let firstContentAt: number | undefined;
      for await (const chunk of stream) {
        if (firstContentAt === undefined && chunk.choices[0]?.delta.content)
          firstContentAt = performance.now();
      }
      expect(firstContentAt).toBeDefined();
      expect((firstContentAt ?? 0) - startedAt).toBeGreaterThanOrEqual(ttftMs - 20);
    });

    it('keeps the token schedule over a long answer: no drift from timer lateness', async () => {
      // 80 tokens 5 ms apart are due 395 ms after the first. Pausing 5 ms after each write drifted
      // by every timer's lateness; tokens are due at fixed times now.
      const tokenMs = 5;
      const tokens = 80;
      const client = clientFor(await startMock({ ttftMs: 0, tokenMs, minTokens: tokens }));
      // A busy event loop (as under load) makes every timer late.
      const hog = setInterval(() => {
        const until = performance.now() + 3;
        while (performance.now() < until);
      }, 4);
      onTestFinished(() => clearInterval(hog));
      const stream = await client.chat.completions.create({ ...ask('schedule'), stream: true });
      const at: number[] = [];
      for await (const chunk of stream) if (chunk.choices[0]?.delta.content) at.push(performance.now());
      clearInterval(hog);
      expect(at).toHaveLength(tokens);
      const span = (at.at(-1) ?? 0) - (at[0] ?? 0);
      expect(span).toBeGreaterThanOrEqual((tokens - 1) * tokenMs - 20);
      expect(span).toBeLessThan((tokens - 1) * tokenMs + 40);
    });

    it('survives a client aborting mid-stream and keeps serving', async () => {
      const mock = await startMock({ tokenMs: 50 });
      const client = clientFor(mock);
      const controller = new AbortController();
      const stream = await client.chat.completions.create(
        { ...ask('abort me halfway through please'), stream: true },
        { signal: controller.signal },
      );

      // The client ends the iteration quietly on a user abort.
      let received = 0;
      for await (const _chunk of stream) {
        received++;
        if (received === 2) controller.abort();
      }
      expect(received).toBe(2);

      await waitFor(() => mock.stats().aborted === 1);
      const after = await client.chat.completions.create(ask('still alive?'));
      expect(after.choices[0]?.message.content).toMatch(/^Echo: still alive\? — /);
    });

    it('fails at failRate with 500, reproducibly for a given seed', async () => {
      const outcomes = async (): Promise<number[]> => {
        const mock = await startMock({ failRate: 0.5, seed: 42 });
        const statuses: number[] = [];
        for (let i = 0; i < 12; i++) {
          const response = await fetch(`${mock.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(ask(`request ${i}`)),
          });
          await response.arrayBuffer();
          statuses.push(response.status);
        }
        return statuses;
      };
      const first = await outcomes();
      expect(await outcomes()).toEqual(first);
      expect(first).toContain(500);
      expect(first).toContain(200);

      const always = clientFor(await startMock({ failRate: 1 }));
      await expect(always.chat.completions.create(ask('x'))).rejects.toBeInstanceOf(
        OpenAI.InternalServerError,
      );
    });
  });

  describe('forced statuses', () => {
    it('a prompt marker 429 with retry_after=1 is retried by the client after about a second', async () => {
      const mock = await startMock();
      const client = clientFor(mock, 1);
      const prompt = '[mock:status=429,retry_after=1,times=1] please retry';

      const startedAt = performance.now();
      const completion = await client.chat.completions.create(ask(prompt));
      const elapsed = performance.now() - startedAt;

      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(completion.choices[0]?.message.content).toMatch(/^Echo: please retry — /);
      expect(mock.stats()).toMatchObject({ requests: 2, completions: 1 });
    });

    it('a marker without times fails every request', async () => {
      const client = clientFor(await startMock());
      const body = ask('[mock:status=503] down');
      await expect(client.chat.completions.create(body)).rejects.toMatchObject({ status: 503 });
      await expect(client.chat.completions.create(body)).rejects.toMatchObject({ status: 503 });
    });

    it('a marker with model= fails only the requests for that model', async () => {
      const mock = await startMock();
      const client = clientFor(mock);
      const content = 'which one [mock:status=503,model=primary-x]';
      await expect(
        client.chat.completions.create({ model: 'primary-x', messages: [{ role: 'user', content }] }),
      ).rejects.toMatchObject({ status: 503 });
      const other = await client.chat.completions.create({
        model: 'fallback-y',
        messages: [{ role: 'user', content }],
      });
      expect(other.choices[0]?.message.content).toMatch(/^Echo: which one — /);
      expect(other.model).toBe('fallback-y');
    });

    it('cites the knowledge excerpt in its system prompt that answers the question', async () => {
      const client = clientFor(await startMock());
      const system =
        'Be brief.\n\n<excerpt source="returns.md">\n# Returns\n\nKettles can be returned within 45 days.\n</excerpt>';
      const completion = await client.chat.completions.create({
        model: 'm',
        messages: [
          { role: 'system', content: system },
          { role: 'user', content: 'can I return a kettle?' },
        ],
      });
      expect(completion.choices[0]?.message.content).toMatch(
        /^Echo: can I return a kettle\? — .*\. \[returns\.md\] Kettles can be returned within 45 days\.$/,
      );
    });

    it('a malformed marker answers 400', async () => {
      const client = clientFor(await startMock());
      await expect(client.chat.completions.create(ask('[mock:status=200] nope'))).rejects.toBeInstanceOf(
        OpenAI.BadRequestError,
      );
    });

    it('the x-mock-status header forces a 429 with Retry-After', async () => {
      const mock = await startMock();
      const client = clientFor(mock, 0);
      const error: unknown = await client.chat.completions
        .create(ask('rate limited'), { headers: { 'x-mock-status': '429', 'x-mock-retry-after': '1' } })
        .then(
          () => undefined,
          (reason: unknown) => reason,
        );

      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      const rateLimit = error as InstanceType<typeof OpenAI.RateLimitError>;
      expect(rateLimit.status).toBe(429);
      expect(rateLimit.headers.get('retry-after')).toBe('1');
      expect(rateLimit.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    });

    it('the header can also send retry-after-ms, which the client prefers', async () => {
      const mock = await startMock();
      const client = clientFor(mock, 1);
      const startedAt = performance.now();
      await expect(
        client.chat.completions.create(ask('fast retry'), {
          headers: { 'x-mock-status': '503', 'x-mock-retry-after': '30', 'x-mock-retry-after-ms': '50' },
        }),
      ).rejects.toBeInstanceOf(OpenAI.InternalServerError);
      expect(performance.now() - startedAt).toBeLessThan(5_000);
      expect(mock.stats().requests).toBe(2);
    });

    it('a forced 400 is not retried', async () => {
      const mock = await startMock();
      const client = clientFor(mock, 2);
      await expect(
        client.chat.completions.create(ask('bad'), { headers: { 'x-mock-status': '400' } }),
      ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
      expect(mock.stats()).toMatchObject({ requests: 1, completions: 0 });
    });
  });

  describe('models and embeddings', () => {
    it('lists and retrieves the configured model', async () => {
      const client = clientFor(await startMock({ model: 'mock-model-x' }));
      const page = await client.models.list();
      expect(page.data).toEqual([
        { id: 'mock-model-x', object: 'model', created: expect.any(Number), owned_by: 'mock' },
      ]);
      expect((await client.models.retrieve('mock-model-x')).id).toBe('mock-model-x');
      await expect(client.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    });

    it('returns deterministic unit vectors, as base64 (client default) or floats', async () => {
      const client = clientFor(await startMock());
      const viaBase64 = await client.embeddings.create({ model: 'emb', input: ['alpha', 'beta'] });
      const viaFloat = await client.embeddings.create({
        model: 'emb',
        input: 'alpha',
        encoding_format: 'float',
      });

      expect(viaBase64.object).toBe('list');
      expect(viaBase64.data.map((item) => item.index)).toEqual([0, 1]);
      const [alpha, beta] = viaBase64.data.map((item) => item.embedding);
      expect(alpha).toHaveLength(256);
      expect(alpha).toEqual(viaFloat.data[0]?.embedding);
      expect(alpha).not.toEqual(beta);
      const norm = Math.sqrt((alpha ?? []).reduce((sum, value) => sum + value * value, 0));
      expect(norm).toBeCloseTo(1, 5);
      expect(viaBase64.usage.total_tokens).toBeGreaterThan(0);

      const sized = await client.embeddings.create({ model: 'emb', input: 'alpha', dimensions: 4 });
      expect(sized.data[0]?.embedding).toHaveLength(4);
    });

    it('gives texts sharing words close vectors, and counts every input embedded', async () => {
      const mock = await startMock();
      const client = clientFor(mock);
      const { data } = await client.embeddings.create({
        model: 'emb',
        input: ['returning a kettle', 'kettles can be returned within 45 days', 'the capital of France'],
      });
      const [q, near, far] = data.map((d) => d.embedding);
      const dot = (a: number[] = [], b: number[] = []) => a.reduce((sum, v, i) => sum + v * (b[i] ?? 0), 0);
      expect(dot(q, near)).toBeGreaterThan(0.5);
      expect(dot(q, far)).toBeLessThan(0.2);
      expect(mock.stats().embeddings).toBe(3);
    });
  });

  describe('errors', () => {
    it('answers an invalid body with an OpenAI-style 400', async () => {
      const mock = await startMock();
      const post = (body: string) =>
        fetch(`${mock.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });

      const missing = await post(JSON.stringify({ model: 'x' }));
      expect(missing.status).toBe(400);
      expect(await missing.json()).toEqual({
        error: { message: expect.any(String), type: 'invalid_request_error', param: 'messages', code: null },
      });

      const badRole = await post(
        JSON.stringify({ model: 'x', messages: [{ role: 'robot', content: 'hi' }] }),
      );
      expect(badRole.status).toBe(400);

      const notJson = await post('{nope');
      expect(notJson.status).toBe(400);
      expect(await notJson.json()).toMatchObject({ error: { type: 'invalid_request_error', code: null } });

      const client = clientFor(mock);
      await expect(
        client.chat.completions.create({ model: 'x', messages: [], max_tokens: 1 }),
      ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    });

    it('answers an unknown path with an OpenAI-style 404', async () => {
      const mock = await startMock();
      const response = await fetch(`${mock.url}/v1/nothing-here`);
      expect(response.status).toBe(404);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(await response.json()).toEqual({
        error: {
          message: 'Invalid URL (GET /v1/nothing-here)',
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      });
    });
  });

  describe('lifecycle', () => {
    it('close() is idempotent and also ends keep-alive connections', async () => {
      const mock = createMockOpenAI({ port: 0, ttftMs: 0, tokenMs: 0 });
      const { url, port } = await mock.start();
      expect(url).toBe(`http://127.0.0.1:${port}`);
      expect(mock.url).toBe(url);
      await clientFor(mock).models.list(); // leaves a keep-alive socket open

      const first = mock.close();
      expect(mock.close()).toBe(first);
      await first;
      await mock.close();
      await expect(mock.start()).rejects.toThrow(/closed/);
    });

    it('close() before start() resolves', async () => {
      const mock = createMockOpenAI({ port: 0 });
      await mock.close();
      expect(() => mock.url).toThrow(/not started/);
    });

    it('close() ends a stream in progress', async () => {
      const mock = createMockOpenAI({ port: 0, ttftMs: 0, tokenMs: 1_000 });
      await mock.start();
      const stream = await clientFor(mock).chat.completions.create({ ...ask('slow'), stream: true });
      const iterator = stream[Symbol.asyncIterator]();
      await iterator.next();
      await mock.close();
      await expect(
        (async () => {
          for (;;) if ((await iterator.next()).done) return;
        })(),
      ).rejects.toThrow();
    });
  });
});
