import {
  REDIS_KEYS,
  TOPICS,
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  loadConfig,
  promptEventSchema,
  serializeFrame,
  type Bus,
  type BusMessage,
} from '@relay/common';
import { silentLogger, waitFor } from '@relay/common/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { gatewayFragment, sitesFor } from './config.js';
import { createGateway, type Gateway } from './gateway.js';
import { startGateway } from './testing/gateway-harness.js';
import { connectClient, fetchToken, type TestClient } from './testing/ws-client.js';
import { createTokenService } from './token-service.js';
import { loadUws } from './uws.js';

const { gateway: settings } = loadConfig(
  { gateway: gatewayFragment },
  {
    JWT_SECRET: 's'.repeat(32),
    TOKEN_TTL_SECONDS: '60',
    TOKEN_RATE_LIMIT_PER_MINUTE: '5',
    MAX_CONTENT_LENGTH: '200',
    MAX_PAYLOAD_BYTES: '1024',
    RATE_LIMIT_MESSAGES: '5',
    RATE_LIMIT_WINDOW_MS: '60000',
    MAX_CONNECTIONS_PER_USER: '3',
    DEV_TOKENS: 'true',
    // The per-IP token limit is tested from a public address (X-Real-IP); loopback is exempt in dev mode.
    TRUST_PROXY: 'true',
  },
);

describe('gateway (real uWS, in-process transports)', () => {
  let gateway: Gateway;
  let bus: Bus;
  let base: string;
  let wsBase: string;
  const hub = createMemoryPubSubHub();
  const relay = hub.client();
  const prompts: BusMessage[] = [];
  const clients: TestClient[] = [];

  beforeEach(async () => {
    prompts.length = 0;
    bus = createMemoryBus({ defaultPartitions: 2 });
    await bus.connect();
    await bus.subscribe({
      groupId: 'test',
      topics: [TOPICS.incoming],
      handler: async (m) => void prompts.push(m),
    });
    gateway = createGateway({
      uws: loadUws().uws,
      sites: sitesFor(settings, '127.0.0.1'),
      settings,
      host: '127.0.0.1',
      port: 0,
      serverId: 'gw-test',
      logger: silentLogger,
      metrics: createMetrics({ service: 'websocket-server', instance: 'gw-test', defaultMetrics: false }),
      bus,
      store: createMemoryStore(),
      pubsub: hub.client(),
      tokens: createTokenService({ secret: settings.jwtSecret, ttlSeconds: 60 }),
      staticFiles: new Map([['/', { contentType: 'text/html', body: Buffer.from('<h1>chat</h1>') }]]),
    });
    const { port } = await gateway.start();
    base = `http://127.0.0.1:${port}`;
    wsBase = `ws://127.0.0.1:${port}`;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await gateway.close();
    await bus.close();
  });

  /** Opens a socket; `&ack=1` by default so tests can wait for acks (original clients get none). */
  async function open(userid: string, extra = '&ack=1'): Promise<TestClient> {
    const token = await fetchToken(base, userid);
    const c = await connectClient(`${wsBase}/ws?token=${token}&userid=${userid}${extra}`);
    clients.push(c);
    return c;
  }

  function upgradeStatus(url: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const s = new WebSocket(url);
      s.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      s.once('open', () => {
        s.close();
        resolve(101);
      });
      s.once('error', (err) =>
        err.message.includes('Unexpected server response') ? undefined : reject(err),
      );
    });
  }

  it('POST /token issues a token for a valid userid, 400 for a bad one, 429 past the per-IP limit', async () => {
    const res = await fetch(`${base}/token?userid=user123`, { method: 'POST' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ userid: 'user123', expires_in: 60 });
    expect(typeof body.token).toBe('string');
    expect((await fetch(`${base}/token?userid=bad%20user`, { method: 'POST' })).status).toBe(400);
    expect((await fetch(`${base}/token`, { method: 'POST' })).status).toBe(400);
    const fromPublic = (userid: string) =>
      fetch(`${base}/token?userid=${userid}`, { method: 'POST', headers: { 'x-real-ip': '203.0.113.5' } });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await fromPublic(`u${i}`)).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.slice(5)).toEqual([429, 429]);
    // On loopback in dev mode the limit does not apply: a local load test of many users passes.
    for (let i = 0; i < 10; i++)
      expect((await fetch(`${base}/token?userid=l${i}`, { method: 'POST' })).status).toBe(200);
  });

  it('refuses the upgrade with 401 without a token, with a forged one, or with another user’s token', async () => {
    expect(await upgradeStatus(`${wsBase}/ws?userid=alice`)).toBe(401);
    expect(await upgradeStatus(`${wsBase}/ws?token=garbage&userid=alice`)).toBe(401);
    const aliceToken = await fetchToken(base, 'alice');
    expect(await upgradeStatus(`${wsBase}/ws?token=${aliceToken}&userid=bob`)).toBe(401);
    expect(await upgradeStatus(`${wsBase}/ws?token=${aliceToken}&userid=alice`)).toBe(101);
  });

  it('caps connections per user with 429', async () => {
    for (let i = 0; i < 3; i++) await open('capped');
    const token = await fetchToken(base, 'capped');
    expect(await upgradeStatus(`${wsBase}/ws?token=${token}&userid=capped`)).toBe(429);
  });

  it('an original-protocol client gets no ack frame (a new frame type it did not ask for)', async () => {
    const c = await open('user123', '');
    c.send({ type: 'message', content: 'Hello, how are you?', userid: 'user123' });
    await waitFor(() => prompts.length === 1);
    // A later frame on the same socket arrives after any ack would have: the error for this bad frame.
    c.sendRaw('not json');
    await c.next((f) => f.type === 'error');
    expect(c.frames.map((f) => f.type)).toEqual(['error']);
  });

  it('turns an original-protocol message into a prompt event keyed by userid, then acks it', async () => {
    const c = await open('user123');
    c.send({ type: 'message', content: 'Hello, how are you?', userid: 'user123' });
    const ack = await c.next((f) => f.type === 'ack');
    expect(typeof ack.request_id).toBe('string');
    expect(prompts).toHaveLength(1);
    const record = prompts[0] as BusMessage;
    expect(record.key).toBe('user123');
    expect(record.headers.correlation_id).toBe(ack.request_id);
    // Tracing is off: no trace to continue, so no traceparent (gateway-tracing.test.ts has it on).
    expect(record.headers.traceparent).toBeUndefined();
    const event = promptEventSchema.parse(JSON.parse(record.value));
    expect(event).toMatchObject({
      v: 1,
      userid: 'user123',
      content: 'Hello, how are you?',
      request_id: ack.request_id,
      // No socket of this user streams: the consumer publishes the final only.
      stream: false,
      site: 'dev',
    });
    expect(event.conversation_id).toBe('default');
    const streaming = await open('user123', '&stream=1');
    streaming.send({ type: 'message', content: 'and now?' });
    await streaming.next((f) => f.type === 'ack');
    expect(promptEventSchema.parse(JSON.parse((prompts[1] as BusMessage).value)).stream).toBe(true);
  });

  it('echoes a client id as request_id and passes conversation_id', async () => {
    const c = await open('alice');
    c.send({ type: 'message', content: 'hi', id: 'm-1', conversation_id: 'c-9' });
    expect(await c.next((f) => f.type === 'ack')).toMatchObject({ request_id: 'm-1' });
    await waitFor(() => prompts.length === 1);
    expect(JSON.parse((prompts[0] as BusMessage).value)).toMatchObject({
      request_id: 'm-1',
      conversation_id: 'c-9',
    });
  });

  it.each([
    ['not json', 'invalid_json'],
    ['{"type":"dance"}', 'unknown_type'],
    ['{"type":"message"}', 'invalid_message'],
    [`{"type":"message","content":"${'x'.repeat(201)}"}`, 'message_too_large'],
    ['{"type":"message","content":"hi","userid":"mallory"}', 'userid_mismatch'],
  ])('a bad frame %s gets an error frame with code %s and the socket stays usable', async (raw, code) => {
    const c = await open('alice');
    c.sendRaw(raw);
    const err = await c.next((f) => f.type === 'error');
    expect(err).toMatchObject({ code, userid: 'alice' });
    expect(typeof err.message).toBe('string');
    c.send({ type: 'message', content: 'still here' });
    await c.next((f) => f.type === 'ack');
    expect(c.closed).toBeNull();
    expect(prompts.map((p) => JSON.parse(p.value).content)).toEqual(['still here']);
  });

  it('closes a frame over maxPayloadLength with 1009', async () => {
    const c = await open('alice');
    c.sendRaw(JSON.stringify({ type: 'message', content: 'y'.repeat(2000) }));
    await waitFor(() => c.closed);
    expect(c.closed).toEqual({ code: 1009, reason: 'message_too_large' });
  });

  it('survives a frame far past every limit (connection dropped, gateway still serving)', async () => {
    const c = await open('alice');
    c.sendRaw('z'.repeat(64 * 1024));
    await waitFor(() => c.closed);
    const again = await open('alice');
    again.send({ type: 'message', content: 'after' });
    await again.next((f) => f.type === 'ack');
  });

  it('rate-limits a user with rate_limited and no ack', async () => {
    const c = await open('chatty');
    for (let i = 0; i < 7; i++) c.send({ type: 'message', content: `m${i}`, id: `r${i}` });
    await waitFor(() => c.frames.length === 7);
    // In order, with the codes in the diff should it fail.
    expect(c.frames.map((f) => f.code ?? f.type)).toEqual([
      ...Array(5).fill('ack'),
      'rate_limited',
      'rate_limited',
    ]);
    expect(prompts).toHaveLength(5);
  });

  it('delivers a user’s frames to all of that user’s sockets and to no one else; deltas only to opted-in sockets', async () => {
    const plain = await open('alice', '');
    const streaming = await open('alice', '&stream=1');
    const viaHello = await open('alice', '');
    viaHello.send({ type: 'hello', stream: true });
    const bob = await open('bob', '&stream=1');
    await waitFor(() => gateway.stats().connections === 4);

    const delta = serializeFrame(
      { type: 'response.delta', request_id: 'r1', seq: 0, delta: 'Hel', userid: 'alice' },
      '1-0',
    );
    const final = serializeFrame(
      {
        type: 'response',
        content: 'Hello',
        userid: 'alice',
        timestamp: new Date().toISOString(),
        processing_time_ms: 5,
        request_id: 'r1',
      },
      '1-1',
    );
    // hello is processed before the next frame; make sure it landed before publishing.
    viaHello.send({ type: 'message', content: 'sync' });
    await viaHello.next((f) => f.type === 'ack');
    await relay.publish(REDIS_KEYS.userChannel('alice'), delta);
    await relay.publish(REDIS_KEYS.userChannel('alice'), final);
    for (const c of [plain, streaming, viaHello]) await c.next((f) => f.type === 'response');
    expect(plain.frames.filter((f) => f.type === 'response.delta')).toHaveLength(0);
    expect(streaming.frames.filter((f) => f.type === 'response.delta')).toHaveLength(1);
    expect(viaHello.frames.filter((f) => f.type === 'response.delta')).toHaveLength(1);
    expect(streaming.frames.find((f) => f.type === 'response')).toMatchObject({
      content: 'Hello',
      event_id: '1-1',
    });
    expect(bob.frames).toHaveLength(0);
  });

  it('subscribes the user channel while a socket is open and unsubscribes after the last one', async () => {
    const a1 = await open('alice');
    const a2 = await open('alice');
    await waitFor(
      async () => (await relay.publish(REDIS_KEYS.userChannel('alice'), '{"type":"ping"}')) === 1,
    );
    await a1.close();
    expect(await relay.publish(REDIS_KEYS.userChannel('alice'), '{"type":"ping"}')).toBe(1);
    await a2.close();
    await waitFor(
      async () => (await relay.publish(REDIS_KEYS.userChannel('alice'), '{"type":"ping"}')) === 0,
    );
  });

  it('serves /health, /ready, /metrics and the page', async () => {
    await open('alice');
    const health = (await (await fetch(`${base}/health`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({
      status: 'ok',
      service: 'websocket-server',
      server_id: 'gw-test',
      active_users: 1,
      total_connections: 1,
    });
    expect((await fetch(`${base}/ready`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('gateway_connections');
    expect(metrics).toMatch(/gateway_tokens_issued_total\{mode="dev"[^}]*\} 1/);
    expect(await (await fetch(`${base}/`)).text()).toBe('<h1>chat</h1>');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('refuses to share its port: a second gateway on it fails to start instead of splitting the traffic', async () => {
    const port = Number(new URL(base).port);
    const second = createGateway({
      uws: loadUws().uws,
      sites: sitesFor(settings, '127.0.0.1'),
      settings,
      host: '127.0.0.1',
      port,
      serverId: 'gw-second',
      logger: silentLogger,
      metrics: createMetrics({ service: 'websocket-server', instance: 'gw-second', defaultMetrics: false }),
      bus,
      store: createMemoryStore(),
      pubsub: hub.client(),
      tokens: createTokenService({ secret: settings.jwtSecret, ttlSeconds: 60 }),
    });
    await expect(second.start()).rejects.toThrow(/could not listen/);
    await second.close();
  });

  it('on close, refuses new work and closes sockets with 1001', async () => {
    const c = await open('alice');
    await gateway.close();
    await waitFor(() => c.closed);
    expect(c.closed?.code).toBe(1001);
  });
});

describe('acks follow the order of the frames (real uWS)', () => {
  it('a message sent before a hello gets no ack, however long its publish takes; one sent after does', async () => {
    const inner = createMemoryBus({ defaultPartitions: 2 });
    await inner.connect();
    const published: string[] = [];
    await inner.subscribe({
      groupId: 'test',
      topics: [TOPICS.incoming],
      handler: async (m) => void published.push(promptEventSchema.parse(JSON.parse(m.value)).request_id),
    });
    // Each publish waits: the hello is read while the first message is still on its way to Kafka.
    const slow: Bus = {
      ...inner,
      publish: async (topic, records) => {
        await new Promise((r) => setTimeout(r, 100));
        return inner.publish(topic, records);
      },
    };
    const h = await startGateway({ bus: slow });
    try {
      const c = await h.open('alice', '');
      c.send({ type: 'message', content: 'before the hello' });
      c.send({ type: 'hello', stream: false });
      c.send({ type: 'message', content: 'after the hello' });
      await waitFor(() => published.length === 2, { timeoutMs: 5000, message: 'both published' });
      const ack = await c.next((f) => f.type === 'ack');
      await new Promise((r) => setTimeout(r, 200));
      expect(c.frames.filter((f) => f.type === 'ack')).toEqual([ack]);
      expect(ack.request_id).toBe(published[1]);
    } finally {
      await h.close();
      await inner.close();
    }
  });
});
