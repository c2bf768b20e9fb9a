import { afterEach, describe, expect, it } from 'vitest';
import type { KeyValueStore, PubSub } from '../transport/store.js';
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
