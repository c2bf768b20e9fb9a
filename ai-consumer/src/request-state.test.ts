import { REDIS_KEYS, createMemoryStore, type KeyValueStore } from '@relay/common';
import { describe, expect, it } from 'vitest';
import { createRequestState } from './request-state.js';

describe('request state', () => {
  it('claims a new request as fresh, then tells a redelivery running from done', async () => {
    const store = createMemoryStore();
    const state = createRequestState({ store, ttlMs: 60_000 });
    expect(await state.claim('u', 'r1')).toBe('fresh');
    expect(await store.get(REDIS_KEYS.request('u', 'r1'))).toBe('running');
    // Delivered again before it finished: the earlier consumer died mid-generation.
    expect(await state.claim('u', 'r1')).toBe('rerun');
    await state.markDone('u', 'r1');
    expect(await state.claim('u', 'r1')).toBe('done');
    expect(await store.get(REDIS_KEYS.request('u', 'r1'))).toBe('done');
  });

  it('keys by user and request, encoded, so equal request ids of two users do not meet', async () => {
    const store = createMemoryStore();
    const state = createRequestState({ store, ttlMs: 60_000 });
    await state.markDone('a:b', 'c');
    expect(await state.claim('a', 'b:c')).toBe('fresh');
    expect(await state.claim('other', 'c')).toBe('fresh');
    expect(await store.get('request:a%3Ab:c')).toBe('done');
  });

  it('forgets a state after the TTL: a much later redelivery is a new request', async () => {
    let clock = 1_000_000;
    const store = createMemoryStore({ now: () => clock });
    const state = createRequestState({ store, ttlMs: 60_000 });
    await state.claim('u', 'r1');
    await state.markDone('u', 'r1');
    clock += 59_999;
    expect(await state.claim('u', 'r1')).toBe('done');
    clock += 2;
    expect(await state.claim('u', 'r1')).toBe('fresh');
  });

  it('treats a state that vanished between SET NX and GET as a rerun, and holds it again', async () => {
    const writes: string[] = [];
    const store: KeyValueStore = {
      ...createMemoryStore(),
      // The key exists for the SET NX, then expires before the GET.
      set: async (_key, value, o) => {
        if (o?.onlyIfAbsent) return false;
        writes.push(value);
        return true;
      },
      get: async () => null,
    };
    const state = createRequestState({ store, ttlMs: 60_000 });
    expect(await state.claim('u', 'r1')).toBe('rerun');
    expect(writes).toEqual(['running']);
  });

  it('answers again rather than never when the state holds an unknown value', async () => {
    const store = createMemoryStore();
    await store.set(REDIS_KEYS.request('u', 'r1'), 'something-newer');
    expect(await createRequestState({ store, ttlMs: 60_000 }).claim('u', 'r1')).toBe('rerun');
  });
});
