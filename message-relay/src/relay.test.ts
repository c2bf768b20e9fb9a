import {
  REDIS_KEYS,
  attachEventId,
  compareStreamIds,
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  dlqEventSchema,
  isStreamOnlyPayload,
  serverFrameSchema,
  type Bus,
  type DlqEvent,
  type KeyValueStore,
  type Metrics,
  type PubSub,
} from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createRelay, type Relay } from './relay.js';

/** A received frame as a plain record; checked against the server-frame contract separately. */
const frameRecord = z.record(z.string(), z.unknown());

interface Received {
  channel: string;
  payload: string;
  frame: Record<string, unknown>;
}

const settings = { groupId: 'message-relay', concurrency: 4 };
const delivery = { replayMaxEvents: 1000, replayTtlMs: 3_600_000, dedupeTtlMs: 86_400_000 };

const base = { v: 1 };
const delta = (userid: string, request_id: string, seq: number, text: string) =>
  JSON.stringify({ ...base, type: 'delta', userid, request_id, seq, delta: text });
const final = (userid: string, request_id: string, content: string) =>
  JSON.stringify({
    ...base,
    type: 'final',
    userid,
    request_id,
    content,
    timestamp: '2024-01-01T12:00:00Z',
    processing_time_ms: 1200,
  });
const errorEvent = (userid: string, request_id: string) =>
  JSON.stringify({
    ...base,
    type: 'error',
    userid,
    request_id,
    code: 'upstream_unavailable',
    message: 'Service temporarily unavailable',
  });

/** A Redis-like error reply (WRONGTYPE, OOM, …): the name ioredis gives them. */
function replyError(message: string): Error {
  const err = new Error(message);
  err.name = 'ReplyError';
  return err;
}

describe('createRelay (in-process bus, store and pub/sub)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  interface Fixture {
    bus: Bus;
    store: KeyValueStore;
    metrics: Metrics;
    topics: { responses: string; responsesDlq: string };
    relay: Relay;
    /** Every frame seen on the watched user channels, in arrival order. */
    received: Received[];
    dlq: DlqEvent[];
    /** What the bus reported fatal (a handler that threw). */
    fatal: Error[];
    watch(userid: string): Promise<void>;
    startRelay(overrides?: { store?: KeyValueStore; pubsub?: PubSub }): Promise<Relay>;
  }

  async function setup(
    options: {
      store?: KeyValueStore;
      pubsub?: (hub: ReturnType<typeof createMemoryPubSubHub>) => PubSub;
    } = {},
  ): Promise<Fixture> {
    const fatal: Error[] = [];
    const bus = createMemoryBus({ defaultPartitions: 3, onFatal: (e) => fatal.push(e) });
    await bus.connect();
    cleanup.push(() => bus.close());
    const store = createMemoryStore();
    const hub = createMemoryPubSubHub();
    const watcher = hub.client();
    cleanup.push(() => watcher.close());
    const metrics = createMetrics({ service: 'message-relay', instance: 'test', defaultMetrics: false });
    const topics = { responses: uniqueName('responses'), responsesDlq: uniqueName('responses.dlq') };
    const received: Received[] = [];
    const dlq: DlqEvent[] = [];

    await bus.subscribe({
      groupId: uniqueName('dlq-reader'),
      topics: [topics.responsesDlq],
      fromBeginning: true,
      handler: async (m) => {
        const parsed = dlqEventSchema.safeParse(JSON.parse(m.value));
        if (!parsed.success) throw new Error(`bad DLQ record: ${m.value}`);
        dlq.push(parsed.data);
      },
    });

    const startRelay = async (overrides: { store?: KeyValueStore; pubsub?: PubSub } = {}) => {
      const pubsub = overrides.pubsub ?? options.pubsub?.(hub) ?? hub.client();
      const relay = createRelay({
        config: { kafka: { partitions: 3 }, relay: settings, delivery },
        logger: silentLogger,
        metrics,
        bus,
        store: overrides.store ?? options.store ?? store,
        pubsub,
        topics,
        retry: { baseMs: 1, maxMs: 5 },
      });
      cleanup.push(async () => {
        await relay.close();
        await pubsub.close();
      });
      await relay.start();
      await waitFor(() => relay.ready().checks.subscription?.ok === true, { message: 'relay subscribed' });
      return relay;
    };
    const relay = await startRelay();
    expect(fatal).toEqual([]);

    return {
      bus,
      store,
      metrics,
      topics,
      relay,
      received,
      dlq,
      fatal,
      watch: (userid) =>
        watcher.subscribe(REDIS_KEYS.userChannel(userid), (payload, channel) => {
          received.push({ channel, payload, frame: frameRecord.parse(JSON.parse(payload)) });
        }),
      startRelay,
    };
  }

  const send = (f: Fixture, key: string, ...values: string[]) =>
    f.bus.publish(
      f.topics.responses,
      values.map((value) => ({ key, value })),
    );

  /** Sum of a metric's samples matching `labels`; a histogram's `_count` is read from its family. */
  async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}) {
    const family = name.replace(/_(count|sum|bucket)$/, '');
    const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === family);
    const values = (metric?.values ?? []) as Array<{
      value: number;
      labels: Record<string, unknown>;
      metricName?: string;
    }>;
    return values
      .filter((v) => (v.metricName ?? family) === name)
      .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
      .reduce((sum, v) => sum + v.value, 0);
  }

  /** Metrics are recorded after the publish, a moment after a listener sees the frame. */
  const waitForMetric = (metrics: Metrics, name: string, labels: Record<string, string>, want: number) =>
    waitFor(async () => (await metricValue(metrics, name, labels)) === want, {
      message: `${name} ${JSON.stringify(labels)} = ${want}`,
    });

  it('relays delta, final and error events as client frames with increasing event_ids', async () => {
    const f = await setup();
    await f.watch('alice');
    await send(
      f,
      'alice',
      delta('alice', 'r1', 0, 'Hel'),
      delta('alice', 'r1', 1, 'lo'),
      final('alice', 'r1', 'Hello'),
      errorEvent('alice', 'r2'),
    );
    await waitFor(() => f.received.length === 4);

    expect(f.received.map((r) => r.channel)).toEqual(Array(4).fill('user:alice'));
    expect(f.received.map((r) => r.frame.type)).toEqual([
      'response.delta',
      'response.delta',
      'response',
      'error',
    ]);
    expect(f.received[0]?.frame).toMatchObject({ request_id: 'r1', seq: 0, delta: 'Hel', userid: 'alice' });
    // The original response and error frames, field for field, plus additive fields.
    expect(f.received[2]?.frame).toMatchObject({
      type: 'response',
      content: 'Hello',
      userid: 'alice',
      timestamp: '2024-01-01T12:00:00Z',
      processing_time_ms: 1200,
      request_id: 'r1',
      finish_reason: 'stop',
    });
    expect(f.received[3]?.frame).toMatchObject({
      type: 'error',
      message: 'Service temporarily unavailable',
      code: 'upstream_unavailable',
      userid: 'alice',
      request_id: 'r2',
    });
    for (const r of f.received) {
      expect(serverFrameSchema.safeParse(r.frame).success).toBe(true);
      expect(r.payload.startsWith(`{"type":"${String(r.frame.type)}"`)).toBe(true);
    }

    const ids = f.received.map((r) => String(r.frame.event_id));
    for (let i = 1; i < ids.length; i++) expect(compareStreamIds(ids[i - 1] ?? '', ids[i] ?? '')).toBe(-1);

    // The replay log holds the same frames under the same ids: a replayed frame equals the live one.
    const log = await f.store.streamRead(REDIS_KEYS.replayLog('alice'), '0', 100);
    expect(log.map((e) => e.id)).toEqual(ids);
    expect(log.map((e) => attachEventId(e.fields.frame ?? '', e.id))).toEqual(
      f.received.map((r) => r.payload),
    );
    // Four appends to one log: lengths 1, 2, 3 and 4 observed.
    await waitForMetric(f.metrics, 'message_relay_replay_log_length_count', {}, 4);
    expect(await metricValue(f.metrics, 'message_relay_replay_log_length_sum')).toBe(10);
    expect(f.relay.ready().checks).toMatchObject({ kafka: { ok: true }, redis: { ok: true } });
    expect(await metricValue(f.metrics, 'message_relay_upstream_up', { upstream: 'kafka' })).toBe(1);

    await waitForMetric(f.metrics, 'message_relay_latency_seconds_count', {}, 4);
    expect(await metricValue(f.metrics, 'message_relay_frames_total', { type: 'response.delta' })).toBe(2);
    expect(await metricValue(f.metrics, 'message_relay_frames_total', { type: 'response' })).toBe(1);
    expect(await metricValue(f.metrics, 'message_relay_frames_total', { type: 'error' })).toBe(1);
    expect(f.relay.ready()).toEqual({
      ready: true,
      checks: { kafka: { ok: true }, subscription: { ok: true }, redis: { ok: true } },
    });
  });

  it('never puts a frame for one user on another user’s channel', async () => {
    const f = await setup();
    await f.watch('alice');
    await f.watch('bob');
    for (let i = 0; i < 5; i++) {
      await send(f, 'alice', delta('alice', 'ra', i, `a${i}`));
      await send(f, 'bob', delta('bob', 'rb', i, `b${i}`));
    }
    await send(f, 'carol', final('carol', 'rc', 'nobody listens'));
    await waitFor(() => f.received.length === 10);
    for (const r of f.received) {
      expect(r.channel).toBe(`user:${String(r.frame.userid)}`);
    }
    const alice = f.received.filter((r) => r.channel === 'user:alice').map((r) => r.frame.delta);
    const bob = f.received.filter((r) => r.channel === 'user:bob').map((r) => r.frame.delta);
    expect(alice).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
    expect(bob).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);
    // Carol had no socket anywhere: her frame waits in her replay log, not on anyone's channel.
    await waitFor(
      async () => (await f.store.streamRead(REDIS_KEYS.replayLog('carol'), '0', 10)).length === 1,
    );
    expect(f.received.some((r) => r.frame.userid === 'carol')).toBe(false);
    await waitForMetric(f.metrics, 'message_relay_no_subscriber_total', {}, 1);
    expect(await f.store.streamRead(REDIS_KEYS.replayLog('bob'), '0', 100)).toHaveLength(5);
  });

  it('keeps the dedupe state per user and per request: the same request id elsewhere is not a duplicate', async () => {
    const f = await setup();
    // Ids containing ':' must not make two users' state keys collide.
    const pairs: Array<[string, string]> = [
      ['alice', 'same'],
      ['bob', 'same'],
      ['a:b', 'c'],
      ['a', 'b:c'],
    ];
    for (const [userid] of pairs) await f.watch(userid);
    for (const [userid, request] of pairs) await send(f, userid, final(userid, request, `for ${userid}`));
    await waitFor(() => f.received.length === 4);
    for (const r of f.received) expect(r.channel).toBe(`user:${String(r.frame.userid)}`);
    expect(f.received.map((r) => r.frame.content).sort()).toEqual(
      ['for a', 'for a:b', 'for alice', 'for bob'].sort(),
    );
    expect(await metricValue(f.metrics, 'message_relay_duplicates_skipped_total')).toBe(0);
  });

  it('appends a redelivered delta once; only a copy of the newest frame is published again, same event_id', async () => {
    const f = await setup();
    await f.watch('alice');
    await send(
      f,
      'alice',
      delta('alice', 'r1', 0, 'Hel'),
      delta('alice', 'r1', 1, 'lo'),
      delta('alice', 'r1', 1, 'lo'),
      delta('alice', 'r1', 0, 'Hel'),
      delta('alice', 'r1', 2, '!'),
      final('alice', 'r1', 'Hello!'),
    );
    // The final is last on the partition: once it is here, every redelivery before it was handled.
    await waitFor(() => f.received.some((r) => r.frame.type === 'response'));
    // seq 1 arrived again while it was the newest frame: published again (it may never have been),
    // with its original event_id, which gateways drop. seq 0 again was older: not published.
    expect(f.received.map((r) => [r.frame.type, r.frame.seq])).toEqual([
      ['response.delta', 0],
      ['response.delta', 1],
      ['response.delta', 1],
      ['response.delta', 2],
      ['response', undefined],
    ]);
    expect(f.received[2]?.frame.event_id).toBe(f.received[1]?.frame.event_id);
    const log = await f.store.streamRead(REDIS_KEYS.replayLog('alice'), '0', 100);
    expect(log.map((e) => e.id)).toEqual([...new Set(f.received.map((r) => r.frame.event_id))]);
    await waitForMetric(f.metrics, 'message_relay_frames_total', {}, 4);
    expect(
      await metricValue(f.metrics, 'message_relay_duplicates_skipped_total', { type: 'response.delta' }),
    ).toBe(2);
  });

  it('skips a redelivered final and everything after it (late delta, error, reset)', async () => {
    const f = await setup();
    await f.watch('alice');
    await send(
      f,
      'alice',
      final('alice', 'r1', 'the answer'),
      final('alice', 'r1', 'the answer'),
      delta('alice', 'r1', 7, 'late'),
      errorEvent('alice', 'r1'),
      JSON.stringify({ v: 1, type: 'reset', userid: 'alice', request_id: 'r1' }),
      final('alice', 'r2', 'next request'),
    );
    await waitFor(() => f.received.some((r) => r.frame.request_id === 'r2'));
    // The redelivered final (and the error, also a final) are copies of the newest frame: published
    // again under the final's event_id; the late delta and the reset are not published at all.
    expect(f.received.map((r) => [r.frame.request_id, r.frame.content ?? r.frame.message])).toEqual([
      ['r1', 'the answer'],
      ['r1', 'the answer'],
      ['r1', 'the answer'],
      ['r2', 'next request'],
    ]);
    expect(new Set(f.received.slice(0, 3).map((r) => r.frame.event_id)).size).toBe(1);
    expect(await f.store.streamRead(REDIS_KEYS.replayLog('alice'), '0', 100)).toHaveLength(2);
    await waitForMetric(f.metrics, 'message_relay_frames_total', {}, 2);
    const skipped = async (type: string) =>
      metricValue(f.metrics, 'message_relay_duplicates_skipped_total', { type });
    expect(await skipped('response')).toBe(1);
    expect(await skipped('response.delta')).toBe(1);
    expect(await skipped('error')).toBe(1);
    expect(await skipped('response.reset')).toBe(1);
  });

  it('relays a reset as response.reset, then appends the restarted deltas from seq 0', async () => {
    const f = await setup();
    await f.watch('alice');
    await send(
      f,
      'alice',
      delta('alice', 'r1', 0, 'Hel'),
      delta('alice', 'r1', 1, 'p'),
      JSON.stringify({ v: 1, type: 'reset', userid: 'alice', request_id: 'r1', extra: 'not for clients' }),
      delta('alice', 'r1', 0, 'Hel'),
      delta('alice', 'r1', 1, 'lo'),
      final('alice', 'r1', 'Hello'),
    );
    await waitFor(() => f.received.length === 6);
    expect(f.received.map((r) => r.frame.type)).toEqual([
      'response.delta',
      'response.delta',
      'response.reset',
      'response.delta',
      'response.delta',
      'response',
    ]);
    const reset = f.received[2];
    expect(reset?.frame).toEqual({
      type: 'response.reset',
      request_id: 'r1',
      userid: 'alice',
      event_id: expect.any(String),
    });
    expect(isStreamOnlyPayload(reset?.payload ?? '')).toBe(true);
    for (const r of f.received) expect(serverFrameSchema.safeParse(r.frame).success).toBe(true);
    // The client contract: the deltas after the last reset concatenate to the final content.
    const afterReset = f.received.slice(3, 5).map((r) => String(r.frame.delta));
    expect(afterReset.join('')).toBe(f.received[5]?.frame.content);
    expect(await f.store.streamRead(REDIS_KEYS.replayLog('alice'), '0', 100)).toHaveLength(6);
  });

  it('publishes a queued event as a queued frame without event_id, never appends it', async () => {
    const f = await setup();
    await f.watch('alice');
    const queued = (request_id: string, position: number) =>
      JSON.stringify({
        v: 1,
        type: 'queued',
        userid: 'alice',
        request_id,
        position,
        extra: 'not for clients',
      });
    await send(
      f,
      'alice',
      queued('r1', 2),
      queued('r1', 1),
      delta('alice', 'r1', 0, 'Hi'),
      final('alice', 'r1', 'Hi'),
    );
    await waitFor(() => f.received.length === 4);
    expect(f.received.map((r) => r.frame.type)).toEqual(['queued', 'queued', 'response.delta', 'response']);
    expect(f.received[0]?.frame).toEqual({ type: 'queued', request_id: 'r1', position: 2, userid: 'alice' });
    expect(f.received[1]?.frame.position).toBe(1);
    expect(isStreamOnlyPayload(f.received[0]?.payload ?? '')).toBe(true);
    for (const r of f.received) expect(serverFrameSchema.safeParse(r.frame).success).toBe(true);
    // Only the answer is in the log: a resume never replays a stale position.
    const log = await f.store.streamRead(REDIS_KEYS.replayLog('alice'), '0', 100);
    expect(log.map((e) => (JSON.parse(e.fields.frame ?? '{}') as { type?: string }).type)).toEqual([
      'response.delta',
      'response',
    ]);
    await waitForMetric(f.metrics, 'message_relay_queued_frames_total', { outcome: 'published' }, 2);
    expect(await metricValue(f.metrics, 'message_relay_frames_total', { type: 'queued' })).toBe(0);
    expect(f.dlq).toEqual([]);
  });

  it('drops a queued hint Redis cannot take, without retrying or stalling the answer behind it', async () => {
    const f = await setup({
      pubsub: (hub): PubSub => {
        const client = hub.client();
        return {
          kind: client.kind,
          subscribe: (channel, listener) => client.subscribe(channel, listener),
          unsubscribe: (channel, listener) => client.unsubscribe(channel, listener),
          channels: () => client.channels(),
          close: () => client.close(),
          publish: (channel, payload) =>
            payload.startsWith('{"type":"queued"')
              ? Promise.reject(new Error('connection lost'))
              : client.publish(channel, payload),
        };
      },
    });
    await f.watch('alice');
    await send(
      f,
      'alice',
      JSON.stringify({ v: 1, type: 'queued', userid: 'alice', request_id: 'r1', position: 0 }),
      final('alice', 'r1', 'Hi'),
    );
    await waitFor(() => f.received.length === 1);
    expect(f.received[0]?.frame.type).toBe('response');
    await waitForMetric(f.metrics, 'message_relay_queued_frames_total', { outcome: 'failed' }, 1);
    expect(f.fatal).toEqual([]);
    expect(f.dlq).toEqual([]);
  });

  it('sends invalid records to the DLQ and goes on with the next valid one', async () => {
    const f = await setup();
    await f.watch('alice');
    const invalid = [
      '{not json',
      JSON.stringify({ v: 2, type: 'delta', userid: 'alice', request_id: 'r', seq: 0, delta: 'x' }),
      JSON.stringify({ v: 1, type: 'final', userid: 'alice', request_id: 'r' }),
      JSON.stringify({ v: 1, type: 'shout', userid: 'alice', request_id: 'r' }),
    ];
    await f.bus.publish(
      f.topics.responses,
      invalid.map((value) => ({ key: 'alice', value, headers: { correlation_id: 'corr-1' } })),
    );
    await send(f, 'alice', final('alice', 'r-ok', 'still here'));

    await waitFor(() => f.received.length === 1 && f.dlq.length === 4);
    expect(f.received[0]?.frame).toMatchObject({ type: 'response', request_id: 'r-ok' });
    expect(f.dlq.map((d) => d.value)).toEqual(invalid);
    for (const d of f.dlq) {
      expect(d).toMatchObject({
        v: 1,
        source_topic: f.topics.responses,
        key: 'alice',
        error: { code: 'invalid_event' },
      });
      expect(Number.isNaN(Date.parse(d.failed_at))).toBe(false);
    }
    expect(f.dlq[0]?.error.message).toBe('value is not valid JSON');
    expect(f.dlq[1]?.error.message).toMatch(/^v:/);
    // Nothing invalid reached the replay log.
    expect(await f.store.streamRead(REDIS_KEYS.replayLog('alice'), '0', 100)).toHaveLength(1);
    await waitForMetric(f.metrics, 'message_relay_dlq_total', { reason: 'invalid_event' }, 4);
    expect(f.relay.ready().ready).toBe(true);
  });

  it('rides out Redis failures: retries, then relays each frame exactly once', async () => {
    const inner = createMemoryStore();
    let appendFailures = 2;
    const flaky: KeyValueStore = {
      ...inner,
      appendFrame: async (options) => {
        if (appendFailures-- > 0) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
        return inner.appendFrame(options);
      },
    };
    let publishFailures = 1;
    const f = await setup({
      store: flaky,
      pubsub: (hub) => {
        const client = hub.client();
        return {
          ...client,
          publish: async (channel, message) => {
            if (publishFailures-- > 0) throw new Error('Connection is closed.');
            return client.publish(channel, message);
          },
        };
      },
    });
    await f.watch('alice');
    await send(f, 'alice', final('alice', 'r1', 'after the outage'));
    await waitFor(() => f.received.length === 1);
    const log = await inner.streamRead(REDIS_KEYS.replayLog('alice'), '0', 10);
    expect(log).toHaveLength(1);
    expect(f.received[0]?.frame.event_id).toBe(log[0]?.id);
    await waitForMetric(f.metrics, 'message_relay_frames_total', {}, 1);
    expect(await metricValue(f.metrics, 'message_relay_redis_errors_total', { op: 'append' })).toBe(2);
    expect(await metricValue(f.metrics, 'message_relay_redis_errors_total', { op: 'publish' })).toBe(1);
    expect(f.relay.ready().checks.redis).toEqual({ ok: true });
  });

  it('sends a record Redis refuses (a reply error) to the DLQ instead of stalling the partition', async () => {
    const inner = createMemoryStore();
    const refusing: KeyValueStore = {
      ...inner,
      appendFrame: async (options) => {
        if (options.stream === REDIS_KEYS.replayLog('broken')) {
          throw replyError('WRONGTYPE Operation against a key holding the wrong kind of value');
        }
        return inner.appendFrame(options);
      },
    };
    const f = await setup({ store: refusing });
    await f.watch('broken');
    await f.watch('alice');
    await send(f, 'broken', final('broken', 'r1', 'x'));
    await send(f, 'alice', final('alice', 'r2', 'y'));
    await waitFor(() => f.dlq.length === 1 && f.received.length === 1);
    expect(f.dlq[0]).toMatchObject({ key: 'broken', error: { code: 'redis_rejected' } });
    expect(f.received[0]?.frame).toMatchObject({ userid: 'alice', request_id: 'r2' });
  });

  it('a bug met on one record sends it to the DLQ; the relay goes on and stays subscribed', async () => {
    const inner = createMemoryStore();
    const buggy: KeyValueStore = {
      ...inner,
      // A malformed result where the relay reads it, outside every try of the handler.
      appendFrame: async (options) =>
        options.stream === REDIS_KEYS.replayLog('odd')
          ? ({ eventId: '1-0', duplicate: true } as unknown as Awaited<
              ReturnType<KeyValueStore['appendFrame']>
            >)
          : inner.appendFrame(options),
    };
    const f = await setup({ store: buggy });
    await f.watch('alice');
    await send(f, 'odd', final('odd', 'r1', 'x'));
    await send(f, 'alice', final('alice', 'r2', 'y'));
    await waitFor(() => f.dlq.length === 1 && f.received.length === 1);
    expect(f.dlq[0]).toMatchObject({ key: 'odd', error: { code: 'internal_error' } });
    expect(f.fatal).toEqual([]);
    expect(f.relay.ready().checks.subscription).toEqual({ ok: true });
    expect(await metricValue(f.metrics, 'handler_errors_total', { handler: 'response' })).toBe(1);
  });

  it('on close while Redis is down, hands the message back uncommitted for the next relay', async () => {
    const inner = createMemoryStore();
    let attempts = 0;
    const down: KeyValueStore = {
      ...inner,
      appendFrame: async () => {
        attempts++;
        throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
      },
    };
    const f = await setup({ store: down });
    await f.watch('alice');
    await send(f, 'alice', final('alice', 'r1', 'survives'));
    await waitFor(() => attempts >= 3);
    // The reason names the failing command and the connection error, for /ready and the stack.
    expect(f.relay.ready()).toMatchObject({
      ready: false,
      checks: { redis: { ok: false, reason: 'append failing: connect ECONNREFUSED 127.0.0.1:6379' } },
    });
    await f.relay.close();
    await f.relay.close();
    expect(f.received).toEqual([]);

    // A successor in the same group (Redis back) gets the uncommitted record and relays it.
    await f.startRelay({ store: inner });
    await waitFor(() => f.received.length === 1);
    expect(f.received[0]?.frame).toMatchObject({ request_id: 'r1', content: 'survives' });
  });
});
