import { afterEach, describe, expect, it } from 'vitest';
import type { Bus, BusMessage, FatalHandler, Subscription } from '../transport/bus.js';
import { uniqueName, waitFor } from './wait-for.js';

export interface BusFixture {
  /** A fresh bus; `onFatal` receives subscription failures. */
  create(onFatal: FatalHandler): Promise<Bus>;
  /** How long a test may wait for delivery (a real broker needs a group join). */
  timeoutMs: number;
}

/** Behaviour every Bus must have. Run against the in-process bus and real Kafka. */
export function busContract(name: string, fixture: BusFixture): void {
  describe(`Bus contract: ${name}`, () => {
    const cleanup: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
    });

    async function bus(onFatal: FatalHandler = () => {}): Promise<Bus> {
      const b = await fixture.create(onFatal);
      cleanup.push(() => b.close());
      await b.connect();
      return b;
    }
    async function sub(b: Bus, s: Parameters<Bus['subscribe']>[0]): Promise<Subscription> {
      const subscription = await b.subscribe(s);
      cleanup.push(() => subscription.close());
      await waitFor(() => subscription.ready, {
        timeoutMs: fixture.timeoutMs,
        message: 'subscription ready',
      });
      return subscription;
    }
    const wait = <T>(c: () => T) => waitFor(c, { timeoutMs: fixture.timeoutMs });

    it('delivers published records to a subscriber, in order per key, with key and headers', async () => {
      const b = await bus();
      const topic = uniqueName('contract-order');
      await b.ensureTopics([{ topic, partitions: 3 }]);
      const got: BusMessage[] = [];
      await sub(b, {
        groupId: uniqueName('g'),
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => void got.push(m),
      });
      for (let i = 0; i < 10; i++) {
        await b.publish(topic, [
          { key: `user-${i % 2}`, value: `v${i}`, headers: { correlation_id: `c${i}` } },
        ]);
      }
      await wait(() => got.length === 10);
      for (const user of ['user-0', 'user-1']) {
        const values = got.filter((m) => m.key === user).map((m) => Number(m.value.slice(1)));
        expect(values).toEqual([...values].sort((x, y) => x - y));
      }
      const first = got.find((m) => m.value === 'v0');
      expect(first?.headers.correlation_id).toBe('c0');
      expect(first?.topic).toBe(topic);
      // One key always lands on one partition.
      expect(new Set(got.filter((m) => m.key === 'user-0').map((m) => m.partition)).size).toBe(1);
    });

    it('gives every group all records, and shares partitions within a group', async () => {
      const b = await bus();
      const topic = uniqueName('contract-groups');
      await b.ensureTopics([{ topic, partitions: 2 }]);
      const a: string[] = [];
      const c: string[] = [];
      await sub(b, {
        groupId: uniqueName('ga'),
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => void a.push(m.value),
      });
      await sub(b, {
        groupId: uniqueName('gc'),
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => void c.push(m.value),
      });
      await b.publish(
        topic,
        Array.from({ length: 6 }, (_, i) => ({ key: `k${i}`, value: String(i) })),
      );
      await wait(() => a.length === 6 && c.length === 6);
      expect([...a].sort()).toEqual(['0', '1', '2', '3', '4', '5']);
      expect([...c].sort()).toEqual(['0', '1', '2', '3', '4', '5']);
    });

    for (const concurrency of [1, 4]) {
      it(`commits only after the handler resolves: a failed handler is redelivered to the next member (concurrency ${concurrency})`, async () => {
        const fatal: Error[] = [];
        const b = await bus((e) => fatal.push(e));
        const topic = uniqueName('contract-redeliver');
        const groupId = uniqueName('g');
        await b.ensureTopics([{ topic, partitions: 1 }]);
        const first = await sub(b, {
          groupId,
          topics: [topic],
          fromBeginning: true,
          concurrency,
          handler: async (m) => {
            if (m.value === 'boom') throw new Error('handler bug');
          },
        });
        // With concurrency the records have different keys, so ok-2 may run (and even finish)
        // beside boom: it is after boom in the partition, so it is not committed either way.
        const key = (i: number) => (concurrency > 1 ? `k${i}` : 'k');
        await b.publish(topic, [{ key: key(1), value: 'ok-1' }]);
        await b.publish(topic, [{ key: key(2), value: 'boom' }]);
        await b.publish(topic, [{ key: key(3), value: 'ok-2' }]);
        await wait(() => fatal.length === 1);
        expect(fatal[0]?.message).toBe('handler bug');
        expect(first.ready).toBe(false);
        await first.close();

        const seen: string[] = [];
        await sub(b, {
          groupId,
          topics: [topic],
          fromBeginning: true,
          handler: async (m) => void seen.push(m.value),
        });
        await wait(() => seen.length >= 2);
        // ok-1 was committed before the failure; boom was not, and nothing after it was either.
        expect(seen).toEqual(['boom', 'ok-2']);
      });
    }

    it('a member that closes after finishing does not see those records again in its group', async () => {
      const b = await bus();
      const topic = uniqueName('contract-commit');
      const groupId = uniqueName('g');
      await b.ensureTopics([{ topic, partitions: 1 }]);
      const firstSeen: string[] = [];
      const first = await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => void firstSeen.push(m.value),
      });
      await b.publish(topic, [
        { key: 'k', value: 'a' },
        { key: 'k', value: 'b' },
      ]);
      await wait(() => firstSeen.length === 2);
      await first.close();
      await b.publish(topic, [{ key: 'k', value: 'c' }]);
      const secondSeen: string[] = [];
      await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => void secondSeen.push(m.value),
      });
      await wait(() => secondSeen.length === 1);
      expect(secondSeen).toEqual(['c']);
    });

    it('with concurrency, different keys run at once while each key runs one at a time, in order', async () => {
      const b = await bus();
      const topic = uniqueName('contract-concurrency');
      // One partition: the concurrency has to come from within it.
      await b.ensureTopics([{ topic, partitions: 1 }]);
      let inFlight = 0;
      let maxInFlight = 0;
      const activeKeys = new Set<string>();
      const sameKeyOverlaps: string[] = [];
      const finished: BusMessage[] = [];
      await sub(b, {
        groupId: uniqueName('g'),
        topics: [topic],
        fromBeginning: true,
        concurrency: 4,
        handler: async (m) => {
          const key = m.key ?? '';
          if (activeKeys.has(key)) sameKeyOverlaps.push(m.value);
          activeKeys.add(key);
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            // Only finishes once two handlers ran at the same time: with one-at-a-time handling
            // the first handler would wait here forever (and fail the test by timing out).
            await waitFor(() => maxInFlight >= 2, { timeoutMs: fixture.timeoutMs, message: 'overlap' });
            // A few turns of the event loop in the handler, so a same-key overlap would show.
            for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
          } finally {
            inFlight--;
            activeKeys.delete(key);
            finished.push(m);
          }
        },
      });
      const keys = ['u0', 'u1', 'u2', 'u3'];
      await b.publish(
        topic,
        Array.from({ length: 16 }, (_, i) => ({ key: keys[i % 4] as string, value: `${keys[i % 4]}:${i}` })),
      );
      await wait(() => finished.length === 16);
      expect(maxInFlight).toBeGreaterThanOrEqual(2);
      expect(maxInFlight).toBeLessThanOrEqual(4);
      expect(sameKeyOverlaps).toEqual([]);
      for (const key of keys) {
        const offsets = finished.filter((m) => m.key === key).map((m) => Number(m.offset));
        expect(offsets).toHaveLength(4);
        expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
      }
    });

    it('tells an observer which messages wait for a slot, oldest first, and nothing while none waits', async () => {
      const b = await bus();
      const topic = uniqueName('contract-waiting');
      await b.ensureTopics([{ topic, partitions: 1 }]);
      const snapshots: string[][] = [];
      let release: () => void = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      const handled: string[] = [];
      await sub(b, {
        groupId: uniqueName('g'),
        topics: [topic],
        fromBeginning: true,
        concurrency: 1,
        ordering: 'key',
        onWaitingChange: (waiting) => snapshots.push(waiting().map((m) => m.value)),
        handler: async (m) => {
          handled.push(m.value);
          if (m.value === 'first') await held;
        },
      });
      await b.publish(topic, [{ key: 'a', value: 'first' }]);
      await wait(() => handled.length === 1);
      // Started at once: nothing waited.
      expect(snapshots).toEqual([]);
      await b.publish(topic, [
        { key: 'b', value: 'second' },
        { key: 'a', value: 'third' },
      ]);
      await wait(() => snapshots.some((s) => s.length === 2));
      expect(snapshots.find((s) => s.length === 2)).toEqual(['second', 'third']);
      release();
      await wait(() => handled.length === 3);
      expect(handled).toEqual(['first', 'second', 'third']);
      await wait(() => snapshots.at(-1)?.length === 0);
      expect(snapshots.at(-2)).toEqual(['third']);
    });

    it('commits only up to the lowest unfinished message: after a crash everything from it is redelivered', async () => {
      const b = await bus();
      const topic = uniqueName('contract-watermark');
      const groupId = uniqueName('g');
      await b.ensureTopics([{ topic, partitions: 1 }]);
      const hang = new Promise<void>((resolve) => cleanup.push(async () => resolve()));
      const firstSeen: string[] = [];
      const first = await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        concurrency: 4,
        drainTimeoutMs: 200,
        handler: async (m) => {
          firstSeen.push(m.value);
          if (m.value === 'slow-0') await hang;
        },
      });
      await b.publish(topic, [
        { key: 'k0', value: 'slow-0' },
        { key: 'k1', value: 'fast-1' },
        { key: 'k2', value: 'fast-2' },
        { key: 'k3', value: 'fast-3' },
      ]);
      await wait(() => firstSeen.length === 4);
      // fast-1..3 finished, slow-0 never does: close gives up on it after drainTimeoutMs, as a crash
      // would. The committed position stayed at slow-0's offset.
      await first.close();

      const secondSeen: string[] = [];
      await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => void secondSeen.push(m.value),
      });
      await b.publish(topic, [{ key: 'k9', value: 'after' }]);
      await wait(() => secondSeen.includes('after'));
      // At-least-once from the watermark: the finished fast ones come again too (consumers dedupe
      // by id), in offset order for a member with the default concurrency.
      expect(secondSeen).toEqual(['slow-0', 'fast-1', 'fast-2', 'fast-3', 'after']);
    });

    it('a member joining while handlers run takes over partitions: nothing lost, nothing handled twice by a keeper', async () => {
      const b = await bus();
      const topic = uniqueName('contract-rebalance');
      const groupId = uniqueName('g');
      await b.ensureTopics([{ topic, partitions: 2 }]);
      let secondJoined = false;
      let firstStarted = 0;
      const byFirst: BusMessage[] = [];
      const bySecond: BusMessage[] = [];
      await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        concurrency: 4,
        handler: async (m) => {
          firstStarted++;
          // In flight across the rebalance: these finish only after the second member joined.
          await waitFor(() => secondJoined, { timeoutMs: fixture.timeoutMs, message: 'second member' });
          byFirst.push(m);
        },
      });
      const keys = Array.from({ length: 8 }, (_, i) => `u${i}`);
      const record = (i: number) => ({ key: keys[i % keys.length] as string, value: `v${i}` });
      await b.publish(
        topic,
        Array.from({ length: 24 }, (_, i) => record(i)),
      );
      await wait(() => firstStarted >= 4);
      await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        concurrency: 4,
        handler: async (m) => void bySecond.push(m),
      });
      secondJoined = true;
      await b.publish(
        topic,
        Array.from({ length: 8 }, (_, i) => record(24 + i)),
      );
      const all = Array.from({ length: 32 }, (_, i) => `v${i}`);
      await wait(() => {
        const seen = new Set([...byFirst, ...bySecond].map((m) => m.value));
        return all.every((v) => seen.has(v));
      });
      // The first member keeps handling the partition it kept without redoing what it had taken
      // before the rebalance; what it lost goes to the second member from the committed watermark
      // (redeliveries there are at-least-once).
      const firstValues = byFirst.map((m) => m.value);
      expect(new Set(firstValues).size).toBe(firstValues.length);
      for (const handled of [byFirst, bySecond]) {
        for (const key of keys) {
          const offsets = handled.filter((m) => m.key === key).map((m) => Number(m.offset));
          const distinct = [...new Set(offsets)];
          expect(distinct).toEqual([...distinct].sort((x, y) => x - y));
        }
      }
    });

    it('close waits for running handlers, then commits what they finished', async () => {
      const b = await bus();
      const topic = uniqueName('contract-drain');
      const groupId = uniqueName('g');
      await b.ensureTopics([{ topic, partitions: 1 }]);
      let release: () => void = () => {};
      const slow = new Promise<void>((resolve) => (release = resolve));
      const done: string[] = [];
      const started: string[] = [];
      const first = await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        concurrency: 2,
        handler: async (m) => {
          started.push(m.value);
          if (m.value === 'slow') await slow;
          done.push(m.value);
        },
      });
      await b.publish(topic, [
        { key: 'a', value: 'slow' },
        { key: 'b', value: 'fast' },
      ]);
      await wait(() => started.includes('slow') && done.includes('fast'));
      let closed = false;
      const closing = first.close().then(() => (closed = true));
      await new Promise((resolve) => setImmediate(resolve));
      expect(closed).toBe(false);
      release();
      await closing;
      expect(done).toEqual(['fast', 'slow']);

      const secondSeen: string[] = [];
      await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => void secondSeen.push(m.value),
      });
      await b.publish(topic, [{ key: 'c', value: 'after' }]);
      await wait(() => secondSeen.includes('after'));
      expect(secondSeen).toEqual(['after']);
    });

    it('consumerLag counts, per partition, what the group has not committed yet', async () => {
      const b = await bus();
      const topic = uniqueName('contract-lag');
      const groupId = uniqueName('glag');
      await b.ensureTopics([{ topic, partitions: 2 }]);
      const lagOf = async () => {
        if (!b.consumerLag) throw new Error('this bus reports no consumer lag');
        return (await b.consumerLag(groupId, [topic])).sort((x, y) => x.partition - y.partition);
      };
      // A group that never committed starts from the beginning: everything counts.
      for (let i = 0; i < 6; i++) await b.publish(topic, [{ key: `user-${i}`, value: `v${i}` }]);
      const before = await lagOf();
      expect(before.map((p) => p.partition)).toEqual([0, 1]);
      expect(before.every((p) => p.topic === topic)).toBe(true);
      expect(before.reduce((n, p) => n + p.lag, 0)).toBe(6);
      // Held handlers: taken, not finished, so not committed and still lag.
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      let seen = 0;
      await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        concurrency: 10,
        handler: async () => {
          seen++;
          await held;
        },
      });
      await wait(() => seen >= 1);
      expect((await lagOf()).reduce((n, p) => n + p.lag, 0)).toBe(6);
      release();
      await wait(async () => (await lagOf()).every((p) => p.lag === 0));
    });

    it('ensureTopics is idempotent and healthy() reflects connect and close', async () => {
      const b = await bus();
      const topic = uniqueName('contract-topics');
      await b.ensureTopics([{ topic, partitions: 2 }]);
      await b.ensureTopics([{ topic, partitions: 2 }]);
      await wait(() => b.healthy());
      await b.close();
      expect(b.healthy()).toBe(false);
    });
  });
}
