import { afterEach, describe, expect, it } from 'vitest';
import { REDIS_KEYS } from '../contract/redis-keys.js';
import { compareStreamIds, type KeyValueStore, type PubSub } from '../transport/store.js';
import { uniqueName, waitFor } from './wait-for.js';

export interface StoreFixture {
  store(): Promise<KeyValueStore>;
  pubsub(): Promise<PubSub>;
}

/** Behaviour every KeyValueStore and PubSub must have. Run against the in-process twins and real Redis. */
export function storeContract(name: string, fixture: StoreFixture): void {
  describe(`Store contract: ${name}`, () => {
    const cleanup: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
    });
    const store = async () => {
      const s = await fixture.store();
      cleanup.push(() => s.close());
      return s;
    };
    const pubsub = async () => {
      const p = await fixture.pubsub();
      cleanup.push(() => p.close());
      return p;
    };

    it('get/set/del, with onlyIfAbsent and TTL', async () => {
      const s = await store();
      const key = uniqueName('kv');
      expect(await s.get(key)).toBeNull();
      expect(await s.set(key, 'one', { onlyIfAbsent: true })).toBe(true);
      expect(await s.set(key, 'two', { onlyIfAbsent: true })).toBe(false);
      expect(await s.get(key)).toBe('one');
      expect(await s.del(key)).toBe(1);
      expect(await s.del(key)).toBe(0);
      await s.set(key, 'short', { ttlMs: 50 });
      expect(await s.get(key)).toBe('short');
      await waitFor(async () => (await s.get(key)) === null, { timeoutMs: 2000 });
    });

    it('incrementWindow counts within a window and starts over after it', async () => {
      const s = await store();
      const key = uniqueName('rate');
      expect((await s.incrementWindow(key, 200)).count).toBe(1);
      const second = await s.incrementWindow(key, 200);
      expect(second.count).toBe(2);
      expect(second.resetMs).toBeGreaterThan(0);
      expect(second.resetMs).toBeLessThanOrEqual(200);
      await waitFor(async () => (await s.incrementWindow(key, 200)).count === 1, { timeoutMs: 2000 });
    });

    it('incrementWindow adds a given amount, readable with get', async () => {
      const s = await store();
      const key = uniqueName('budget');
      expect((await s.incrementWindow(key, 10_000, 120)).count).toBe(120);
      expect((await s.incrementWindow(key, 10_000, 30)).count).toBe(150);
      expect(await s.get(key)).toBe('150');
    });

    it('concurrent increments are atomic', async () => {
      const s = await store();
      const key = uniqueName('rate-par');
      const counts = await Promise.all(Array.from({ length: 50 }, () => s.incrementWindow(key, 10_000)));
      expect(counts.map((c) => c.count).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
    });

    it('listAppend keeps the newest maxLength items', async () => {
      const s = await store();
      const key = uniqueName('list');
      expect(await s.listAppend(key, ['a', 'b', 'c'], { maxLength: 4, ttlMs: 10_000 })).toBe(3);
      expect(await s.listAppend(key, ['d', 'e'], { maxLength: 4, ttlMs: 10_000 })).toBe(4);
      expect(await s.listRange(key, 0, -1)).toEqual(['b', 'c', 'd', 'e']);
      expect(await s.listRange(key, -2, -1)).toEqual(['d', 'e']);
      expect(await s.listRange(uniqueName('none'), 0, -1)).toEqual([]);
    });

    it('streamAppend assigns increasing ids, caps length, and streamRead is exclusive of afterId', async () => {
      const s = await store();
      const key = uniqueName('stream');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await s.streamAppend(key, { n: String(i) }, { maxLength: 3 }));
      expect(new Set(ids).size).toBe(5);
      const all = await s.streamRead(key, '0', 100);
      expect(all.map((e) => e.fields.n)).toEqual(['2', '3', '4']);
      const after = await s.streamRead(key, ids[2] as string, 100);
      expect(after.map((e) => e.id)).toEqual([ids[3], ids[4]]);
      expect(await s.streamRead(key, ids[4] as string, 100)).toEqual([]);
      expect((await s.streamRead(key, '0', 1)).length).toBe(1);
    });

    it('streamInfo reports first, last and the highest trimmed id; null for a missing stream', async () => {
      const s = await store();
      const key = uniqueName('stream-info');
      expect(await s.streamInfo(key)).toBeNull();
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await s.streamAppend(key, { n: String(i) }, { maxLength: 2 }));
      const info = await s.streamInfo(key);
      expect(info).toEqual({ firstId: ids[2], lastId: ids[3], maxDeletedId: ids[1], length: 2 });
      const fresh = uniqueName('stream-info-fresh');
      await s.streamAppend(fresh, { n: '0' }, { maxLength: 10 });
      expect((await s.streamInfo(fresh))?.maxDeletedId).toBe('0-0');
    });

    describe('appendFrame (the relay append of docs/delivery.md)', () => {
      /** A fresh user and request: keys as the relay builds them, under unique ids. */
      const target = () => {
        const userid = uniqueName('relay-user');
        return { userid, stream: REDIS_KEYS.replayLog(userid), state: REDIS_KEYS.relayed(userid, 'r:1') };
      };
      const limits = { maxLength: 100, ttlMs: 60_000, stateTtlMs: 60_000 };
      const delta = (t: { stream: string; state: string }, seq: number) => ({
        ...limits,
        ...t,
        kind: 'delta' as const,
        seq,
        frame: `{"type":"response.delta","seq":${seq}}`,
      });
      const other = (
        t: { stream: string; state: string },
        kind: 'reset' | 'final',
        frame: string = kind,
      ) => ({
        ...limits,
        ...t,
        kind,
        frame,
      });
      const frames = async (s: KeyValueStore, stream: string) =>
        (await s.streamRead(stream, '0', 1000)).map((e) => e.fields.frame);

      it('appends deltas in seq order; a redelivered newest seq comes back as a duplicate, older ones as null', async () => {
        const s = await store();
        const t = target();
        const first = await s.appendFrame(delta(t, 0));
        const second = await s.appendFrame(delta(t, 1));
        expect(first).toEqual({ eventId: expect.stringMatching(/^\d+-\d+$/), duplicate: false, length: 1 });
        expect(second).toMatchObject({ duplicate: false, length: 2 });
        expect(compareStreamIds(first?.eventId ?? '', second?.eventId ?? '')).toBe(-1);
        const before = await s.streamInfo(t.stream);
        // The newest frame again: its original id, to be published again (it may never have been).
        expect(await s.appendFrame(delta(t, 1))).toEqual({
          eventId: second?.eventId,
          duplicate: true,
          frame: '{"type":"response.delta","seq":1}',
        });
        expect(await s.appendFrame(delta(t, 0))).toBeNull();
        expect(await s.streamInfo(t.stream)).toEqual(before);
        expect((await s.appendFrame(delta(t, 2)))?.duplicate).toBe(false);
        expect(await frames(s, t.stream)).toEqual([
          '{"type":"response.delta","seq":0}',
          '{"type":"response.delta","seq":1}',
          '{"type":"response.delta","seq":2}',
        ]);
        // The entry id is what the caller gets: the frame's event_id.
        expect((await s.streamRead(t.stream, '0', 1))[0]?.id).toBe(first?.eventId);
      });

      it('skips everything after a final: a second final, a late delta, a reset', async () => {
        const s = await store();
        const t = target();
        await s.appendFrame(delta(t, 0));
        const final = await s.appendFrame(other(t, 'final', 'answer'));
        expect(final?.duplicate).toBe(false);
        // A redelivered final is the newest frame: same id and the stored frame back, nothing written.
        expect(await s.appendFrame(other(t, 'final', 'answer'))).toEqual({
          eventId: final?.eventId,
          duplicate: true,
          frame: 'answer',
        });
        // Whatever the redelivered event says, the stored frame is what comes back.
        expect(await s.appendFrame(other(t, 'final', 'an error this time'))).toEqual({
          eventId: final?.eventId,
          duplicate: true,
          frame: 'answer',
        });
        expect(await s.appendFrame(delta(t, 1))).toBeNull();
        expect(await s.appendFrame(delta(t, 99))).toBeNull();
        expect(await s.appendFrame(other(t, 'reset'))).toBeNull();
        expect(await frames(s, t.stream)).toEqual(['{"type":"response.delta","seq":0}', 'answer']);
      });

      it('a reset sets seq back, so the generation starts again at seq 0', async () => {
        const s = await store();
        const t = target();
        for (const seq of [0, 1, 2]) await s.appendFrame(delta(t, seq));
        expect(await s.appendFrame(other(t, 'reset'))).not.toBeNull();
        expect(await s.appendFrame(delta(t, 0))).not.toBeNull();
        expect(await s.appendFrame(delta(t, 1))).not.toBeNull();
        expect((await s.appendFrame(delta(t, 1)))?.duplicate).toBe(true);
        expect(await s.appendFrame(delta(t, 0))).toBeNull();
        // A reset is only skipped after a final: a second restart is a real one.
        expect(await s.appendFrame(other(t, 'reset'))).not.toBeNull();
        expect(await s.appendFrame(delta(t, 0))).not.toBeNull();
        expect(await s.appendFrame(other(t, 'final'))).not.toBeNull();
        expect((await frames(s, t.stream)).map((f) => (f?.startsWith('{') ? 'd' : f))).toEqual([
          'd',
          'd',
          'd',
          'reset',
          'd',
          'd',
          'reset',
          'd',
          'final',
        ]);
      });

      it('keeps separate requests and users independent', async () => {
        const s = await store();
        const t = target();
        const sibling = { stream: t.stream, state: REDIS_KEYS.relayed(t.userid, 'r:2') };
        await s.appendFrame(other(t, 'final'));
        expect(await s.appendFrame(delta(sibling, 0))).not.toBeNull();
        expect(await s.appendFrame(other(sibling, 'final'))).not.toBeNull();
        // The same request id for another user (and ids whose ':' must not collide in the key).
        const elsewhere = target();
        const lookalike = { stream: elsewhere.stream, state: REDIS_KEYS.relayed(`${t.userid}:r`, '1') };
        expect(
          await s.appendFrame(
            other({ ...elsewhere, state: REDIS_KEYS.relayed(elsewhere.userid, 'r:1') }, 'final'),
          ),
        ).not.toBeNull();
        expect(await s.appendFrame(other(lookalike, 'final'))).not.toBeNull();
        expect(await frames(s, t.stream)).toEqual(['final', '{"type":"response.delta","seq":0}', 'final']);
      });

      it('concurrent redeliveries of one final append it exactly once', async () => {
        const s = await store();
        const t = target();
        const results = await Promise.all(Array.from({ length: 20 }, () => s.appendFrame(other(t, 'final'))));
        expect(results.filter((r) => r?.duplicate === false)).toHaveLength(1);
        expect(new Set(results.map((r) => r?.eventId)).size).toBe(1);
        expect(await frames(s, t.stream)).toEqual(['final']);
      });

      it('caps the stream like streamAppend, recording the highest trimmed id', async () => {
        const s = await store();
        const t = target();
        const ids: Array<string | null> = [];
        const lengths: number[] = [];
        for (const seq of [0, 1, 2, 3]) {
          const appended = await s.appendFrame({ ...delta(t, seq), maxLength: 2 });
          ids.push(appended?.eventId ?? null);
          if (appended && !appended.duplicate) lengths.push(appended.length);
        }
        expect(lengths).toEqual([1, 2, 2, 2]);
        expect(await s.streamInfo(t.stream)).toEqual({
          firstId: ids[2],
          lastId: ids[3],
          maxDeletedId: ids[1],
          length: 2,
        });
      });

      it('forgets a request once its state expires (stateTtlMs)', async () => {
        const s = await store();
        const t = target();
        expect((await s.appendFrame({ ...other(t, 'final'), stateTtlMs: 50 }))?.duplicate).toBe(false);
        expect((await s.appendFrame(other(t, 'final')))?.duplicate).toBe(true);
        await waitFor(async () => (await s.appendFrame(other(t, 'final')))?.duplicate === false, {
          timeoutMs: 2000,
        });
        expect(await frames(s, t.stream)).toEqual(['final', 'final']);
      });
    });

    describe('presence (docs/presence.md)', () => {
      const T0 = 1_700_000_000_000;
      const opts = { leaseMs: 30_000, retentionMs: 60_000 };
      const keyOf = () => REDIS_KEYS.presence('site', uniqueName('presence-user'));
      const lease = (s: KeyValueStore, op: 'join' | 'leave', keys: string[], node: string, nowMs: number) =>
        s.presenceLease({ op, keys, node, nowMs, ...opts });

      it('online from the first node that joins until the last one leaves, across nodes', async () => {
        const s = await store();
        const key = keyOf();
        expect(await s.hashGetMany([key])).toEqual([null]);
        expect(await lease(s, 'join', [key], 'gw-a', T0)).toEqual([key]);
        // A second node joining, and the first one's heartbeat, change nothing anyone reads.
        expect(await lease(s, 'join', [key], 'gw-b', T0 + 10)).toEqual([]);
        expect(await lease(s, 'join', [key], 'gw-a', T0 + 20)).toEqual([]);
        const [fields] = await s.hashGetMany([key]);
        expect(fields).toEqual({
          '@gw-a': String(T0 + 20 + 30_000),
          '@gw-b': String(T0 + 10 + 30_000),
          l: String(T0 + 20),
          u: String(T0),
          n: 'gw-a',
        });
        expect(await lease(s, 'leave', [key], 'gw-a', T0 + 30)).toEqual([]);
        expect(await lease(s, 'leave', [key], 'gw-b', T0 + 40)).toEqual([key]);
        expect((await s.hashGetMany([key]))[0]).toEqual({
          l: String(T0 + 40),
          u: String(T0 + 40),
          n: 'gw-b',
        });
        // A leave of a node that no longer holds the user changes nothing.
        expect(await lease(s, 'leave', [key], 'gw-b', T0 + 50)).toEqual([]);
      });

      it('an expired lease counts for nothing: a crashed node cannot keep a user online', async () => {
        const s = await store();
        const key = keyOf();
        await lease(s, 'join', [key], 'gw-dead', T0);
        // The other node joins after gw-dead's lease ran out: that is a change (offline → online).
        expect(await lease(s, 'join', [key], 'gw-b', T0 + 30_000)).toEqual([key]);
        const [fields] = await s.hashGetMany([key]);
        expect(Object.keys(fields ?? {}).filter((f) => f.startsWith('@'))).toEqual(['@gw-b']);
        expect(await lease(s, 'leave', [key], 'gw-b', T0 + 30_001)).toEqual([key]);
      });

      it('a leave never creates a key; many keys in one call, only the changed ones reported', async () => {
        const s = await store();
        const keys = Array.from({ length: 700 }, keyOf);
        expect(await lease(s, 'leave', [keys[0] as string], 'gw-a', T0)).toEqual([]);
        expect(await s.hashGetMany([keys[0] as string])).toEqual([null]);
        await lease(s, 'join', keys.slice(0, 10), 'gw-a', T0);
        expect(await lease(s, 'join', keys, 'gw-a', T0 + 1)).toEqual(keys.slice(10));
        expect((await s.hashGetMany(keys)).every((f) => f !== null)).toBe(true);
      });

      it('presenceSet keeps the leases and returns the fields; the key lives retentionMs', async () => {
        const s = await store();
        const key = keyOf();
        await lease(s, 'join', [key], 'gw-a', T0);
        const fields = await s.presenceSet({
          key,
          node: 'gw-b',
          nowMs: T0 + 5,
          retentionMs: 60_000,
          status: 'away',
          message: 'lunch',
        });
        expect(fields).toMatchObject({
          '@gw-a': String(T0 + 30_000),
          s: 'away',
          m: 'lunch',
          u: String(T0 + 5),
          n: 'gw-b',
        });
        expect((await s.hashGetMany([key]))[0]).toEqual(fields);
        const short = keyOf();
        await s.presenceLease({
          op: 'join',
          keys: [short],
          node: 'gw-a',
          nowMs: T0,
          leaseMs: 30_000,
          retentionMs: 50,
        });
        await waitFor(async () => (await s.hashGetMany([short]))[0] === null, { timeoutMs: 2000 });
      });
    });

    it('pub/sub delivers to subscribed channels only, and stops after unsubscribe', async () => {
      const p = await pubsub();
      const pub = await pubsub();
      const a = uniqueName('user:a');
      const b = uniqueName('user:b');
      const got: Array<[string, string]> = [];
      const listener = (m: string, c: string) => void got.push([c, m]);
      await p.subscribe(a, listener);
      expect(p.channels()).toEqual([a]);
      expect(await pub.publish(a, 'hello')).toBeGreaterThanOrEqual(1);
      expect(await pub.publish(b, 'not for a')).toBe(0);
      await waitFor(() => got.length === 1);
      expect(got[0]).toEqual([a, 'hello']);
      await p.unsubscribe(a, listener);
      expect(p.channels()).toEqual([]);
      expect(await pub.publish(a, 'late')).toBe(0);
    });

    it('a channel stays subscribed until its last listener leaves', async () => {
      const p = await pubsub();
      const pub = await pubsub();
      const ch = uniqueName('user:multi');
      const one: string[] = [];
      const two: string[] = [];
      const l1 = (m: string) => void one.push(m);
      const l2 = (m: string) => void two.push(m);
      await p.subscribe(ch, l1);
      await p.subscribe(ch, l2);
      await pub.publish(ch, 'x');
      await waitFor(() => one.length === 1 && two.length === 1);
      await p.unsubscribe(ch, l1);
      await pub.publish(ch, 'y');
      await waitFor(() => two.length === 2);
      expect(one).toEqual(['x']);
      expect(p.channels()).toEqual([ch]);
    });
  });
}
