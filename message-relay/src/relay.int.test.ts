import {
  REDIS_KEYS,
  attachEventId,
  compareStreamIds,
  createKafkaBus,
  createMetrics,
  createRedisPubSub,
  createRedisStore,
  dlqEventSchema,
  serverFrameSchema,
  type DlqEvent,
} from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { createRelay } from './relay.js';

const brokers = inject('kafkaBrokers').split(',');
const redisUrl = inject('redisUrl');
const TIMEOUT = 30_000;

/** A received frame as a plain record; checked against the server-frame contract separately. */
const frameRecord = z.record(z.string(), z.unknown());

interface Received {
  channel: string;
  payload: string;
  frame: Record<string, unknown>;
}

const finalEvent = (userid: string, request_id: string, content: string) =>
  JSON.stringify({
    v: 1,
    type: 'final',
    userid,
    request_id,
    content,
    timestamp: new Date().toISOString(),
    processing_time_ms: 5,
  });

describe('message-relay on real Kafka and Redis', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function setup(relaySettings: { replayMaxEvents?: number } = {}) {
    const fatal: Error[] = [];
    const bus = createKafkaBus({
      brokers,
      clientId: uniqueName('relay-int'),
      logger: silentLogger,
      onFatal: (e) => fatal.push(e),
      sessionTimeoutMs: 6000,
    });
    cleanup.push(() => bus.close());
    await bus.connect();
    const store = createRedisStore({ url: redisUrl, logger: silentLogger, connectionName: 'relay-int' });
    cleanup.push(() => store.close());
    const pubsub = createRedisPubSub({ url: redisUrl, logger: silentLogger, connectionName: 'relay-int' });
    cleanup.push(() => pubsub.close());
    const watcher = createRedisPubSub({ url: redisUrl, logger: silentLogger, connectionName: 'relay-watch' });
    cleanup.push(() => watcher.close());

    const topics = { responses: uniqueName('responses'), responsesDlq: uniqueName('responses.dlq') };
    const relay = createRelay({
      config: {
        kafka: { partitions: 3 },
        relay: { groupId: uniqueName('message-relay'), concurrency: 4 },
        delivery: {
          replayMaxEvents: relaySettings.replayMaxEvents ?? 1000,
          replayTtlMs: 60_000,
          dedupeTtlMs: 60_000,
        },
      },
      logger: silentLogger,
      metrics: createMetrics({ service: 'message-relay', instance: 'int', defaultMetrics: false }),
      bus,
      store,
      pubsub,
      topics,
    });
    cleanup.push(() => relay.close());
    await relay.start();
    await waitFor(() => relay.ready().ready, { timeoutMs: TIMEOUT, message: 'relay ready' });

    const received: Received[] = [];
    const users: string[] = [];
    const watch = async (prefix: string) => {
      const userid = uniqueName(prefix);
      users.push(userid);
      cleanup.push(() => store.del(REDIS_KEYS.replayLog(userid)));
      await watcher.subscribe(REDIS_KEYS.userChannel(userid), (payload, channel) =>
        received.push({ channel, payload, frame: frameRecord.parse(JSON.parse(payload)) }),
      );
      return userid;
    };
    const send = (key: string, ...values: string[]) =>
      bus.publish(
        topics.responses,
        values.map((value) => ({ key, value, headers: { correlation_id: uniqueName('corr') } })),
      );
    return { bus, store, relay, topics, received, watch, send, fatal };
  }

  it('relays delta, final and error events to the user channel with event_ids from the replay log', async () => {
    const { store, relay, received, watch, send, fatal } = await setup();
    const alice = await watch('alice');
    const bob = await watch('bob');
    await send(
      alice,
      JSON.stringify({ v: 1, type: 'delta', userid: alice, request_id: 'r1', seq: 0, delta: 'Hel' }),
      JSON.stringify({ v: 1, type: 'delta', userid: alice, request_id: 'r1', seq: 1, delta: 'lo' }),
      finalEvent(alice, 'r1', 'Hello'),
    );
    await send(
      bob,
      JSON.stringify({
        v: 1,
        type: 'error',
        userid: bob,
        request_id: 'r2',
        code: 'rate_limited',
        message: 'Too many messages, slow down',
      }),
    );
    await waitFor(() => received.length === 4, { timeoutMs: TIMEOUT, message: 'four frames' });

    const forAlice = received.filter((r) => r.channel === REDIS_KEYS.userChannel(alice));
    const forBob = received.filter((r) => r.channel === REDIS_KEYS.userChannel(bob));
    expect(forAlice.map((r) => r.frame.type)).toEqual(['response.delta', 'response.delta', 'response']);
    expect(forBob.map((r) => r.frame)).toEqual([
      {
        type: 'error',
        message: 'Too many messages, slow down',
        code: 'rate_limited',
        userid: bob,
        request_id: 'r2',
        event_id: expect.any(String),
      },
    ]);
    for (const r of received) {
      expect(r.channel).toBe(REDIS_KEYS.userChannel(String(r.frame.userid)));
      expect(serverFrameSchema.safeParse(r.frame).success).toBe(true);
    }
    expect(forAlice[2]?.frame).toMatchObject({ content: 'Hello', userid: alice, processing_time_ms: 5 });

    const ids = forAlice.map((r) => String(r.frame.event_id));
    expect(compareStreamIds(ids[0] ?? '', ids[1] ?? '')).toBe(-1);
    expect(compareStreamIds(ids[1] ?? '', ids[2] ?? '')).toBe(-1);
    const log = await store.streamRead(REDIS_KEYS.replayLog(alice), '0', 100);
    expect(log.map((e) => e.id)).toEqual(ids);
    expect(log.map((e) => attachEventId(e.fields.frame ?? '', e.id))).toEqual(forAlice.map((r) => r.payload));
    // The replay log expires after the resume window.
    const ttl = await store.client.pttl(REDIS_KEYS.replayLog(alice));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(relay.ready()).toMatchObject({ ready: true });
    expect(fatal).toEqual([]);
  });

  it('caps the replay log at REPLAY_MAX_EVENTS, keeping the newest frames', async () => {
    const { store, received, watch, send } = await setup({ replayMaxEvents: 3 });
    const carol = await watch('carol');
    await send(carol, ...[0, 1, 2, 3, 4].map((i) => finalEvent(carol, `r${i}`, `answer ${i}`)));
    await waitFor(() => received.length === 5, { timeoutMs: TIMEOUT });
    const log = await store.streamRead(REDIS_KEYS.replayLog(carol), '0', 100);
    expect(log.map((e) => e.id)).toEqual(received.slice(2).map((r) => r.frame.event_id));
  });

  it('relays a final published twice on the topic once: one log entry, one event_id (the copy republished)', async () => {
    const { store, relay, received, watch, send, fatal } = await setup();
    const erin = await watch('erin');
    cleanup.push(() => store.del(REDIS_KEYS.relayed(erin, 'r1')));
    const twice = finalEvent(erin, 'r1', 'only once');
    // Two separate records (two offsets): what Kafka hands the relay after a crash before the commit.
    await send(erin, twice);
    await send(erin, twice);
    await send(erin, finalEvent(erin, 'r2', 'marker'));
    // The marker comes after both copies on the partition, so both were handled once it arrives.
    await waitFor(() => received.some((r) => r.frame.request_id === 'r2'), {
      timeoutMs: TIMEOUT,
      message: 'marker frame',
    });
    // The second copy finds r1's newest frame: it is published again with the same event_id (the first
    // publish may never have happened), which gateways drop when they already delivered it.
    expect(received.map((r) => [r.frame.request_id, r.frame.content])).toEqual([
      ['r1', 'only once'],
      ['r1', 'only once'],
      ['r2', 'marker'],
    ]);
    expect(received[1]?.frame.event_id).toBe(received[0]?.frame.event_id);
    const log = await store.streamRead(REDIS_KEYS.replayLog(erin), '0', 100);
    expect(log.map((e) => e.id)).toEqual([...new Set(received.map((r) => r.frame.event_id))]);
    expect(await store.client.hgetall(REDIS_KEYS.relayed(erin, 'r1'))).toMatchObject({
      done: '1',
      lastkey: 'final',
    });
    const stateTtl = await store.client.pttl(REDIS_KEYS.relayed(erin, 'r1'));
    expect(stateTtl).toBeGreaterThan(0);
    expect(stateTtl).toBeLessThanOrEqual(60_000);
    expect(relay.ready()).toMatchObject({ ready: true });
    expect(fatal).toEqual([]);
  });

  it('sends invalid records to responses.dlq and keeps relaying', async () => {
    const { bus, topics, received, watch, send, fatal } = await setup();
    const dave = await watch('dave');
    const invalid = [
      'not json at all',
      JSON.stringify({ v: 2, type: 'delta', userid: dave, request_id: 'r', seq: 0, delta: 'x' }),
      JSON.stringify({ v: 1, type: 'delta', userid: dave, request_id: 'r' }),
    ];
    await send(dave, ...invalid);
    await send(dave, finalEvent(dave, 'r-ok', 'fine'));

    const dlq: Array<{ record: DlqEvent; key: string | null; headers: Record<string, string> }> = [];
    const reader = await bus.subscribe({
      groupId: uniqueName('dlq-reader'),
      topics: [topics.responsesDlq],
      fromBeginning: true,
      handler: async (m) => {
        const parsed = dlqEventSchema.safeParse(JSON.parse(m.value));
        if (!parsed.success) throw new Error(`bad DLQ record ${m.value}`);
        dlq.push({ record: parsed.data, key: m.key, headers: m.headers });
      },
    });
    cleanup.push(() => reader.close());

    await waitFor(() => received.length === 1 && dlq.length === 3, { timeoutMs: TIMEOUT, message: 'DLQ' });
    expect(received[0]?.frame).toMatchObject({ type: 'response', request_id: 'r-ok', content: 'fine' });
    expect(dlq.map((d) => d.record.value)).toEqual(invalid);
    for (const d of dlq) {
      expect(d.key).toBe(dave);
      expect(d.headers.correlation_id).toMatch(/^corr-/);
      expect(d.record).toMatchObject({
        source_topic: topics.responses,
        key: dave,
        error: { code: 'invalid_event' },
      });
    }
    expect(fatal).toEqual([]);
  });
});
