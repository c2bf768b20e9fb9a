import { once } from '../lifecycle/once.js';
import type { KeyValueStore, MessageListener, PubSub, StreamEntry } from './store.js';
import { compareStreamIds } from './store.js';
import { PRESENCE_FIELDS as F } from '../contract/presence.js';

interface Entry {
  /** A string, a list, a stream, or a hash (the relay's per-request state). */
  value: string | string[] | StreamEntry[] | Map<string, string>;
  expiresAt: number | null;
  /** A stream (the replay log): never evicted, see `maxKeys`. */
  stream?: true;
  /** Streams: the highest id trimmed away, as Redis 7 tracks it (gone with the key, as there). */
  maxDeletedId?: string;
}

export interface MemoryStoreOptions {
  /** Injected clock for TTL tests. @default Date.now */
  now?: () => number;
  /**
   * How often expired keys are swept, ms (0: only when read, as before). Redis expires keys in the
   * background too; without it a key written once and never read again stayed forever.
   * @default 1000
   */
  sweepIntervalMs?: number;
  /** Keys one sweep looks at, continuing where the previous one stopped. @default 10000 */
  sweepBatch?: number;
  /**
   * Most keys held, like Redis' `maxmemory` with `volatile-lru`: past it, the least recently
   * written keys that have a TTL are evicted (the dedupe markers of old requests first: every key
   * the services write has a TTL, most of a day, so at a steady rate the TTL alone lets the store
   * reach rate × 3 keys × DEDUPE_TTL_SECONDS). Never evicted: keys without a TTL, and streams —
   * a resume reads a missing replay log as "nothing new", so losing one would drop frames without
   * the `resume.gap` the client is owed; they go with their TTL (REPLAY_TTL_SECONDS) only, and each
   * is capped (REPLAY_MAX_EVENTS).
   * @default 100000
   */
  maxKeys?: number;
}

export interface MemoryStoreStats {
  /** Keys held, expired ones not swept yet included. */
  keys: number;
  /** Removed since creation because their TTL passed (on read or by the sweep). */
  expired: number;
  /** Removed since creation to stay within `maxKeys`. */
  evicted: number;
}

export interface MemoryStore extends KeyValueStore {
  stats(): MemoryStoreStats;
  /** Removes every expired key now; returns how many. The timer does the same in batches. */
  sweep(): number;
}

/**
 * In-process twin of the Redis store: same semantics, including TTLs and stream ids. Bounded:
 * expired keys are swept in the background (the timer is unref'd and stops on `close()`), and
 * at most `maxKeys` are held.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  const now = options.now ?? Date.now;
  const sweepIntervalMs = options.sweepIntervalMs ?? 1000;
  const sweepBatch = options.sweepBatch ?? 10_000;
  const maxKeys = options.maxKeys ?? 100_000;
  for (const [name, value] of Object.entries({ sweepIntervalMs, sweepBatch, maxKeys })) {
    if (!Number.isInteger(value) || value < (name === 'sweepIntervalMs' ? 0 : 1)) {
      throw new TypeError(`invalid memory store option ${name}: ${value}`);
    }
  }
  /** In write order (a write moves its key to the end), so the front is the least recently written. */
  const data = new Map<string, Entry>();
  const counts = { expired: 0, evicted: 0 };
  let lastStreamMs = 0;
  let lastStreamSeq = 0;

  const expired = (e: Entry, t: number) => e.expiresAt !== null && e.expiresAt <= t;

  function live(key: string): Entry | undefined {
    const e = data.get(key);
    if (e && expired(e, now())) {
      data.delete(key);
      counts.expired++;
      return undefined;
    }
    return e;
  }
  const expiry = (ttlMs?: number) => (ttlMs ? now() + ttlMs : null);

  /** Every write goes through here: the key moves to the back of the eviction order. */
  function put(key: string, entry: Entry): void {
    data.delete(key);
    data.set(key, entry);
    if (data.size > maxKeys) evict();
  }

  function evict(): void {
    const t = now();
    // Keys that are never evicted go to the back instead, so each is stepped over once per round,
    // not on every eviction; a store of only such keys grows past maxKeys (Redis would refuse writes).
    let persistent = 0;
    for (const [key, e] of data) {
      if (data.size <= maxKeys || persistent >= data.size) return;
      if (e.expiresAt === null || (e.stream && !expired(e, t))) {
        persistent++;
        data.delete(key);
        data.set(key, e);
        continue;
      }
      data.delete(key);
      if (expired(e, t)) counts.expired++;
      else counts.evicted++;
    }
  }

  let cursor: Iterator<[string, Entry]> | undefined;
  /** Looks at up to `limit` keys from where the last call stopped and removes the expired ones. */
  function sweepSome(limit: number): number {
    const t = now();
    let removed = 0;
    for (let i = 0; i < limit; i++) {
      cursor ??= data.entries();
      const next = cursor.next();
      if (next.done) {
        cursor = undefined;
        break;
      }
      const [key, e] = next.value;
      if (expired(e, t)) {
        data.delete(key);
        removed++;
      }
    }
    counts.expired += removed;
    return removed;
  }
  const timer = sweepIntervalMs > 0 ? setInterval(() => sweepSome(sweepBatch), sweepIntervalMs) : undefined;
  timer?.unref();

  /** The capped append of both `streamAppend` and `appendFrame`, as the Redis scripts share it. */
  function xadd(key: string, fields: Record<string, string>, maxLength: number, ttlMs?: number): string {
    const e = live(key);
    const stream = e && Array.isArray(e.value) ? (e.value as StreamEntry[]) : [];
    const ms = Math.max(now(), lastStreamMs);
    lastStreamSeq = ms === lastStreamMs ? lastStreamSeq + 1 : 0;
    lastStreamMs = ms;
    const id = `${ms}-${lastStreamSeq}`;
    stream.push({ id, fields: { ...fields } });
    // In place: the replay log takes an append per frame, and a copy of up to maxLength each time
    // was most of its cost.
    const dropped = Math.max(0, stream.length - maxLength);
    const maxDeletedId = dropped > 0 ? (stream[dropped - 1] as StreamEntry).id : e?.maxDeletedId;
    if (dropped > 0) stream.splice(0, dropped);
    put(key, {
      stream: true,
      value: stream,
      expiresAt: ttlMs ? expiry(ttlMs) : (e?.expiresAt ?? null),
      ...(maxDeletedId !== undefined && { maxDeletedId }),
    });
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
      put(key, { value, expiresAt: expiry(opts.ttlMs) });
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
        put(key, { value: String(by), expiresAt: now() + windowMs });
        return { count: by, resetMs: windowMs };
      }
      const count = Number(e.value) + by;
      e.value = String(count);
      put(key, e);
      return { count, resetMs: e.expiresAt === null ? windowMs : e.expiresAt - now() };
    },
    async listAppend(key, values, opts) {
      const e = live(key);
      const list = e && Array.isArray(e.value) ? (e.value as string[]) : [];
      list.push(...values);
      if (list.length > opts.maxLength) list.splice(0, list.length - opts.maxLength);
      put(key, { value: list, expiresAt: opts.ttlMs ? expiry(opts.ttlMs) : (e?.expiresAt ?? null) });
      return list.length;
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
      put(opts.state, {
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
      if (!e || !Array.isArray(e.value)) return null;
      const stream = e.value as StreamEntry[];
      return {
        firstId: stream[0]?.id ?? null,
        lastId: stream.at(-1)?.id ?? null,
        maxDeletedId: e.maxDeletedId ?? '0-0',
        length: stream.length,
      };
    },
    async presenceLease(opts) {
      // Same rules as the Redis script (redis-store.ts PRESENCE_LEASE); synchronous, hence atomic.
      const mine = `${F.leasePrefix}${opts.node}`;
      const changed: string[] = [];
      for (const key of opts.keys) {
        const existing = hash(key);
        if (opts.op === 'leave' && existing === undefined) continue;
        const fields = existing ?? new Map<string, string>();
        let was = false;
        let others = false;
        for (const [f, v] of [...fields]) {
          if (!f.startsWith(F.leasePrefix)) continue;
          if (Number(v) > opts.nowMs) {
            was = true;
            if (f !== mine) others = true;
          } else {
            fields.delete(f);
          }
        }
        if (opts.op === 'join') {
          fields.set(mine, String(opts.nowMs + opts.leaseMs));
          fields.set(F.lastSeen, String(opts.nowMs));
        } else {
          fields.delete(mine);
          fields.set(F.lastSeen, String(opts.nowMs));
        }
        if (opts.op === 'join' ? !was : was && !others) {
          fields.set(F.updatedAt, String(opts.nowMs));
          fields.set(F.node, opts.node);
          changed.push(key);
        }
        put(key, { value: fields, expiresAt: expiry(opts.retentionMs) });
      }
      return changed;
    },
    async presenceSet(opts) {
      const fields = hash(opts.key) ?? new Map<string, string>();
      fields.set(F.status, opts.status);
      fields.set(F.message, opts.message);
      fields.set(F.updatedAt, String(opts.nowMs));
      fields.set(F.node, opts.node);
      put(opts.key, { value: fields, expiresAt: expiry(opts.retentionMs) });
      return Object.fromEntries(fields);
    },
    async hashGetMany(keys) {
      return keys.map((key) => {
        const fields = hash(key);
        return fields && fields.size > 0 ? Object.fromEntries(fields) : null;
      });
    },
    stats: () => ({ keys: data.size, ...counts }),
    sweep() {
      cursor = undefined;
      return sweepSome(Number.POSITIVE_INFINITY);
    },
    close: once(async () => {
      clearInterval(timer);
      cursor = undefined;
    }),
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
