import {
  REDIS_KEYS,
  attachEventId,
  createRedisPubSub,
  createRedisStore,
  serializeFrame,
  type KeyValueStore,
} from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { frames, relayFrame } from './testing/frames.js';
import { startGateway, type Harness } from './testing/gateway-harness.js';

const redisUrl = inject('redisUrl');

/** Resume against real Redis: the replay log is a real capped stream, the channel real pub/sub. */
describe('resume on real Redis', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  function redis() {
    const store = createRedisStore({ url: redisUrl, logger: silentLogger });
    const pubsub = createRedisPubSub({ url: redisUrl, logger: silentLogger });
    cleanup.push(
      () => store.close(),
      () => pubsub.close(),
    );
    return { store, pubsub };
  }

  /** A user id no other test uses; its keys are deleted afterwards. */
  function user(store: KeyValueStore): string {
    const userid = uniqueName('resume');
    cleanup.push(async () => {
      await store.del(REDIS_KEYS.replayLog(userid));
      await store.del(`stream-trimmed:${REDIS_KEYS.replayLog(userid)}`);
    });
    return userid;
  }

  async function gateway(store: KeyValueStore, serverId: string): Promise<Harness> {
    const h = await startGateway({ store, pubsub: redis().pubsub, serverId });
    cleanup.push(() => h.close());
    return h;
  }

  it('replays the missed frames, one published during the read, then live ones, on another gateway', async () => {
    const relay = redis();
    const userid = user(relay.store);
    const a = await gateway(redis().store, 'gw-a');
    let duringRead: (() => Promise<void>) | undefined;
    const base = redis().store;
    const reading: KeyValueStore = {
      ...base,
      async streamRead(key, afterId, count) {
        const rows = await base.streamRead(key, afterId, count);
        const hook = duringRead;
        duringRead = undefined;
        await hook?.();
        return rows;
      },
    };
    const b = await gateway(reading, 'gw-b');

    const first = await a.open(userid, '&stream=1');
    const seen = await relayFrame(relay.store, relay.pubsub, userid, frames.delta('r1', 0, 'one ', userid));
    await first.next((f) => f.event_id === seen);
    await first.close();

    const missed = [
      await relayFrame(relay.store, relay.pubsub, userid, frames.delta('r1', 1, 'two', userid)),
      await relayFrame(relay.store, relay.pubsub, userid, frames.final('r1', 'one two', userid)),
    ];
    let live = '';
    duringRead = async () => {
      live = await relayFrame(relay.store, relay.pubsub, userid, frames.final('r2', 'during', userid));
    };
    const second = await b.open(userid, `&stream=1&last_event_id=${seen}`);
    await waitFor(() => second.frames.length === 3);
    const after = await relayFrame(relay.store, relay.pubsub, userid, frames.final('r3', 'after', userid));
    await second.next((f) => f.event_id === after);
    expect(second.frames.map((f) => f.event_id)).toEqual([...missed, live, after]);
  });

  it('sends resume.gap first when the capped log trimmed past last_event_id', async () => {
    const relay = redis();
    const userid = user(relay.store);
    const h = await gateway(redis().store, 'gw-gap');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        await relayFrame(relay.store, relay.pubsub, userid, frames.final(`r${i}`, `m${i}`, userid), {
          maxLength: 2,
        }),
      );
    }
    const c = await h.open(userid, `&last_event_id=${ids[1]}`);
    await waitFor(() => c.frames.length === 3);
    expect(c.frames[0]).toMatchObject({ type: 'resume.gap', last_event_id: ids[1], oldest_event_id: ids[3] });
    expect(c.frames.slice(1).map((f) => f.event_id)).toEqual(ids.slice(3));
  });

  it('after the channel connection drops and comes back, sockets catch up on what it missed', async () => {
    const relay = redis();
    const userid = user(relay.store);
    let resync = () => {};
    const pubsub = createRedisPubSub({ url: redisUrl, logger: silentLogger, onResubscribed: () => resync() });
    cleanup.push(() => pubsub.close());
    const h = await startGateway({ store: redis().store, pubsub, serverId: 'gw-blip' });
    cleanup.push(() => h.close());
    resync = () => h.gateway.resync();
    const c = await h.open(userid, '&stream=1');
    const before = await relayFrame(relay.store, relay.pubsub, userid, frames.delta('r1', 0, 'a', userid));
    await c.next((f) => f.event_id === before);

    // The subscriber connection drops; what the relay publishes meanwhile reaches no gateway.
    pubsub.subscriber.disconnect(true);
    await waitFor(() => pubsub.subscriber.status !== 'ready');
    const missed = await relayFrame(relay.store, relay.pubsub, userid, frames.final('r1', 'a!', userid), {
      publish: false,
    });
    const stored = serializeFrame(frames.final('r1', 'a!', userid));
    expect(await relay.pubsub.publish(REDIS_KEYS.userChannel(userid), attachEventId(stored, missed))).toBe(0);
    await c.next((f) => f.event_id === missed);
    await waitFor(async () => (await h.metric('gateway_resyncs_total')) === 1);
    const after = await relayFrame(relay.store, relay.pubsub, userid, frames.final('r2', 'b', userid));
    await c.next((f) => f.event_id === after);
    expect(c.frames.map((f) => f.event_id)).toEqual([before, missed, after]);
  });

  it('resumes with nothing missed: no gap, no frame, then live', async () => {
    const relay = redis();
    const userid = user(relay.store);
    const h = await gateway(redis().store, 'gw-none');
    const seen = await relayFrame(relay.store, relay.pubsub, userid, frames.final('r0', 'seen', userid));
    const c = await h.open(userid, `&last_event_id=${seen}`);
    await waitFor(async () => (await h.metric('gateway_resumes_total', { outcome: 'ok' })) === 1);
    const next = await relayFrame(relay.store, relay.pubsub, userid, frames.final('r1', 'next', userid));
    await c.next((f) => f.event_id === next);
    expect(c.frames.map((f) => f.event_id)).toEqual([next]);
  });
});
