import {
  REDIS_KEYS,
  createKafkaBus,
  createMetrics,
  createRedisPubSub,
  createRedisStore,
  deliveryFragment,
  frameFromEvent,
  loadConfig,
  promptEventSchema,
  serializeFrame,
  type BusMessage,
} from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { gatewayFragment, sitesFor } from '../../../websocket-server/src/config.js';
import type { Gateway } from '../../../websocket-server/src/gateway.js';
import { connectClient, type TestClient } from '../../../websocket-server/src/testing/ws-client.js';
import { createTokenService } from '../../../websocket-server/src/token-service.js';
import { createBaselineGateway } from './gateway.js';

const brokers = inject('kafkaBrokers').split(',');
const redisUrl = inject('redisUrl');
const TIMEOUT = 30_000;

const config = loadConfig(
  { gateway: gatewayFragment, delivery: deliveryFragment },
  { JWT_SECRET: 's'.repeat(32), RATE_LIMIT_MESSAGES: '100', DEV_TOKENS: 'true' },
);
const tokens = createTokenService({ secret: config.gateway.jwtSecret, ttlSeconds: 60 });

/** The frame message-relay makes of a final response event. */
function finalFrame(userid: string, content: string) {
  return frameFromEvent({
    v: 1,
    type: 'final',
    userid,
    request_id: 'r-1',
    content,
    timestamp: new Date().toISOString(),
    processing_time_ms: 5,
    finish_reason: 'stop',
  });
}

/** The HTTP status an upgrade gets (101 when the socket opened). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = new WebSocket(url);
    s.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      s.terminate();
    });
    s.once('open', () => {
      s.close();
      resolve(101);
    });
    s.once('error', (err) => (err.message.includes('Unexpected server response') ? undefined : reject(err)));
  });
}

describe('baseline gateway (ws) on real Kafka and Redis', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  let gateway: Gateway;
  let base: string;
  let wsBase: string;
  let incomingTopic: string;
  let bus: ReturnType<typeof createKafkaBus>;
  let relay: ReturnType<typeof createRedisPubSub>;

  beforeEach(async () => {
    bus = createKafkaBus({
      brokers,
      clientId: uniqueName('baseline-int'),
      logger: silentLogger,
      onFatal: (err) => silentLogger.error({ err }, 'kafka fatal'),
      sessionTimeoutMs: 6000,
    });
    cleanup.push(() => bus.close());
    await bus.connect();
    incomingTopic = uniqueName('incoming');
    await bus.ensureTopics([{ topic: incomingTopic, partitions: 1 }]);
    const store = createRedisStore({ url: redisUrl, logger: silentLogger, connectionName: 'baseline-int' });
    cleanup.push(() => store.close());
    const pubsub = createRedisPubSub({ url: redisUrl, logger: silentLogger, connectionName: 'baseline-int' });
    cleanup.push(() => pubsub.close());
    relay = createRedisPubSub({ url: redisUrl, logger: silentLogger, connectionName: 'baseline-relay' });
    cleanup.push(() => relay.close());

    gateway = createBaselineGateway({
      settings: config.gateway,
      sites: sitesFor(config.gateway, '127.0.0.1'),
      delivery: config.delivery,
      host: '127.0.0.1',
      port: 0,
      serverId: 'baseline-test',
      logger: silentLogger,
      metrics: createMetrics({ service: 'baseline-gateway', instance: 'test', defaultMetrics: false }),
      bus,
      store,
      pubsub,
      tokens,
      incomingTopic,
    });
    cleanup.push(() => gateway.close());
    const { port } = await gateway.start();
    base = `http://127.0.0.1:${port}`;
    wsBase = `ws://127.0.0.1:${port}`;
  });

  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function open(userid: string, query = '&ack=1'): Promise<TestClient> {
    const { token } = await tokens.issue(userid);
    const client = await connectClient(`${wsBase}/ws?token=${token}&userid=${userid}${query}`);
    cleanup.push(() => client.close());
    return client;
  }

  it('answers /ready when Kafka and Redis do, and 404 JSON elsewhere', async () => {
    await waitFor(() => gateway.ready().ready, { timeoutMs: TIMEOUT, message: 'ready' });
    expect((await fetch(`${base}/ready`)).status).toBe(200);
    const res = await fetch(`${base}/nope?token=secret`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'not_found', path: '/nope' });
  });

  it('refuses a bad token, or another user’s, with 401 and opens no socket', async () => {
    const userid = uniqueName('alice');
    expect(await upgradeStatus(`${wsBase}/ws?token=garbage&userid=${userid}`)).toBe(401);
    const { token } = await tokens.issue(uniqueName('bob'));
    expect(await upgradeStatus(`${wsBase}/ws?token=${token}&userid=${userid}`)).toBe(401);
    expect(gateway.stats()).toEqual({ users: 0, connections: 0 });
  });

  it('acks a message after its prompt event is on the incoming topic', async () => {
    const prompts: BusMessage[] = [];
    const subscription = await bus.subscribe({
      groupId: uniqueName('baseline-int'),
      topics: [incomingTopic],
      fromBeginning: true,
      handler: async (m) => void prompts.push(m),
    });
    cleanup.push(() => subscription.close());
    const userid = uniqueName('alice');
    const client = await open(userid);
    client.send({ type: 'message', content: 'Hello, how are you?', id: 'm-1' });
    const ack = await client.next((f) => f.type === 'ack', TIMEOUT);
    expect(ack).toMatchObject({ type: 'ack', request_id: 'm-1' });
    await waitFor(() => prompts.length === 1, { timeoutMs: TIMEOUT, message: 'prompt event consumed' });
    const record = prompts[0] as BusMessage;
    expect(record.key).toBe(userid);
    expect(promptEventSchema.parse(JSON.parse(record.value))).toMatchObject({
      v: 1,
      userid,
      content: 'Hello, how are you?',
      request_id: 'm-1',
    });
  });

  it('delivers a frame from the user’s Redis channel to that user’s socket only', async () => {
    const alice = uniqueName('alice');
    const bob = uniqueName('bob');
    const aliceClient = await open(alice);
    const bobClient = await open(bob);
    // The sockets open before their channels are subscribed; until then a publish reaches no one.
    // Copies are harmless: delivery drops an event_id it has already sent.
    const publish = (userid: string, payload: string) =>
      waitFor(async () => (await relay.publish(REDIS_KEYS.userChannel(userid), payload)) === 1, {
        message: `${userid} subscribed`,
      });
    // What message-relay publishes: the frame for a final event, with its replay-log id last.
    const eventId = `${Date.now()}-0`;
    await publish(alice, serializeFrame(finalFrame(alice, 'Hi Alice'), eventId));
    const response = await aliceClient.next((f) => f.type === 'response');
    expect(response).toMatchObject({ content: 'Hi Alice', request_id: 'r-1', event_id: eventId });
    // Bob's socket gets a later frame of his own, and nothing before it.
    await publish(bob, serializeFrame(finalFrame(bob, 'Hi Bob'), `${Date.now()}-1`));
    await bobClient.next((f) => f.type === 'response');
    expect(bobClient.frames.map((f) => f.content)).toEqual(['Hi Bob']);
    expect(aliceClient.frames.map((f) => f.content)).toEqual(['Hi Alice']);
  });

  it('closes a frame over MAX_PAYLOAD_BYTES with 1009', async () => {
    const client = await open(uniqueName('alice'));
    client.sendRaw(JSON.stringify({ type: 'message', content: 'y'.repeat(config.gateway.maxPayloadBytes) }));
    await waitFor(() => client.closed, { message: 'closed' });
    expect(client.closed).toEqual({ code: 1009, reason: 'message_too_large' });
  });
});
