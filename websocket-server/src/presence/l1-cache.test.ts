import { describe, expect, it } from 'vitest';
import { PresenceCache } from './l1-cache.js';
import type { PresenceFields } from './record.js';

/** A clock the test moves by hand. */
function clock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

/** A loader over a plain map that counts its calls and can be held open. */
function loader(data: Map<string, PresenceFields>) {
  const calls: string[][] = [];
  let gate: Promise<void> | undefined;
  let open: () => void = () => undefined;
  return {
    calls,
    hold() {
      gate = new Promise<void>((resolve) => (open = resolve));
    },
    release: () => open(),
    load: async (keys: string[]) => {
      calls.push(keys);
      const snapshot = keys.map((k) => data.get(k) ?? null);
      if (gate) await gate;
      return snapshot;
    },
  };
}

describe('PresenceCache (L1)', () => {
  it('answers from the cache until the TTL passes (injected clock), then loads again', async () => {
    const c = clock();
    const data = new Map([['a', { s: 'away' }]]);
    const l = loader(data);
    const cache = new PresenceCache({ max: 10, ttlMs: 5000, perf: c });
    expect(await cache.getMany(['a', 'b'], l.load)).toEqual([{ s: 'away' }, null]);
    data.set('a', { s: 'busy' });
    data.set('b', { s: 'online' });
    c.advance(4999);
    // Both, the missing one too: an unknown user is cached as such.
    expect(await cache.getMany(['a', 'b'], l.load)).toEqual([{ s: 'away' }, null]);
    expect(l.calls).toEqual([['a', 'b']]);
    c.advance(2);
    expect(await cache.getMany(['a', 'b'], l.load)).toEqual([{ s: 'busy' }, { s: 'online' }]);
    expect(l.calls).toHaveLength(2);
    expect(cache.stats).toEqual({ hits: 2, misses: 4, coalesced: 0 });
  });

  it('is bounded: the least recently used entry goes first', async () => {
    const l = loader(new Map());
    const cache = new PresenceCache({ max: 2, ttlMs: 60_000, perf: clock() });
    await cache.getMany(['a', 'b'], l.load);
    await cache.getMany(['a'], l.load);
    await cache.getMany(['c'], l.load);
    expect(cache.size).toBe(2);
    l.calls.length = 0;
    await cache.getMany(['a', 'b', 'c'], l.load);
    expect(l.calls).toEqual([['b']]);
  });

  it('loads only what is neither cached nor being loaded; concurrent readers share one load', async () => {
    const l = loader(new Map([['a', { s: 'away' }]]));
    const cache = new PresenceCache({ max: 10, ttlMs: 60_000, perf: clock() });
    l.hold();
    const first = cache.getMany(['a'], l.load);
    const second = cache.getMany(['a', 'b'], l.load);
    l.release();
    expect(await first).toEqual([{ s: 'away' }]);
    expect(await second).toEqual([{ s: 'away' }, null]);
    expect(l.calls).toEqual([['a'], ['b']]);
    expect(cache.stats.coalesced).toBe(1);
  });

  it('an invalidation drops the entry, and voids a load under way: the old value never comes back', async () => {
    const data = new Map([['a', { s: 'online' }]]);
    const l = loader(data);
    const cache = new PresenceCache({ max: 10, ttlMs: 60_000, perf: clock() });
    await cache.getMany(['a'], l.load);
    data.set('a', { s: 'away' });
    cache.invalidate(['a']);
    // A load that read before the next write and ends after its invalidation.
    l.hold();
    const racing = cache.getMany(['a'], l.load);
    data.set('a', { s: 'busy' });
    cache.invalidate(['a']);
    // A reader after the invalidation does not join the voided load.
    const after = cache.getMany(['a'], l.load);
    l.release();
    expect(await racing).toEqual([{ s: 'away' }]);
    expect(await after).toEqual([{ s: 'busy' }]);
    expect(await cache.getMany(['a'], l.load)).toEqual([{ s: 'busy' }]);
    expect(l.calls).toHaveLength(3);
  });

  it('caches nothing while suspended (the invalidation channel is down) and starts empty on resume', async () => {
    const l = loader(new Map([['a', { s: 'online' }]]));
    const cache = new PresenceCache({ max: 10, ttlMs: 60_000, perf: clock() });
    await cache.getMany(['a'], l.load);
    cache.suspend();
    await cache.getMany(['a'], l.load);
    await cache.getMany(['a'], l.load);
    expect(l.calls).toHaveLength(3);
    cache.resume();
    await cache.getMany(['a'], l.load);
    await cache.getMany(['a'], l.load);
    expect(l.calls).toHaveLength(4);
  });

  it('a failed load is not cached and reaches every reader of it', async () => {
    const cache = new PresenceCache({ max: 10, ttlMs: 60_000, perf: clock() });
    let fail = true;
    const load = async (keys: string[]) => {
      if (fail) throw new Error('redis down');
      return keys.map(() => ({ s: 'online' }));
    };
    const a = cache.getMany(['a'], load);
    const b = cache.getMany(['a'], load);
    await expect(a).rejects.toThrow('redis down');
    await expect(b).rejects.toThrow('redis down');
    fail = false;
    expect(await cache.getMany(['a'], load)).toEqual([{ s: 'online' }]);
  });

  it('with a TTL of 0 nothing is cached', async () => {
    const l = loader(new Map());
    const cache = new PresenceCache({ max: 10, ttlMs: 0 });
    await cache.getMany(['a'], l.load);
    await cache.getMany(['a'], l.load);
    expect(l.calls).toHaveLength(2);
  });
});
