import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryPubSubHub, createMemoryStore, type MemoryStoreOptions } from './memory-store.js';

describe('memory store bounds', () => {
  let clock = 1_000_000;
  const stores: Array<{ close(): Promise<void> }> = [];
  const store = (options: MemoryStoreOptions = {}) => {
    const s = createMemoryStore({ now: () => clock, ...options });
    stores.push(s);
    return s;
  };
  afterEach(async () => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    for (const s of stores.splice(0)) await s.close();
  });

  it('sweeps expired keys nobody reads again, a batch per tick, and leaves the live ones', async () => {
    vi.useFakeTimers();
    const s = store({ sweepIntervalMs: 1000, sweepBatch: 4 });
    for (let i = 0; i < 10; i++) await s.set(`short:${i}`, 'x', { ttlMs: 100 });
    await s.set('long', 'x', { ttlMs: 60_000 });
    await s.set('forever', 'x');
    await s.streamAppend('stream', { n: '1' }, { maxLength: 10, ttlMs: 100 });
    expect(s.stats().keys).toBe(13);
    clock += 101;
    vi.advanceTimersByTime(1000);
    expect(s.stats().keys).toBe(9);
    // 13 keys in batches of 4: the fourth tick reaches the stream.
    vi.advanceTimersByTime(2000);
    expect(s.stats()).toMatchObject({ keys: 3, expired: 10 });
    vi.advanceTimersByTime(1000);
    expect(s.stats()).toMatchObject({ keys: 2, expired: 11 });
    expect(await s.get('long')).toBe('x');
    expect(await s.get('forever')).toBe('x');
    clock += 60_000;
    vi.advanceTimersByTime(1000);
    expect(s.stats().keys).toBe(1);
  });

  it('sweep() removes every expired key at once', async () => {
    const s = store({ sweepIntervalMs: 0 });
    for (let i = 0; i < 100; i++) await s.set(`k${i}`, 'x', { ttlMs: i < 60 ? 10 : 10_000 });
    clock += 11;
    expect(s.sweep()).toBe(60);
    expect(s.stats()).toMatchObject({ keys: 40, expired: 60 });
  });

  it('runs its timer unref’d, stops it on close, and close can be called twice', async () => {
    const spy = vi.spyOn(globalThis, 'setInterval');
    const s = store({ sweepIntervalMs: 500 });
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    const clear = vi.spyOn(globalThis, 'clearInterval');
    const first = s.close();
    expect(s.close()).toBe(first);
    await first;
    expect(clear).toHaveBeenCalledWith(timer);
    expect(clear).toHaveBeenCalledTimes(1);
  });

  it('no timer at all with sweepIntervalMs 0', () => {
    const spy = vi.spyOn(globalThis, 'setInterval');
    store({ sweepIntervalMs: 0 });
    expect(spy).not.toHaveBeenCalled();
  });

  it('past maxKeys evicts the least recently written keys with a TTL, never one without', async () => {
    const s = store({ sweepIntervalMs: 0, maxKeys: 5 });
    await s.set('persistent', 'p');
    for (let i = 0; i < 4; i++) await s.set(`old:${i}`, String(i), { ttlMs: 60_000 });
    // A write moves a key to the back: old:0 is now the most recently written.
    await s.set('old:0', 'again', { ttlMs: 60_000 });
    await s.set('new:0', 'n', { ttlMs: 60_000 });
    await s.set('new:1', 'n', { ttlMs: 60_000 });
    expect(s.stats()).toMatchObject({ keys: 5, evicted: 2 });
    expect(await s.get('old:1')).toBeNull();
    expect(await s.get('old:2')).toBeNull();
    for (const key of ['persistent', 'old:0', 'old:3', 'new:0', 'new:1'])
      expect(await s.get(key)).not.toBeNull();
    // Counters, lists, streams and relay state count as writes too.
    await s.incrementWindow('rate', 10_000);
    await s.listAppend('list', ['a'], { maxLength: 3, ttlMs: 10_000 });
    expect(await s.get('old:3')).toBeNull();
    expect(s.stats().keys).toBe(5);
    expect(await s.get('persistent')).toBe('p');
  });

  it('never evicts a replay stream: a resume would take a missing log for nothing new', async () => {
    const s = store({ sweepIntervalMs: 0, maxKeys: 3 });
    await s.streamAppend('replay:u', { frame: 'f' }, { maxLength: 10, ttlMs: 60_000 });
    for (let i = 0; i < 5; i++) await s.set(`marker:${i}`, 'x', { ttlMs: 60_000 });
    expect(s.stats()).toMatchObject({ keys: 3, evicted: 3 });
    expect((await s.streamInfo('replay:u'))?.length).toBe(1);
    // It still expires with its TTL.
    clock += 60_001;
    s.sweep();
    expect(await s.streamInfo('replay:u')).toBeNull();
  });

  it('keys without a TTL alone may exceed maxKeys: they are never evicted', async () => {
    const s = store({ sweepIntervalMs: 0, maxKeys: 3 });
    for (let i = 0; i < 5; i++) await s.set(`p${i}`, 'x');
    expect(s.stats()).toMatchObject({ keys: 5, evicted: 0 });
    await s.set('volatile', 'v', { ttlMs: 1000 });
    // The only key that may go is the one just written (Redis would have refused it).
    expect(s.stats()).toMatchObject({ keys: 5, evicted: 1 });
  });

  it('the highest trimmed id of a stream goes with the stream, as in Redis', async () => {
    const s = store({ sweepIntervalMs: 0 });
    for (let i = 0; i < 3; i++)
      await s.streamAppend('replay', { n: String(i) }, { maxLength: 1, ttlMs: 100 });
    expect((await s.streamInfo('replay'))?.maxDeletedId).not.toBe('0-0');
    clock += 101;
    s.sweep();
    expect(await s.streamInfo('replay')).toBeNull();
    await s.streamAppend('replay', { n: 'fresh' }, { maxLength: 1, ttlMs: 100 });
    expect((await s.streamInfo('replay'))?.maxDeletedId).toBe('0-0');
  });

  it('refuses options that would not bound anything', () => {
    expect(() => createMemoryStore({ maxKeys: 0 })).toThrow(/maxKeys/);
    expect(() => createMemoryStore({ sweepBatch: 1.5 })).toThrow(/sweepBatch/);
    expect(() => createMemoryStore({ sweepIntervalMs: -1 })).toThrow(/sweepIntervalMs/);
  });
});

describe('memory pub/sub hub bounds', () => {
  it('forgets a channel when its last listener leaves, and a client when it closes', async () => {
    const hub = createMemoryPubSubHub();
    const sub = hub.client();
    const pub = hub.client();
    const listeners = Array.from({ length: 1000 }, () => () => {});
    for (const [i, l] of listeners.entries()) await sub.subscribe(`user:${i % 100}`, l);
    expect(sub.channels()).toHaveLength(100);
    for (const [i, l] of listeners.entries()) await sub.unsubscribe(`user:${i % 100}`, l);
    expect(sub.channels()).toEqual([]);
    await sub.subscribe('user:0', () => {});
    expect(await pub.publish('user:0', 'x')).toBe(1);
    await sub.close();
    expect(await pub.publish('user:0', 'x')).toBe(0);
    expect(sub.channels()).toEqual([]);
  });
});
