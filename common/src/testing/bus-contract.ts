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

    it('commits only after the handler resolves: a failed handler is redelivered to the next member', async () => {
      const fatal: Error[] = [];
      const b = await bus((e) => fatal.push(e));
      const topic = uniqueName('contract-redeliver');
      const groupId = uniqueName('g');
      await b.ensureTopics([{ topic, partitions: 1 }]);
      const first = await sub(b, {
        groupId,
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => {
          if (m.value === 'boom') throw new Error('handler bug');
        },
      });
      await b.publish(topic, [{ key: 'k', value: 'ok-1' }]);
      await b.publish(topic, [{ key: 'k', value: 'boom' }]);
      await b.publish(topic, [{ key: 'k', value: 'ok-2' }]);
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
