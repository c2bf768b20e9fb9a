import {
  REDIS_KEYS,
  once,
  parseStored,
  presenceInvalidationSchema,
  type ChosenPresenceStatus,
  type Guard,
  type KeyValueStore,
  type Metrics,
  type PresenceInvalidation,
  type PresenceRecord,
  type PubSub,
} from '@relay/common';
import type { Logger } from 'pino';
import { PresenceCache } from './l1-cache.js';
import type { PresenceSettings } from './options.js';
import { presenceView } from './record.js';

/** Keys per heartbeat write: one Redis script each, so a beat of many users never holds Redis long. */
const HEARTBEAT_CHUNK = 500;

export interface PresenceDeps {
  settings: PresenceSettings;
  /** This gateway's id: the node of its leases. */
  serverId: string;
  store: KeyValueStore;
  pubsub: PubSub;
  logger: Logger;
  metrics: Metrics;
  guard: Guard;
  /** @default Date.now */
  now?: () => number;
  /** Clock of the L1 cache, for tests. @default performance */
  perf?: { now(): number };
}

export type PresenceSetResult =
  { ok: true; record: PresenceRecord } | { ok: false; code: 'rate_limited'; retryAfterMs: number };

export interface Presence {
  /** Subscribes the invalidation channel (resolves once active) and starts the heartbeats. */
  start(): Promise<void>;
  /** The user's first socket here opened: take a lease. Never rejects (failures are logged; the next heartbeat retries). */
  join(site: string, userid: string): Promise<void>;
  /** The user's last socket here closed: give the lease back. Never rejects. */
  leave(site: string, userid: string): Promise<void>;
  /** The user's chosen status and message (authorised by the caller). Rejects when Redis does. */
  set(
    site: string,
    userid: string,
    update: { status: ChosenPresenceStatus; message?: string | undefined },
  ): Promise<PresenceSetResult>;
  /** Presence of users of `site`, null for each one without (L1, then Redis). Rejects when Redis does. */
  read(site: string, userids: readonly string[]): Promise<Array<PresenceRecord | null>>;
  /** Renews every lease held here (the timer calls it; tests too). */
  heartbeat(): Promise<void>;
  /** The invalidation channel dropped: read through to Redis. */
  suspend(): void;
  /** The channel is subscribed again. */
  resume(): void;
  /** Users this gateway holds a lease on. */
  readonly held: number;
  readonly cache: PresenceCache;
  /** Stops the heartbeats, gives back every lease still held, unsubscribes. Idempotent. */
  close(): Promise<void>;
}

function presenceMetrics(metrics: Metrics) {
  return {
    reads: metrics.counter({
      name: 'presence_reads_total',
      help: 'Presence look-ups by where they were answered (hit: L1, miss: Redis, coalesced: joined a Redis read under way)',
      labelNames: ['result'],
    }),
    writes: metrics.counter({
      name: 'presence_writes_total',
      help: 'Presence writes by operation (join, leave, heartbeat, set) and outcome',
      labelNames: ['op', 'outcome'],
    }),
    invalidationDelay: metrics.histogram({
      name: 'presence_invalidation_delay_seconds',
      help: 'From a presence write on another gateway to its invalidation reaching this one',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    }),
    held: metrics.gauge({
      name: 'presence_users_held',
      help: 'Users this gateway holds a presence lease on',
    }),
  };
}

/**
 * Presence on this gateway (docs/presence.md): leases on the users it holds sockets of, renewed by
 * heartbeats; the users' chosen status; reads through the L1 cache, which the presence channel
 * keeps in step with every gateway's writes.
 */
export function createPresence(deps: PresenceDeps): Presence {
  const { settings, store, pubsub, logger, serverId } = deps;
  const now = deps.now ?? Date.now;
  const m = presenceMetrics(deps.metrics);
  // Bound once: a read is counted on the hot path, where label hashing per call shows.
  const readsBy = {
    hit: m.reads.labels('hit'),
    miss: m.reads.labels('miss'),
    coalesced: m.reads.labels('coalesced'),
  };
  const cache = new PresenceCache({
    max: settings.l1Max,
    ttlMs: settings.l1TtlMs,
    ...(deps.perf ? { perf: deps.perf } : {}),
  });
  /** Lease key → nothing: the users this gateway holds, in the order they joined. */
  const held = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> | undefined;
  let closed = false;
  const leaseOptions = () => ({
    node: serverId,
    nowMs: now(),
    leaseMs: settings.leaseMs,
    retentionMs: settings.retentionMs,
  });

  /** After a write: this gateway's cache at once, the others' through the channel. */
  function changed(keys: string[]): void {
    if (keys.length === 0) return;
    cache.invalidate(keys);
    const message: PresenceInvalidation = { v: 1, node: serverId, keys, at: now() };
    pubsub.publish(REDIS_KEYS.presenceChannel, JSON.stringify(message)).catch((err: unknown) => {
      // The others then see the change when their entry's L1 TTL runs out.
      m.writes.inc({ op: 'invalidate', outcome: 'failed' });
      logger.warn({ err, keys: keys.length }, 'presence invalidation publish failed');
    });
  }

  const onInvalidation = (payload: string) => {
    deps.guard.run('presence invalidation', () => {
      const message = parseStored(presenceInvalidationSchema, payload);
      if (!message || message.node === serverId) return;
      if (message.at !== undefined) m.invalidationDelay.observe(Math.max(0, now() - message.at) / 1000);
      cache.invalidate(message.keys);
    });
  };

  async function lease(op: 'join' | 'leave', keys: string[], label: string): Promise<void> {
    try {
      changed(await store.presenceLease({ op, keys, ...leaseOptions() }));
      m.writes.inc({ op: label, outcome: 'ok' });
    } catch (err) {
      m.writes.inc({ op: label, outcome: 'failed' });
      logger.warn({ err, op: label, keys: keys.length }, 'presence lease write failed');
    }
  }

  async function beat(): Promise<void> {
    const keys = [...held];
    for (let i = 0; i < keys.length && !closed; i += HEARTBEAT_CHUNK) {
      // Filtered right before the write: a leave issued since is not undone by this beat (the
      // store's commands reach Redis in the order they were issued).
      const chunk = keys.slice(i, i + HEARTBEAT_CHUNK).filter((k) => held.has(k));
      if (chunk.length > 0) await lease('join', chunk, 'heartbeat');
    }
  }

  return {
    cache,
    get held() {
      return held.size;
    },
    async start() {
      await pubsub.subscribe(REDIS_KEYS.presenceChannel, onInvalidation);
      timer = setInterval(() => void this.heartbeat(), settings.heartbeatMs);
      timer.unref();
    },
    heartbeat() {
      // One at a time: a slow Redis must not pile beats up.
      beating ??= beat().finally(() => (beating = undefined));
      return beating;
    },
    join(site, userid) {
      // A socket opening during shutdown: the client is about to be closed and reconnect elsewhere.
      if (closed) return Promise.resolve();
      const key = REDIS_KEYS.presence(site, userid);
      held.add(key);
      m.held.set(held.size);
      return lease('join', [key], 'join');
    },
    leave(site, userid) {
      const key = REDIS_KEYS.presence(site, userid);
      held.delete(key);
      m.held.set(held.size);
      // After close every lease was given back already (and Redis may be closing).
      if (closed) return Promise.resolve();
      return lease('leave', [key], 'leave');
    },
    async set(site, userid, update) {
      const rate = await store.incrementWindow(REDIS_KEYS.presenceWriteRate(userid), settings.writeWindowMs);
      if (rate.count > settings.writeLimit) {
        m.writes.inc({ op: 'set', outcome: 'rate_limited' });
        return { ok: false, code: 'rate_limited', retryAfterMs: rate.resetMs };
      }
      const key = REDIS_KEYS.presence(site, userid);
      const fields = await store.presenceSet({
        key,
        node: serverId,
        nowMs: now(),
        retentionMs: settings.retentionMs,
        status: update.status,
        message: update.message ?? '',
      });
      m.writes.inc({ op: 'set', outcome: 'ok' });
      changed([key]);
      return { ok: true, record: presenceView(userid, fields, now()) };
    },
    async read(site, userids) {
      const before = { hits: cache.stats.hits, misses: cache.stats.misses, coalesced: cache.stats.coalesced };
      // getMany counts synchronously, before its first await: the differences are this read's own.
      const loading = cache.getMany(
        userids.map((u) => REDIS_KEYS.presence(site, u)),
        (keys) => store.hashGetMany(keys),
      );
      const { hits, misses, coalesced } = cache.stats;
      if (hits > before.hits) readsBy.hit.inc(hits - before.hits);
      if (misses > before.misses) readsBy.miss.inc(misses - before.misses);
      if (coalesced > before.coalesced) readsBy.coalesced.inc(coalesced - before.coalesced);
      const rows = await loading;
      const t = now();
      return rows.map((fields, i) => (fields ? presenceView(userids[i] as string, fields, t) : null));
    },
    suspend: () => cache.suspend(),
    resume: () => cache.resume(),
    close: once(async () => {
      closed = true;
      clearInterval(timer);
      await beating;
      const keys = [...held];
      held.clear();
      m.held.set(0);
      if (keys.length > 0) await lease('leave', keys, 'leave');
      await pubsub.unsubscribe(REDIS_KEYS.presenceChannel, onInvalidation).catch((err: unknown) => {
        logger.warn({ err }, 'presence unsubscribe failed');
      });
    }),
  };
}
