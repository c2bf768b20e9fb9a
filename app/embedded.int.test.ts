import { waitFor } from '@relay/common/testing';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectClient, fetchToken } from '../websocket-server/src/testing/ws-client.js';
import { spawnEntry, waitForLog, type SpawnedService } from '../test/support/spawn-service.js';
import { buildWeb } from '../web/build.js';

/** The README's `npm start`: app/main.ts with a free port. */
function startEmbedded(env: Record<string, string> = {}): SpawnedService {
  return spawnEntry('app/main.ts', {
    PORT: '0',
    MOCK_OPENAI_TTFT_MS: '20',
    MOCK_OPENAI_TOKEN_MS: '5',
    ...env,
  });
}

async function portOf(app: SpawnedService): Promise<{ port: number; line: Record<string, unknown> }> {
  const line = await waitForLog(app, /ai-relay \(embedded\) on http/);
  return { port: Number(line.port), line };
}

describe('npm start — the embedded default (in-process transports, bundled mock)', () => {
  let app: SpawnedService;
  let base: string;

  beforeAll(async () => {
    // The chat page's script is built, not committed (web/build.ts); `npm start` builds it first.
    await buildWeb();
    app = startEmbedded();
    const { port, line } = await portOf(app);
    base = `http://127.0.0.1:${port}`;
    expect(line).toMatchObject({ bus: 'memory', store: 'memory' });
    expect(String(line.model)).toMatch(/^mock at http/);
  });
  afterAll(async () => {
    expect(await app.stop()).toBe(0);
  });

  it('says in its log that it uses the bundled mock model', async () => {
    await waitForLog(app, /no OPENAI_API_KEY: using the bundled mock model/);
  });

  it('answers an original-protocol client with exactly one response frame', async () => {
    const token = await fetchToken(base, 'user123');
    const c = await connectClient(`${base.replace('http', 'ws')}/ws?token=${token}&userid=user123`);
    c.send({ type: 'message', content: 'Hello, how are you?', userid: 'user123' });
    const response = await c.next((f) => f.type === 'response');
    expect(response).toMatchObject({ type: 'response', userid: 'user123' });
    expect(String(response.content)).toMatch(/^Echo: Hello, how are you\?/);
    expect(typeof response.timestamp).toBe('string');
    expect(typeof response.processing_time_ms).toBe('number');
    expect(c.frames.map((f) => f.type)).toEqual(['response']);
    await c.close();
  });

  it('streams deltas that add up to the final content for a client that opted in', async () => {
    const token = await fetchToken(base, 'streamer');
    const c = await connectClient(`${base.replace('http', 'ws')}/ws?token=${token}&userid=streamer&stream=1`);
    c.send({ type: 'message', content: 'tell me something', id: 'req-1' });
    const final = await c.next((f) => f.type === 'response');
    const deltas = c.frames.filter((f) => f.type === 'response.delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
    expect(deltas.map((d) => d.delta).join('')).toBe(final.content);
    expect(c.frames[0]).toMatchObject({ type: 'ack', request_id: 'req-1' });
    expect(final.request_id).toBe('req-1');
    await c.close();
  });

  it('answers a chat in the browser page (headless Chromium)', async () => {
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`${base}/`);
      // The chat page (web/src/chat): the demo site's anonymous visitor.
      await page.getByTestId('status').filter({ hasText: 'Connected' }).waitFor({ timeout: 15_000 });
      await expect.poll(() => page.getByTestId('model').textContent()).toMatch(/mock/);
      await page.getByTestId('input').fill('hello from the browser');
      await page.getByTestId('send').click();
      const answer = page.locator('.msg.assistant[data-final="true"]');
      await answer.waitFor({ timeout: 15_000 });
      expect(await answer.textContent()).toMatch(/^Echo: hello from the browser/);
    } finally {
      await browser.close();
    }
  });
});

describe('npm start with KAFKA_BOOTSTRAP_SERVERS and REDIS_URL set uses the real ones', () => {
  it('answers the same conversation through real Kafka and Redis', async () => {
    const app = startEmbedded({
      KAFKA_BOOTSTRAP_SERVERS: inject('kafkaBrokers'),
      REDIS_URL: inject('redisUrl'),
      // The per-IP token budget lives in the shared Redis; every local test client is 127.0.0.1.
      TOKEN_RATE_LIMIT_PER_MINUTE: '100000',
    });
    try {
      const { port, line } = await portOf(app);
      expect(line).toMatchObject({ bus: 'kafka', store: 'redis' });
      const base = `http://127.0.0.1:${port}`;
      const userid = `real-${Date.now()}`;
      const token = await fetchToken(base, userid);
      const c = await connectClient(`${base.replace('http', 'ws')}/ws?token=${token}&userid=${userid}`);
      // The consumer group may still be joining; the message is queued in Kafka meanwhile.
      c.send({ type: 'message', content: 'Hello over Kafka', userid });
      const response = await c.next((f) => f.type === 'response', 60_000);
      expect(String(response.content)).toMatch(/^Echo: Hello over Kafka/);
      await waitFor(() => c.frames.length === 1);
      await c.close();
    } finally {
      expect(await app.stop()).toBe(0);
    }
  });
});
