import {
  REDIS_KEYS,
  TOPICS,
  compareStreamIds,
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  type Bus,
  type BusMessage,
  type KeyValueStore,
  type MemoryPubSubHub,
  type PubSub,
} from '@relay/common';
import { waitFor } from '@relay/common/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { frames, relayFrame } from './testing/frames.js';
import { startGateway, type Harness, type HarnessOptions } from './testing/gateway-harness.js';
import type { TestClient } from './testing/ws-client.js';

type Frame = Record<string, unknown>;

const eventIds = (fs: Frame[]) =>
  fs.map((f) => f.event_id).filter((id): id is string => typeof id === 'string');
const byType = (fs: Frame[], type: string) => fs.filter((f) => f.type === type);

/** A deferred the test resolves or rejects later. */
function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('delivery guarantees at the gateway (real uWS, in-process transports)', () => {
  let hub: MemoryPubSubHub;
  let relay: PubSub;
  let store: KeyValueStore;
  const harnesses: Harness[] = [];

  beforeEach(() => {
    hub = createMemoryPubSubHub();
    relay = hub.client();
    store = createMemoryStore();
  });

  afterEach(async () => {
    for (const h of harnesses.splice(0)) await h.close();
  });

  async function gateway(options: HarnessOptions = {}): Promise<Harness> {
    const h = await startGateway({ store, pubsub: hub.client(), ...options });
    harnesses.push(h);
    return h;
  }

  /** Prompts the gateway published, read by a consumer of the memory bus. */
  async function collectPrompts(bus: Bus): Promise<BusMessage[]> {
    const prompts: BusMessage[] = [];
    await bus.subscribe({
      groupId: 'test',
      topics: [TOPICS.incoming],
      handler: async (m) => void prompts.push(m),
    });
    return prompts;
  }

  describe('resume', () => {
    it('replays exactly the missed frames in order, then live ones, including one published during the read', async () => {
      let duringRead: (() => Promise<void>) | undefined;
      const reading: KeyValueStore = {
        ...store,
        async streamRead(key, afterId, count) {
          const rows = await store.streamRead(key, afterId, count);
          // The relay appends and publishes while the gateway reads: the read missed it.
          const hook = duringRead;
          duringRead = undefined;
          await hook?.();
          return rows;
        },
      };
      const h = await gateway({ store: reading });
      const first = await h.open('alice', '&stream=1');
      await relayFrame(store, relay, 'alice', frames.delta('r1', 0, 'Hel'));
      await relayFrame(store, relay, 'alice', frames.delta('r1', 1, 'lo'));
      await waitFor(() => first.frames.length === 2);
      const lastSeen = eventIds(first.frames).at(-1) as string;
      await first.close();
      await waitFor(() => h.gateway.stats().connections === 0);

      const missed = [
        await relayFrame(store, relay, 'alice', frames.delta('r1', 2, ', wor')),
        await relayFrame(store, relay, 'alice', frames.delta('r1', 3, 'ld')),
        await relayFrame(store, relay, 'alice', frames.final('r1', 'Hello, world')),
      ];
      let live: string | undefined;
      duringRead = async () => {
        live = await relayFrame(store, relay, 'alice', frames.final('r2', 'during the read'));
      };
      const second = await h.open('alice', `&stream=1&last_event_id=${lastSeen}`);
      await waitFor(() => second.frames.length === 4);
      const after = await relayFrame(store, relay, 'alice', frames.final('r3', 'after'));
      await second.next((f) => f.event_id === after);

      expect(eventIds(second.frames)).toEqual([...missed, live, after]);
      expect(second.frames).toHaveLength(5);
      const text = byType([...first.frames, ...second.frames], 'response.delta')
        .map((f) => f.delta)
        .join('');
      expect(text).toBe('Hello, world');
      expect(await h.metric('gateway_resumes_total', { outcome: 'ok' })).toBe(1);
    });

    it('a socket that does not stream gets the finals only', async () => {
      const h = await gateway();
      const seen = await relayFrame(store, relay, 'alice', frames.final('r0', 'seen'));
      await relayFrame(store, relay, 'alice', frames.delta('r1', 0, 'x'));
      const fin = await relayFrame(store, relay, 'alice', frames.final('r1', 'x'));
      const c = await h.open('alice', `&last_event_id=${seen}`);
      await c.next((f) => f.event_id === fin);
      expect(c.frames.map((f) => f.type)).toEqual(['response']);
    });

    it('sends resume.gap first when last_event_id was trimmed from the log', async () => {
      const h = await gateway();
      const cap = { maxLength: 3 };
      const ids: string[] = [];
      for (let i = 0; i < 6; i++)
        ids.push(await relayFrame(store, relay, 'alice', frames.final(`r${i}`, `m${i}`), cap));
      const c = await h.open('alice', `&last_event_id=${ids[0]}`);
      await waitFor(() => c.frames.length === 4);
      expect(c.frames[0]).toEqual({
        type: 'resume.gap',
        last_event_id: ids[0],
        oldest_event_id: ids[3],
        message: expect.any(String),
      });
      expect(eventIds(c.frames)).toEqual(ids.slice(3));
      expect(await h.metric('gateway_resumes_total', { outcome: 'gap' })).toBe(1);
    });

    it('resumes on another gateway instance sharing the store', async () => {
      const a = await gateway({ serverId: 'gw-a' });
      const b = await gateway({ serverId: 'gw-b' });
      const onA = await a.open('alice', '&stream=1');
      const seen = await relayFrame(store, relay, 'alice', frames.delta('r1', 0, 'a'));
      await onA.next((f) => f.event_id === seen);
      // Gateway A goes away (drain: 1001); the client reconnects to B.
      await a.gateway.close();
      await waitFor(() => onA.closed);
      expect(onA.closed?.code).toBe(1001);
      const missed = await relayFrame(store, relay, 'alice', frames.delta('r1', 1, 'b'));
      const onB = await b.open('alice', `&stream=1&last_event_id=${seen}`);
      await onB.next((f) => f.event_id === missed);
      const fin = await relayFrame(store, relay, 'alice', frames.final('r1', 'ab'));
      await onB.next((f) => f.event_id === fin);
      expect(eventIds(onB.frames)).toEqual([missed, fin]);
    });

    it('after a lost channel subscription, resync catches every socket up from the log', async () => {
      const h = await gateway();
      const streaming = await h.open('alice', '&stream=1');
      const quiet = await h.open('alice', '');
      const a = await relayFrame(store, relay, 'alice', frames.delta('r1', 0, 'a'));
      await streaming.next((f) => f.event_id === a);
      // Redis blipped: the relay appended these, but the gateway's channel never delivered them.
      const lost = [
        await relayFrame(store, relay, 'alice', frames.delta('r1', 1, 'b'), { publish: false }),
        await relayFrame(store, relay, 'alice', frames.final('r1', 'ab'), { publish: false }),
      ];
      h.gateway.resync();
      await streaming.next((f) => f.event_id === lost[1]);
      const e = await relayFrame(store, relay, 'alice', frames.final('r2', 'e'));
      await streaming.next((f) => f.event_id === e);
      await quiet.next((f) => f.event_id === e);
      expect(eventIds(streaming.frames)).toEqual([a, ...lost, e]);
      expect(eventIds(quiet.frames)).toEqual([lost[1], e]);
      expect(await h.metric('gateway_resyncs_total')).toBe(1);
    });

    it('a frame that arrives live right after the resubscription does not make the resync skip the missed ones', async () => {
      // The chaos suite's Redis restart: frames appended while the channel was down have lower ids
      // than the first one delivered after it came back, which may arrive before the resync runs.
      const h = await gateway();
      const streaming = await h.open('alice', '&stream=1');
      const a = await relayFrame(store, relay, 'alice', frames.delta('r1', 0, 'a'));
      await streaming.next((f) => f.event_id === a);
      h.gateway.suspend();
      const lost = [
        await relayFrame(store, relay, 'alice', frames.delta('r1', 1, 'b'), { publish: false }),
        await relayFrame(store, relay, 'alice', frames.delta('r1', 2, 'c'), { publish: false }),
      ];
      const early = await relayFrame(store, relay, 'alice', frames.delta('r1', 3, 'd'));
      h.gateway.resync();
      const fin = await relayFrame(store, relay, 'alice', frames.final('r1', 'abcd'));
      await streaming.next((f) => f.event_id === fin);
      expect(eventIds(streaming.frames)).toEqual([a, ...lost, early, fin]);
      expect(
        streaming.frames
          .filter((f) => f.type === 'response.delta')
          .map((f) => f.delta)
          .join(''),
      ).toBe('abcd');
    });

    it('refuses a malformed last_event_id with 400 and treats an empty one as absent', async () => {
      const h = await gateway();
      const status = await new Promise<number>((resolve, reject) => {
        void h.url('alice', '&last_event_id=abc').then((url) => {
          const s = new WebSocket(url);
          s.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
          s.once('open', () => reject(new Error('upgraded')));
        });
      });
      expect(status).toBe(400);
      const c = await h.open('alice', '&last_event_id=');
      const id = await relayFrame(store, relay, 'alice', frames.final('r1', 'x'));
      await c.next((f) => f.event_id === id);
    });
  });

  describe('accept', () => {
    it('a duplicate id is acked twice and published once, on the same and on another socket', async () => {
      const h = await gateway();
      const prompts = await collectPrompts(h.bus);
      const c = await h.open('alice');
      c.send({ type: 'message', content: 'hi', id: 'm-1' });
      c.send({ type: 'message', content: 'hi', id: 'm-1' });
      await waitFor(() => byType(c.frames, 'ack').length === 2);
      const other = await h.open('alice');
      other.send({ type: 'message', content: 'hi', id: 'm-1' });
      await other.next((f) => f.type === 'ack');
      expect(byType(c.frames, 'ack').map((f) => f.request_id)).toEqual(['m-1', 'm-1']);
      await waitFor(() => prompts.length === 1);
      expect(await store.get(REDIS_KEYS.accepted('alice', 'm-1'))).toBe('m-1');
      expect(await h.metric('gateway_messages_total', { outcome: 'duplicate' })).toBe(2);
      // The same id from another user is another message.
      const bob = await h.open('bob');
      bob.send({ type: 'message', content: 'hi', id: 'm-1' });
      await bob.next((f) => f.type === 'ack');
      await waitFor(() => prompts.length === 2);
    });

    it('a failed publish deletes the marker, so the retry goes through', async () => {
      const inner = createMemoryBus({ defaultPartitions: 2 });
      await inner.connect();
      let failures = 1;
      const bus: Bus = {
        ...inner,
        async publish(topic, records) {
          if (failures-- > 0) throw new Error('broker unavailable');
          return inner.publish(topic, records);
        },
      };
      const h = await gateway({ bus });
      const prompts = await collectPrompts(inner);
      const c = await h.open('alice');
      c.send({ type: 'message', content: 'hi', id: 'm-2' });
      const err = await c.next((f) => f.type === 'error');
      expect(err).toMatchObject({ code: 'upstream_unavailable', request_id: 'm-2' });
      expect(await store.get(REDIS_KEYS.accepted('alice', 'm-2'))).toBeNull();
      expect(byType(c.frames, 'ack')).toHaveLength(0);
      c.send({ type: 'message', content: 'hi', id: 'm-2' });
      await c.next((f) => f.type === 'ack');
      await waitFor(() => prompts.length === 1);
      expect(await h.metric('gateway_kafka_publish_failures_total', { reason: 'failed' })).toBe(1);
      await inner.close();
    });

    it('a resend while the first copy is still being published is told to retry, never acked early', async () => {
      const inner = createMemoryBus({ defaultPartitions: 2 });
      await inner.connect();
      const gate = deferred();
      let publishes = 0;
      const bus: Bus = {
        ...inner,
        async publish(topic, records) {
          publishes++;
          await gate.promise;
          return inner.publish(topic, records);
        },
      };
      const h = await gateway({ bus });
      const first = await h.open('alice');
      first.send({ type: 'message', content: 'hi', id: 'm-3' });
      await waitFor(() => publishes === 1);
      // The client reconnected (say) and resends on another socket while the first publish hangs.
      const second = await h.open('alice');
      second.send({ type: 'message', content: 'hi', id: 'm-3' });
      expect(await second.next((f) => f.type === 'error')).toMatchObject({
        code: 'upstream_unavailable',
        request_id: 'm-3',
      });
      expect(byType(first.frames, 'ack')).toHaveLength(0);
      gate.resolve();
      await first.next((f) => f.type === 'ack');
      second.send({ type: 'message', content: 'hi', id: 'm-3' });
      await second.next((f) => f.type === 'ack');
      expect(publishes).toBe(1);
      await inner.close();
    });

    it('with Kafka known to be down, messages get upstream_unavailable at once and no ack', async () => {
      const inner = createMemoryBus({ defaultPartitions: 2 });
      await inner.connect();
      let up = true;
      let publishes = 0;
      const bus: Bus = {
        ...inner,
        healthy: () => up,
        async publish(topic, records) {
          publishes++;
          return inner.publish(topic, records);
        },
      };
      const h = await gateway({ bus });
      const c = await h.open('alice');
      up = false;
      c.send({ type: 'message', content: 'hi', id: 'm-7' });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({
        code: 'upstream_unavailable',
        request_id: 'm-7',
      });
      expect(publishes).toBe(0);
      expect(await store.get(REDIS_KEYS.accepted('alice', 'm-7'))).toBeNull();
      expect(await h.metric('gateway_kafka_publish_failures_total', { reason: 'unhealthy' })).toBe(1);
      up = true;
      c.send({ type: 'message', content: 'hi', id: 'm-7' });
      await c.next((f) => f.type === 'ack');
      expect(c.closed).toBeNull();
      await inner.close();
    });

    it('with Redis failing, messages get upstream_unavailable and the socket stays open', async () => {
      let down = false;
      const failing: KeyValueStore = {
        ...store,
        incrementWindow: async (key, windowMs) => {
          if (down) throw new Error('connection refused');
          return store.incrementWindow(key, windowMs);
        },
      };
      const h = await gateway({ store: failing });
      const c = await h.open('alice');
      down = true;
      c.send({ type: 'message', content: 'hi', id: 'm-4' });
      expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'upstream_unavailable' });
      expect(c.closed).toBeNull();
      expect(await h.metric('gateway_redis_errors_total', { op: 'rate_limit' })).toBe(1);
    });
  });

  it('cancel sets the cancel key and tells every consumer, for the socket’s own user only', async () => {
    const h = await gateway();
    const consumer = hub.client();
    const controls: string[] = [];
    await consumer.subscribe(REDIS_KEYS.cancelChannel, (m) => controls.push(m));
    const c = await h.open('alice');
    // Pending here: acked on this socket, no final yet (no consumer runs in this harness).
    c.send({ type: 'message', content: 'long answer', id: 'm-9' });
    await c.next((f) => f.type === 'ack');
    c.send({ type: 'cancel', request_id: 'm-9' });
    await waitFor(() => controls.length === 1);
    expect(JSON.parse(controls[0] as string)).toEqual({ userid: 'alice', request_id: 'm-9' });
    expect(await store.get(REDIS_KEYS.cancel('alice', 'm-9'))).toBe('1');
    // No frame back; a later frame on the socket arrives first.
    c.sendRaw('not json');
    await c.next((f) => f.type === 'error');
    expect(c.frames.map((f) => f.code ?? f.type)).toEqual(['ack', 'invalid_json']);
    await consumer.close();
  });

  it('cancel is refused with unknown_request unless this user has the request pending', async () => {
    const h = await gateway();
    const consumer = hub.client();
    const controls: string[] = [];
    await consumer.subscribe(REDIS_KEYS.cancelChannel, (m) => controls.push(m));
    // Running on a consumer (acked by another gateway): Redis knows it.
    await store.set(REDIS_KEYS.request('alice', 'elsewhere'), 'running');
    await store.set(REDIS_KEYS.request('alice', 'answered'), 'done');
    await store.set(REDIS_KEYS.request('bob', 'bobs'), 'running');
    const c = await h.open('alice');
    for (const id of ['never-sent', 'answered', 'bobs', 'elsewhere'])
      c.send({ type: 'cancel', request_id: id });
    await waitFor(() => controls.length === 1 && c.frames.length === 3);
    expect(c.frames.map((f) => [f.code, f.request_id])).toEqual([
      ['unknown_request', 'never-sent'],
      ['unknown_request', 'answered'],
      ['unknown_request', 'bobs'],
    ]);
    expect(JSON.parse(controls[0] as string)).toEqual({ userid: 'alice', request_id: 'elsewhere' });
    expect(await store.get(REDIS_KEYS.cancel('alice', 'never-sent'))).toBeNull();
    await consumer.close();
  });

  it('drains: ready 503 at once, new work refused, the in-flight message acked, then 1001', async () => {
    const inner = createMemoryBus({ defaultPartitions: 2 });
    await inner.connect();
    const gate = deferred();
    let publishes = 0;
    const bus: Bus = {
      ...inner,
      async publish(topic, records) {
        publishes++;
        await gate.promise;
        return inner.publish(topic, records);
      },
    };
    const h = await gateway({ bus });
    const c = await h.open('alice');
    c.send({ type: 'message', content: 'in flight', id: 'm-5' });
    await waitFor(() => publishes === 1);
    const closing = h.gateway.close();
    expect((await fetch(`${h.base}/ready`)).status).toBe(503);
    const upgrade = await new Promise<number>((resolve) => {
      void h.url('bob').then((url) => {
        const s = new WebSocket(url);
        s.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        s.once('open', () => resolve(101));
      });
    });
    expect(upgrade).toBe(503);
    c.send({ type: 'message', content: 'too late', id: 'm-6' });
    expect(await c.next((f) => f.request_id === 'm-6')).toMatchObject({
      type: 'error',
      code: 'upstream_unavailable',
    });
    expect(c.closed).toBeNull();
    gate.resolve();
    await c.next((f) => f.type === 'ack');
    await closing;
    await waitFor(() => c.closed);
    expect(c.closed).toEqual({ code: 1001, reason: 'server_shutdown' });
    expect(c.frames.filter((f) => f.type === 'ack').map((f) => f.request_id)).toEqual(['m-5']);
    await inner.close();
  });

  describe('slow clients', () => {
    const SLOW = { SLOW_CLIENT_SOFT_BYTES: String(16 * 1024), SLOW_CLIENT_HARD_BYTES: String(512 * 1024) };
    const CHUNK = 'x'.repeat(4000);

    /** Publishes deltas of r1 until the gateway reports held (coalesced) ones, or the socket closed. */
    async function floodUntil(h: Harness, c: TestClient, done: () => Promise<boolean>): Promise<string[]> {
      const sent: string[] = [];
      for (let seq = 0; seq < 20_000 && !(await done()); seq++) {
        const delta = `${seq}:${CHUNK}|`;
        await relayFrame(store, relay, 'alice', frames.delta('r1', seq, delta));
        sent.push(delta);
        // Let the memory pub/sub deliver (a microtask) before checking again.
        await new Promise((r) => setImmediate(r));
      }
      expect(c.socket.isPaused).toBe(true);
      return sent;
    }

    it('coalesces deltas for a client that does not read; they still add up to the final, which arrives', async () => {
      const h = await gateway({ env: SLOW });
      const c = await h.open('alice', '&stream=1');
      c.socket.pause();
      const sent = await floodUntil(
        h,
        c,
        async () => (await h.metric('gateway_deltas_coalesced_total')) >= 5,
      );
      const fin = await relayFrame(store, relay, 'alice', frames.final('r1', sent.join('')));
      c.socket.resume();
      await c.next((f) => f.event_id === fin, 30_000);
      const deltas = byType(c.frames, 'response.delta');
      expect(deltas.length).toBeLessThan(sent.length);
      expect(deltas.map((f) => f.delta).join('')).toBe(sent.join(''));
      expect(byType(c.frames, 'response')).toHaveLength(1);
      const ids = eventIds(c.frames);
      expect([...ids].sort(compareStreamIds)).toEqual(ids);
      expect(c.closed).toBeNull();
    });

    it('closes a client past the hard limit with 1008 slow_consumer', async () => {
      const h = await gateway({ env: SLOW });
      const c = await h.open('alice', '&stream=1');
      c.socket.pause();
      await floodUntil(h, c, async () => h.gateway.stats().connections === 0);
      expect(await h.metric('gateway_slow_client_closes_total')).toBe(1);
      c.socket.resume();
      await waitFor(() => c.closed, { timeoutMs: 30_000 });
      expect(c.closed).toEqual({ code: 1008, reason: 'slow_consumer' });
    });
  });
});
