import type { KeyValueStore, MessageListener, PubSub, StreamEntry } from './store.js';
import { compareStreamIds } from './store.js';

interface Entry {
  /** A string, a list, a stream, or a hash (the relay's per-request state). */
  value: string | string[] | StreamEntry[] | Map<string, string>;
  expiresAt: number | null;
}

export interface MemoryStoreOptions {
  /** Injected clock for TTL tests. @default Date.now */
  now?: () => number;
}

/** In-process twin of the Redis store: same semantics, including TTLs and stream ids. */
export function createMemoryStore(options: MemoryStoreOptions = {}): KeyValueStore {
  const now = options.now ?? Date.now;
  const data = new Map<string, Entry>();
  let lastStreamMs = 0;
  let lastStreamSeq = 0;
  /** Per stream: the highest id trimmed away, as Redis 7 tracks it. */
  const maxDeleted = new Map<string, string>();

  function live(key: string): Entry | undefined {
    const e = data.get(key);
    if (e && e.expiresAt !== null && e.expiresAt <= now()) {
      data.delete(key);
      return undefined;
    }
    return e;
  }
  const expiry = (ttlMs?: number) => (ttlMs ? now() + ttlMs : null);

  /** The capped append of both `streamAppend` and `appendFrame`, as the Redis scripts share it. */
  function xadd(key: string, fields: Record<string, string>, maxLength: number, ttlMs?: number): string {
    const e = live(key);
    const stream = e && Array.isArray(e.value) ? (e.value as StreamEntry[]) : [];
    const ms = Math.max(now(), lastStreamMs);
    lastStreamSeq = ms === lastStreamMs ? lastStreamSeq + 1 : 0;
    lastStreamMs = ms;
    const id = `${ms}-${lastStreamSeq}`;
    stream.push({ id, fields: { ...fields } });
    const trimmed = stream.slice(-maxLength);
    const dropped = stream.length - trimmed.length;
    if (dropped > 0) maxDeleted.set(key, (stream[dropped - 1] as StreamEntry).id);
    data.set(key, { value: trimmed, expiresAt: ttlMs ? expiry(ttlMs) : (e?.expiresAt ?? null) });
    return id;
  }

  function hash(key: string): Map<string, string> | undefined {
    const value = live(key)?.value;
    if (value === undefined) return undefined;
    if (!(value instanceof Map))
      throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
    return value;
  }

  return {
    kind: 'memory',
    async ping() {},
    async get(key) {
      const value = live(key)?.value;
      if (value === undefined) return null;
      if (typeof value !== 'string')
        throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
      return value;
    },
    async set(key, value, opts = {}) {
      if (opts.onlyIfAbsent && live(key)) return false;
      data.set(key, { value, expiresAt: expiry(opts.ttlMs) });
      return true;
    },
    async del(key) {
      const had = live(key) !== undefined;
      data.delete(key);
      return had ? 1 : 0;
    },
    async incrementWindow(key, windowMs, by = 1) {
      const e = live(key);
      if (!e) {
        data.set(key, { value: String(by), expiresAt: now() + windowMs });
        return { count: by, resetMs: windowMs };
      }
      const count = Number(e.value) + by;
      e.value = String(count);
      return { count, resetMs: e.expiresAt === null ? windowMs : e.expiresAt - now() };
    },
    async listAppend(key, values, opts) {
      const e = live(key);
      const list = e && Array.isArray(e.value) ? (e.value as string[]) : [];
      list.push(...values);
      const trimmed = list.slice(-opts.maxLength);
      data.set(key, { value: trimmed, expiresAt: opts.ttlMs ? expiry(opts.ttlMs) : (e?.expiresAt ?? null) });
      return trimmed.length;
    },
    async listRange(key, start, stop) {
      const e = live(key);
      const list = e && Array.isArray(e.value) ? (e.value as string[]) : [];
      const n = list.length;
      const s = start < 0 ? Math.max(n + start, 0) : start;
      const t = stop < 0 ? n + stop : Math.min(stop, n - 1);
      return s > t ? [] : list.slice(s, t + 1);
    },
    async streamAppend(key, fields, opts) {
      return xadd(key, fields, opts.maxLength, opts.ttlMs);
    },
    async appendFrame(opts) {
      // Same rules as the Redis script; synchronous from the check to the update, hence atomic.
      const state = hash(opts.state);
      const key = opts.kind === 'delta' ? `delta:${opts.seq}` : opts.kind;
      const duplicate =
        state?.get('done') === '1' || (opts.kind === 'delta' && opts.seq <= Number(state?.get('seq') ?? -1));
      if (duplicate) {
        const last = state?.get('last');
        if (last === undefined || state?.get('lastkey') !== key) return null;
        const e = live(opts.stream);
        const stored =
          e && Array.isArray(e.value) ? (e.value as StreamEntry[]).find((x) => x.id === last) : undefined;
        const frame = stored?.fields.frame;
        return frame !== undefined ? { eventId: last, duplicate: true, frame } : null;
      }
      const id = xadd(opts.stream, { frame: opts.frame }, opts.maxLength, opts.ttlMs);
      const next = state ?? new Map<string, string>();
      if (opts.kind === 'delta') next.set('seq', String(opts.seq));
      else if (opts.kind === 'reset') next.set('seq', '-1');
      else next.set('done', '1');
      next.set('last', id);
      next.set('lastkey', key);
      const previous = data.get(opts.state)?.expiresAt ?? null;
      data.set(opts.state, {
        value: next,
        expiresAt: opts.stateTtlMs ? expiry(opts.stateTtlMs) : state ? previous : null,
      });
      const stream = live(opts.stream)?.value;
      return { eventId: id, duplicate: false, length: Array.isArray(stream) ? stream.length : 0 };
    },
    async streamRead(key, afterId, count) {
      const e = live(key);
      const stream = e && Array.isArray(e.value) ? (e.value as StreamEntry[]) : [];
      return stream
        .filter((s) => compareStreamIds(s.id, afterId) > 0)
        .slice(0, count)
        .map((s) => ({ id: s.id, fields: { ...s.fields } }));
    },
    async streamInfo(key) {
      const e = live(key);
      if (!e || !Array.isArray(e.value)) {
        maxDeleted.delete(key);
        return null;
      }
      const stream = e.value as StreamEntry[];
      return {
        firstId: stream[0]?.id ?? null,
        lastId: stream.at(-1)?.id ?? null,
        maxDeletedId: maxDeleted.get(key) ?? '0-0',
        length: stream.length,
      };
    },
    async close() {},
  };
}

/** Shared by in-process pub/sub clients, as a Redis server is shared by its connections. */
export interface MemoryPubSubHub {
  client(): PubSub;
}

/**
 * In-process pub/sub. Each client holds its own channels; `publish` counts the clients subscribed to
 * the channel, as Redis counts connections. Delivery is asynchronous (a microtask), like a network hop.
 */
export function createMemoryPubSubHub(): MemoryPubSubHub {
  const clients = new Set<Map<string, Set<MessageListener>>>();
  return {
    client(): PubSub {
      const listeners = new Map<string, Set<MessageListener>>();
      clients.add(listeners);
      return {
        kind: 'memory',
        async publish(channel, message) {
          const targets = [...clients].flatMap((c) => {
            const set = c.get(channel);
            return set && set.size > 0 ? [[...set]] : [];
          });
          queueMicrotask(() => {
            for (const set of targets) for (const l of set) l(message, channel);
          });
          return targets.length;
        },
        async subscribe(channel, listener) {
          let set = listeners.get(channel);
          if (!set) listeners.set(channel, (set = new Set()));
          set.add(listener);
        },
        async unsubscribe(channel, listener) {
          const set = listeners.get(channel);
          set?.delete(listener);
          if (set && set.size === 0) listeners.delete(channel);
        },
        channels: () => [...listeners.keys()],
        async close() {
          listeners.clear();
          clients.delete(listeners);
        },
      };
    },
  };
}
