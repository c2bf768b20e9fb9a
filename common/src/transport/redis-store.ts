import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { KeyValueStore, MessageListener, PubSub, StreamEntry } from './store.js';
import { once } from '../lifecycle/once.js';

export interface RedisOptions {
  url: string;
  logger: Logger;
  /** Name shown by CLIENT LIST, for operators. */
  connectionName?: string;
}

/** Shared ioredis settings: retry forever with a capped delay; fail commands fast while offline. */
function connect(options: RedisOptions, role: string): Redis {
  const client = new Redis(options.url, {
    connectionName: options.connectionName ? `${options.connectionName}:${role}` : role,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    // Queued commands would pile up during an outage and replay late; callers get an error instead.
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    lazyConnect: true,
  });
  client.on('error', (err: Error) => options.logger.warn({ err, role }, 'redis connection error'));
  return client;
}

// INCR and PEXPIRE in one step so a crash between them can never leave a counter without a TTL.
const INCREMENT_WINDOW = `
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}`;

// XADD with an exact cap that remembers the highest id it trims (Redis 7.0 tracks that only for
// XDEL), so resume can tell "trimmed" from "nothing new". Both keys share the TTL.
const STREAM_APPEND = `
local maxlen = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local len = redis.call('XLEN', KEYS[1])
if len >= maxlen then
  local dropped = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen + 1)
  redis.call('SET', KEYS[2], dropped[#dropped][1])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', maxlen, '*', unpack(ARGV, 3))
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return id`;

/** Where a stream's highest trimmed id is kept (a prefix no other key uses, so no collisions). */
const trimmedKey = (key: string) => `stream-trimmed:${key}`;

export function createRedisStore(options: RedisOptions): KeyValueStore & { readonly client: Redis } {
  const client = connect(options, 'commands');
  let connecting: Promise<void> | undefined;
  const ready = () =>
    (connecting ??= client.connect().catch((err: unknown) => {
      connecting = undefined;
      throw err;
    }));

  async function withClient<T>(fn: (c: Redis) => Promise<T>): Promise<T> {
    if (client.status === 'wait') await ready();
    return fn(client);
  }

  return {
    kind: 'redis',
    client,
    ping: () => withClient(async (c) => void (await c.ping())),
    get: (key) => withClient((c) => c.get(key)),
    set: (key, value, opts = {}) =>
      withClient(async (c) => {
        const args: Array<string | number> = [];
        if (opts.ttlMs) args.push('PX', opts.ttlMs);
        if (opts.onlyIfAbsent) args.push('NX');
        const reply = await c.call('SET', key, value, ...args);
        return reply === 'OK';
      }),
    del: (key) => withClient((c) => c.del(key)),
    incrementWindow: (key, windowMs) =>
      withClient(async (c) => {
        const [count, resetMs] = (await c.call('EVAL', INCREMENT_WINDOW, 1, key, windowMs)) as [
          number,
          number,
        ];
        return { count, resetMs };
      }),
    listAppend: (key, values, opts) =>
      withClient(async (c) => {
        const tx = c
          .multi()
          .rpush(key, ...values)
          .ltrim(key, -opts.maxLength, -1);
        if (opts.ttlMs) tx.pexpire(key, opts.ttlMs);
        tx.llen(key);
        const results = await tx.exec();
        const last = results?.[results.length - 1];
        if (!last || last[0]) throw last?.[0] ?? new Error('redis transaction aborted');
        return Number(last[1]);
      }),
    listRange: (key, start, stop) => withClient((c) => c.lrange(key, start, stop)),
    streamAppend: (key, fields, opts) =>
      withClient(async (c) => {
        const flat = Object.entries(fields).flat();
        const id = await c.call(
          'EVAL',
          STREAM_APPEND,
          2,
          key,
          trimmedKey(key),
          opts.maxLength,
          opts.ttlMs ?? 0,
          ...flat,
        );
        return String(id);
      }),
    streamRead: (key, afterId, count) =>
      withClient(async (c) => {
        // '(' makes the start exclusive (Redis ≥ 6.2).
        const rows = await c.xrange(key, afterId === '0' ? '-' : `(${afterId}`, '+', 'COUNT', count);
        return rows.map(([id, flat]): StreamEntry => {
          const fields: Record<string, string> = {};
          for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
          return { id, fields };
        });
      }),
    streamInfo: (key) =>
      withClient(async (c) => {
        const [length, first, last, trimmed] = await Promise.all([
          c.xlen(key),
          c.xrange(key, '-', '+', 'COUNT', 1),
          c.xrevrange(key, '+', '-', 'COUNT', 1),
          c.get(trimmedKey(key)),
        ]);
        if (length === 0) return null;
        return {
          firstId: first[0]?.[0] ?? null,
          lastId: last[0]?.[0] ?? null,
          maxDeletedId: trimmed ?? '0-0',
          length,
        };
      }),
    close: once(async () => {
      if (client.status === 'wait' || client.status === 'end') client.disconnect();
      else await client.quit().catch(() => client.disconnect());
    }),
  };
}

/**
 * Pub/sub on a dedicated connection (a subscribed connection cannot run other commands). ioredis
 * subscribes every held channel again after a reconnect (`autoResubscribe`); `onResubscribed` lets
 * callers count or log it.
 */
export function createRedisPubSub(
  options: RedisOptions & { onResubscribed?: (channels: number) => void },
): PubSub & { readonly subscriber: Redis; readonly publisher: Redis } {
  const subscriber = connect(options, 'subscriber');
  const publisher = connect(options, 'publisher');
  const listeners = new Map<string, Set<MessageListener>>();
  const pending = new Map<string, Promise<void>>();
  let everReady = false;

  subscriber.on('ready', () => {
    if (everReady && listeners.size > 0) {
      options.logger.info({ channels: listeners.size }, 'redis reconnected, channels resubscribed');
      options.onResubscribed?.(listeners.size);
    }
    everReady = true;
  });
  subscriber.on('message', (channel: string, message: string) => {
    const set = listeners.get(channel);
    if (set) for (const l of set) l(message, channel);
  });

  const ensure = async (c: Redis) => {
    if (c.status === 'wait') await c.connect();
  };

  return {
    kind: 'redis',
    subscriber,
    publisher,
    async publish(channel, message) {
      await ensure(publisher);
      return publisher.publish(channel, message);
    },
    async subscribe(channel, listener) {
      const set = listeners.get(channel);
      if (set) {
        set.add(listener);
        return pending.get(channel);
      }
      listeners.set(channel, new Set([listener]));
      const done = (async () => {
        await ensure(subscriber);
        await subscriber.subscribe(channel);
      })();
      pending.set(channel, done);
      try {
        await done;
      } catch (err) {
        listeners.delete(channel);
        throw err;
      } finally {
        pending.delete(channel);
      }
    },
    async unsubscribe(channel, listener) {
      const set = listeners.get(channel);
      if (!set) return;
      set.delete(listener);
      if (set.size > 0) return;
      listeners.delete(channel);
      if (subscriber.status === 'ready') await subscriber.unsubscribe(channel);
    },
    channels: () => [...listeners.keys()],
    close: once(async () => {
      listeners.clear();
      await Promise.all(
        [subscriber, publisher].map((c) =>
          c.status === 'wait' || c.status === 'end'
            ? c.disconnect()
            : c.quit().then(
                () => undefined,
                () => c.disconnect(),
              ),
        ),
      );
    }),
  };
}
