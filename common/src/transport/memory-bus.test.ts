import { afterEach, describe, expect, it } from 'vitest';
import { uniqueName, waitFor } from '../testing/wait-for.js';
import type { BusMessage, SubscribeOptions } from './bus.js';
import { createMemoryBus, type MemoryBus, type MemoryBusOptions } from './memory-bus.js';

describe('memory bus retention', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function bus(options: MemoryBusOptions = {}): Promise<MemoryBus> {
    const b = createMemoryBus(options);
    cleanup.push(() => b.close());
    await b.connect();
    return b;
  }
  async function topic(b: MemoryBus, name: string): Promise<string> {
    const t = uniqueName(name);
    await b.ensureTopics([{ topic: t, partitions: 1 }]);
    return t;
  }
  async function sub(b: MemoryBus, options: Omit<SubscribeOptions, 'groupId'> & { groupId?: string }) {
    const s = await b.subscribe({ groupId: uniqueName('g'), fromBeginning: true, ...options });
    cleanup.push(() => s.close());
    return s;
  }
  const records = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ key: `k${(from + i) % 3}`, value: `v${from + i}` }));
  const span = (b: MemoryBus, t: string) => {
    const [p] = b.retention(t);
    return { start: p?.start, end: p?.end };
  };

  it('releases what every group committed, so a busy topic stays small', async () => {
    const b = await bus({ retainRecords: 0 });
    const t = await topic(b, 'released');
    const seen = { a: 0, c: 0 };
    await sub(b, { topics: [t], handler: async () => void seen.a++ });
    await sub(b, { topics: [t], concurrency: 4, handler: async () => void seen.c++ });
    for (let i = 0; i < 50; i++) await b.publish(t, records(i * 100, 100));
    await waitFor(() => seen.a === 5000 && seen.c === 5000);
    await waitFor(() => span(b, t).start === 5000);
    expect(span(b, t)).toEqual({ start: 5000, end: 5000 });
  });

  it('a slow group holds what it has not committed; the fast one does not release it', async () => {
    const b = await bus({ retainRecords: 0 });
    const t = await topic(b, 'slow');
    let fast = 0;
    const slow: string[] = [];
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    await sub(b, { topics: [t], handler: async () => void fast++ });
    await sub(b, {
      topics: [t],
      handler: async (m) => {
        await gate;
        slow.push(m.value);
      },
    });
    await b.publish(t, records(0, 10));
    await waitFor(() => fast === 10);
    expect(span(b, t)).toEqual({ start: 0, end: 10 });
    release();
    await waitFor(() => slow.length === 10);
    await waitFor(() => span(b, t).start === 10);
    expect(slow).toEqual(records(0, 10).map((r) => r.value));
  });

  it('redelivers what a member left uncommitted to the member that takes over, released only then', async () => {
    const b = await bus({ retainRecords: 0 });
    const t = await topic(b, 'takeover');
    const groupId = uniqueName('g');
    // Another group that has consumed everything: only `groupId` can hold the records.
    let other = 0;
    await sub(b, { topics: [t], handler: async () => void other++ });
    const firstSeen: string[] = [];
    const hang = new Promise<void>((resolve) => cleanup.push(async () => resolve()));
    const first = await sub(b, {
      groupId,
      topics: [t],
      drainTimeoutMs: 50,
      handler: async (m) => {
        firstSeen.push(m.value);
        if (m.value === 'v2') await hang;
      },
    });
    // Joins while `first` owns the only partition: it waits as a standby member.
    const secondSeen: BusMessage[] = [];
    await sub(b, { groupId, topics: [t], handler: async (m) => void secondSeen.push(m) });
    await b.publish(t, records(0, 5));
    await waitFor(() => other === 5 && firstSeen.length === 3);
    // v0 and v1 were committed by both groups; v2 onwards is held for `groupId`.
    await waitFor(() => span(b, t).start === 2);
    expect(secondSeen).toEqual([]);
    await first.close();
    await waitFor(() => secondSeen.length === 3);
    expect(secondSeen.map((m) => [m.offset, m.value])).toEqual([
      ['2', 'v2'],
      ['3', 'v3'],
      ['4', 'v4'],
    ]);
    await waitFor(() => span(b, t).start === 5);
  });

  it('offsets stay absolute and are never reused after a release', async () => {
    const b = await bus({ retainRecords: 0 });
    const t = await topic(b, 'offsets');
    const offsets: string[] = [];
    await sub(b, { topics: [t], handler: async (m) => void offsets.push(m.offset) });
    await b.publish(t, records(0, 5));
    await waitFor(() => span(b, t).start === 5);
    await b.publish(t, records(5, 3));
    await waitFor(() => offsets.length === 8);
    expect(offsets).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    await waitFor(() => span(b, t).start === 8);
    // A new group from the beginning starts at the oldest retained record: nothing here.
    const late: string[] = [];
    await sub(b, { topics: [t], handler: async (m) => void late.push(m.offset) });
    await b.publish(t, records(8, 1));
    await waitFor(() => late.length === 1);
    expect(late).toEqual(['8']);
  });

  it('a topic nobody consumes keeps its newest retainRecords per partition; a new group reads those', async () => {
    const b = await bus({ retainRecords: 3 });
    const t = uniqueName('unconsumed');
    await b.ensureTopics([{ topic: t, partitions: 2 }]);
    for (let i = 0; i < 20; i++) await b.publish(t, records(i * 10, 10));
    const parts = b.retention(t);
    expect(parts.map((p) => p.end - p.start)).toEqual([3, 3]);
    expect(parts.reduce((n, p) => n + p.end, 0)).toBe(200);
    const seen: BusMessage[] = [];
    await sub(b, { topics: [t], handler: async (m) => void seen.push(m) });
    await waitFor(() => seen.length === 6);
    for (const p of parts) {
      const offsets = seen.filter((m) => m.partition === p.partition).map((m) => Number(m.offset));
      expect(offsets).toEqual([p.start, p.start + 1, p.start + 2]);
    }
  });

  it('a group without members holds nothing: back after a release, it starts over like a new group', async () => {
    const b = await bus({ retainRecords: 3 });
    const t = await topic(b, 'empty-group');
    const groupId = uniqueName('g');
    const first: string[] = [];
    const s = await sub(b, { groupId, topics: [t], handler: async (m) => void first.push(m.value) });
    await b.publish(t, records(0, 2));
    await waitFor(() => first.length === 2);
    await s.close();
    // Within retention, the group resumes where it was...
    await b.publish(t, records(2, 1));
    const again: string[] = [];
    const s2 = await sub(b, { groupId, topics: [t], handler: async (m) => void again.push(m.value) });
    await waitFor(() => again.length === 1);
    expect(again).toEqual(['v2']);
    await s2.close();
    // ...but past it, its position was released: from the oldest retained record (fromBeginning),
    await b.publish(t, records(3, 10));
    expect(span(b, t)).toEqual({ start: 10, end: 13 });
    const reset: string[] = [];
    const s3 = await sub(b, { groupId, topics: [t], handler: async (m) => void reset.push(m.value) });
    await waitFor(() => reset.length === 3);
    expect(reset).toEqual(['v10', 'v11', 'v12']);
    await s3.close();
    // or from the end without it.
    await b.publish(t, records(13, 10));
    const latest: string[] = [];
    await sub(b, {
      groupId,
      topics: [t],
      fromBeginning: false,
      handler: async (m) => void latest.push(m.value),
    });
    await b.publish(t, records(23, 1));
    await waitFor(() => latest.length === 1);
    expect(latest).toEqual(['v23']);
  });

  it('reports consumer lag in absolute offsets after a release', async () => {
    const b = await bus({ retainRecords: 0 });
    const t = await topic(b, 'lag');
    const groupId = uniqueName('g');
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let seen = 0;
    await sub(b, {
      groupId,
      topics: [t],
      handler: async () => {
        if (++seen > 5) await gate;
      },
    });
    await b.publish(t, records(0, 5));
    await waitFor(() => span(b, t).start === 5);
    await b.publish(t, records(5, 3));
    expect(await b.consumerLag?.(groupId, [t])).toEqual([{ topic: t, partition: 0, lag: 3 }]);
    release();
    await waitFor(async () => (await b.consumerLag?.(groupId, [t]))?.[0]?.lag === 0);
    // A group that never consumed the topic lags by what is retained: nothing.
    expect(await b.consumerLag?.(uniqueName('none'), [t])).toEqual([{ topic: t, partition: 0, lag: 0 }]);
  });

  it('refuses a negative retainRecords', () => {
    expect(() => createMemoryBus({ retainRecords: -1 })).toThrow(/retainRecords/);
  });
});
