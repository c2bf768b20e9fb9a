import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { KeyValueStore, MessageListener, PubSub, StreamEntry } from './store.js';
import { once } from '../lifecycle/once.js';
import { PRESENCE_FIELDS as F } from '../contract/presence.js';

export interface RedisOptions {
  url: string;
  logger: Logger;
  /** Name shown by CLIENT LIST, for operators. */
  connectionName?: string;
}

/**
 * Shared ioredis settings: retry forever with a capped delay; fail commands fast while offline.
 * `pipeline`: commands issued in the same event-loop turn go out in one write (ioredis auto
 * pipelining). Under load that turns thousands of small socket writes a second into a few hundred
 * (the relay's append + publish per frame, the gateway's rate-limit calls); replies and order per
 * connection are unchanged. Not for the subscriber connection, whose commands are mode switches.
 */
function connect(options: RedisOptions, role: string, pipeline = false): Redis {
  const client = new Redis(options.url, {
    enableAutoPipelining: pipeline,
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

/**
 * Connects a `lazyConnect` client on first use, once: every caller until it is ready waits for that
 * same connect. Sending meanwhile raced ioredis' ready check: a gateway's first burst of sockets
 * subscribed while the connection was being set up, the ready check's INFO went out after the first
 * SUBSCRIBE and failed with "Connection in subscriber mode" (ioredis #2037), and those subscribes
 * were rejected (the bench found it; a test reproduces it). Once ioredis reconnects on its own, its
 * offline queue holds commands, as before.
 */
function firstConnect(client: Redis): () => Promise<void> {
  let connecting: Promise<void> | undefined;
  let connected = false;
  return async () => {
    if (connected) return;
    if (!connecting) {
      if (client.status !== 'wait') return;
      connecting = client.connect().then(
        () => void (connected = true),
        (err: unknown) => {
          connecting = undefined;
          throw err;
        },
      );
    }
    await connecting;
  };
}

/** A Lua script and its SHA1, so the hot path sends the 40-char digest instead of the source. */
interface LuaScript {
  source: string;
  sha: string;
}
const lua = (source: string): LuaScript => ({ source, sha: createHash('sha1').update(source).digest('hex') });

/** EVALSHA, falling back to EVAL when the server has not cached the script yet (or lost it on restart). */
async function runScript(
  c: Redis,
  script: LuaScript,
  keys: string[],
  args: Array<string | number>,
): Promise<unknown> {
  try {
    return await c.call('EVALSHA', script.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
    return c.call('EVAL', script.source, keys.length, ...keys, ...args);
  }
}

// INCR and PEXPIRE in one step so a crash between them can never leave a counter without a TTL.
const INCREMENT_WINDOW = lua(`
local c = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}`);

// XADD with an exact cap that remembers the highest id it trims (Redis 7.0 tracks that only for
// XDEL), so resume can tell "trimmed" from "nothing new". Both keys share the TTL. The one copy of
// this logic: both scripts below start with it.
const CAPPED_XADD = `
local function capped_xadd(stream, trimmed, maxlen, ttl, fields)
  local len = redis.call('XLEN', stream)
  if len >= maxlen then
    local dropped = redis.call('XRANGE', stream, '-', '+', 'COUNT', len - maxlen + 1)
    redis.call('SET', trimmed, dropped[#dropped][1])
  end
  local id = redis.call('XADD', stream, 'MAXLEN', maxlen, '*', unpack(fields))
  if ttl > 0 then
    redis.call('PEXPIRE', stream, ttl)
    if redis.call('EXISTS', trimmed) == 1 then redis.call('PEXPIRE', trimmed, ttl) end
  end
  return id
end`;

// KEYS: stream, trimmed. ARGV: maxlen, ttl, field, value, …
const STREAM_APPEND = lua(`${CAPPED_XADD}
return capped_xadd(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), {unpack(ARGV, 3)})`);

// The relay's exactly-once append (docs/delivery.md): the state check, the XADD and the state
// update in one script, so a relay crash can never leave a frame appended without its state or the
// other way round. KEYS: stream, trimmed, state. ARGV: maxlen, ttl, kind, seq, state ttl, frame.
// Returns false (a nil reply) for a skipped redelivery, {id, 1, frame} for a repeat of the newest
// frame, {id, 0, stream length} for an append.
const APPEND_FRAME = lua(`${CAPPED_XADD}
local kind = ARGV[3]
local seq = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[3], 'seq', 'done', 'last', 'lastkey')
local key = kind
if kind == 'delta' then key = 'delta:' .. ARGV[4] end
local duplicate = state[2] == '1'
if kind == 'delta' and not duplicate then
  local last = -1
  if state[1] then last = tonumber(state[1]) end
  duplicate = seq <= last
end
if duplicate then
  -- The newest frame of the request again: it may have been appended but never published.
  if state[3] and state[4] == key then
    local entry = redis.call('XRANGE', KEYS[1], state[3], state[3])
    -- Trimmed away or expired meanwhile: nothing left to publish again.
    if #entry == 0 then return false end
    local fields = entry[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'frame' then return {state[3], 1, fields[i + 1]} end
    end
    return false
  end
  return false
end
local id = capped_xadd(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), {'frame', ARGV[6]})
if kind == 'delta' then
  redis.call('HSET', KEYS[3], 'seq', seq)
elseif kind == 'reset' then
  redis.call('HSET', KEYS[3], 'seq', -1)
else
  redis.call('HSET', KEYS[3], 'done', 1)
end
redis.call('HSET', KEYS[3], 'last', id, 'lastkey', key)
if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
return {id, 0, redis.call('XLEN', KEYS[1])}`);

// Presence leases (store.ts PresenceLeaseOptions), every key in one script so a heartbeat of many
// users is one round trip. KEYS: presence hashes. ARGV: op, node, now, lease end (join), retention
// ms; times as decimal strings, stored as given.
// Returns the keys whose online state changed.
const PRESENCE_LEASE = lua(`
local op, node, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local mine = '${F.leasePrefix}' .. node
local changed = {}
for _, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  if op == 'join' or #flat > 0 then
    local was, others, expired = false, false, {}
    for j = 1, #flat, 2 do
      local f = flat[j]
      if string.sub(f, 1, 1) == '${F.leasePrefix}' then
        if tonumber(flat[j + 1]) > now then
          was = true
          if f ~= mine then others = true end
        else
          expired[#expired + 1] = f
        end
      end
    end
    if #expired > 0 then redis.call('HDEL', key, unpack(expired)) end
    if op == 'join' then
      redis.call('HSET', key, mine, ARGV[4], '${F.lastSeen}', ARGV[3])
      if not was then
        redis.call('HSET', key, '${F.updatedAt}', ARGV[3], '${F.node}', node)
        changed[#changed + 1] = key
      end
    else
      redis.call('HDEL', key, mine)
      redis.call('HSET', key, '${F.lastSeen}', ARGV[3])
      if was and not others then
        redis.call('HSET', key, '${F.updatedAt}', ARGV[3], '${F.node}', node)
        changed[#changed + 1] = key
      end
    end
    redis.call('PEXPIRE', key, ARGV[5])
  end
end
return changed`);

/** Keys per presence script call: bounds the time one script holds Redis (a few ms). */
const PRESENCE_KEYS_PER_SCRIPT = 500;

/** Where a stream's highest trimmed id is kept (a prefix no other key uses, so no collisions). */
const trimmedKey = (key: string) => `stream-trimmed:${key}`;

export function createRedisStore(options: RedisOptions): KeyValueStore & { readonly client: Redis } {
  const client = connect(options, 'commands', true);
  const ready = firstConnect(client);

  async function withClient<T>(fn: (c: Redis) => Promise<T>): Promise<T> {
    await ready();
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
    incrementWindow: (key, windowMs, by = 1) =>
      withClient(async (c) => {
        const [count, resetMs] = (await runScript(c, INCREMENT_WINDOW, [key], [windowMs, by])) as [
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
        const id = await runScript(
          c,
          STREAM_APPEND,
          [key, trimmedKey(key)],
          [opts.maxLength, opts.ttlMs ?? 0, ...flat],
        );
        return String(id);
      }),
    appendFrame: (opts) =>
      withClient(async (c) => {
        const reply = await runScript(
          c,
          APPEND_FRAME,
          [opts.stream, trimmedKey(opts.stream), opts.state],
          [
            opts.maxLength,
            opts.ttlMs,
            opts.kind,
            opts.kind === 'delta' ? opts.seq : -1,
            opts.stateTtlMs,
            opts.frame,
          ],
        );
        // Lua false arrives as null; a table as [id, duplicate, frame] or [id, duplicate, length].
        if (!Array.isArray(reply)) return null;
        return Number(reply[1]) === 1
          ? { eventId: String(reply[0]), duplicate: true, frame: String(reply[2]) }
          : { eventId: String(reply[0]), duplicate: false, length: Number(reply[2]) };
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
    presenceLease: (opts) =>
      withClient(async (c) => {
        const changed: string[] = [];
        for (let i = 0; i < opts.keys.length; i += PRESENCE_KEYS_PER_SCRIPT) {
          const keys = opts.keys.slice(i, i + PRESENCE_KEYS_PER_SCRIPT);
          const reply = await runScript(c, PRESENCE_LEASE, keys, [
            opts.op,
            opts.node,
            String(opts.nowMs),
            String(opts.nowMs + opts.leaseMs),
            opts.retentionMs,
          ]);
          if (Array.isArray(reply)) for (const key of reply) changed.push(String(key));
        }
        return changed;
      }),
    presenceSet: (opts) =>
      withClient(async (c) => {
        const results = await c
          .multi()
          .hset(
            opts.key,
            F.status,
            opts.status,
            F.message,
            opts.message,
            F.updatedAt,
            opts.nowMs,
            F.node,
            opts.node,
          )
          .pexpire(opts.key, opts.retentionMs)
          .hgetall(opts.key)
          .exec();
        const last = results?.[results.length - 1];
        if (!last || last[0]) throw last?.[0] ?? new Error('redis transaction aborted');
        return last[1] as Record<string, string>;
      }),
    hashGetMany: (keys) =>
      withClient(async (c) => {
        if (keys.length === 0) return [];
        const pipeline = c.pipeline();
        for (const key of keys) pipeline.hgetall(key);
        const results = (await pipeline.exec()) ?? [];
        return results.map(([err, value]) => {
          if (err) throw err;
          const fields = value as Record<string, string>;
          return Object.keys(fields).length > 0 ? fields : null;
        });
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
  options: RedisOptions & {
    onResubscribed?: (channels: number) => void;
    /**
     * The subscriber connection dropped: from now until `onResubscribed`, published frames do not
     * reach this instance. Fired once per outage.
     */
    onDisconnected?: () => void;
  },
): PubSub & { readonly subscriber: Redis; readonly publisher: Redis } {
  const subscriber = connect(options, 'subscriber');
  const publisher = connect(options, 'publisher', true);
  const listeners = new Map<string, Set<MessageListener>>();
  const pending = new Map<string, Promise<void>>();
  let everReady = false;

  let connected = false;
  subscriber.on('close', () => {
    if (!connected) return;
    connected = false;
    options.onDisconnected?.();
  });
  subscriber.on('ready', () => {
    connected = true;
    if (everReady && listeners.size > 0) {
      // ioredis has re-sent SUBSCRIBE for every channel; subscribing again (a no-op for Redis) and
      // awaiting it means the callback runs only once Redis confirmed them, so a caller that now
      // reads what it missed cannot miss a frame published in between.
      const channels = [...listeners.keys()];
      subscriber.subscribe(...channels).then(
        () => {
          options.logger.info({ channels: channels.length }, 'redis reconnected, channels resubscribed');
          options.onResubscribed?.(channels.length);
        },
        (err: unknown) => options.logger.warn({ err }, 'resubscribe after reconnect failed'),
      );
    }
    everReady = true;
  });
  subscriber.on('message', (channel: string, message: string) => {
    const set = listeners.get(channel);
    if (!set) return;
    for (const l of set) {
      // A listener's bug must not reach ioredis' parser (it would stop the process) nor skip the
      // other listeners of the channel; listeners guard themselves, this is the last line.
      try {
        l(message, channel);
      } catch (err) {
        options.logger.error({ err, channel }, 'pub/sub listener threw');
      }
    }
  });

  const subscriberReady = firstConnect(subscriber);
  const publisherReady = firstConnect(publisher);

  return {
    kind: 'redis',
    subscriber,
    publisher,
    async publish(channel, message) {
      await publisherReady();
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
        await subscriberReady();
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
