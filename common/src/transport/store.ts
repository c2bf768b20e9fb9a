/** One entry of a capped stream (the per-user replay log). `id` is Redis' `ms-seq` stream id. */
export interface StreamEntry {
  id: string;
  fields: Record<string, string>;
}

/**
 * One frame for the relay's exactly-once append (docs/delivery.md, "Relay append"). `kind` says
 * which dedupe rule applies: a `delta` carries its `seq`; `final` covers both final and error events.
 */
/**
 * What `appendFrame` did: appended (`duplicate: false`, a new `eventId`), or found a redelivery of
 * the request's newest frame (`duplicate: true`, that frame's original `eventId` and stored bytes): the relay may have
 * crashed between appending and publishing it, so it is published again, and gateways drop it if
 * they already delivered that `event_id`. `null`: an older duplicate, nothing to publish.
 */
export type AppendResult =
  /** `length`: entries in the stream after the append (at most `maxLength`), for the size metrics. */
  | { eventId: string; duplicate: false; length: number }
  /** `frame`: the stored frame of that event (not the redelivered event's), to publish again. */
  | { eventId: string; duplicate: true; frame: string };

export type AppendFrameOptions = {
  /** The user's replay stream (`REDIS_KEYS.replayLog(userid)`). */
  stream: string;
  /** The request's relay state hash (`REDIS_KEYS.relayed(userid, requestId)`). */
  state: string;
  /** Serialised frame without `event_id`, stored in the entry's `frame` field. */
  frame: string;
  /** Exact cap of the stream (`REPLAY_MAX_EVENTS`). */
  maxLength: number;
  /** TTL of the stream, refreshed on every append (`REPLAY_TTL_SECONDS`); 0 keeps the current one. */
  ttlMs: number;
  /** TTL of the state hash, refreshed on every append (`DEDUPE_TTL_SECONDS`); 0 keeps the current one. */
  stateTtlMs: number;
} & ({ kind: 'delta'; seq: number } | { kind: 'reset' | 'final' });

/**
 * A gateway takes (`join`, also its heartbeat) or gives back (`leave`) its lease on users' presence
 * hashes (docs/presence.md; fields `PRESENCE_FIELDS`). Per key, atomically: expired leases are
 * dropped; `join` sets this node's lease to `nowMs + leaseMs` and the last-seen time; `leave`
 * removes it and sets the last-seen time (a key that does not exist is left alone). When the user
 * thereby goes from no live lease to one (join) or from one to none (leave), the updated-at time
 * and node are set and the key is reported changed. Every key touched keeps `retentionMs` to live.
 */
export interface PresenceLeaseOptions {
  op: 'join' | 'leave';
  /** `REDIS_KEYS.presence(site, userid)` of each user. */
  keys: string[];
  /** This gateway's id (`SERVER_ID`). */
  node: string;
  /** The gateway's clock: every gateway's leases are compared with it, so clocks must agree (NTP). */
  nowMs: number;
  /** `join`: how long the lease lasts without another heartbeat. */
  leaseMs: number;
  retentionMs: number;
}

/** A user's chosen status and message, set atomically with the updated-at time and node. */
export interface PresenceSetOptions {
  key: string;
  node: string;
  nowMs: number;
  retentionMs: number;
  status: string;
  message: string;
}

/**
 * The commands our services need from Redis, each atomic. Small on purpose: every method has an
 * in-process twin, and one contract suite runs against both.
 */
export interface KeyValueStore {
  readonly kind: 'redis' | 'memory';
  ping(): Promise<void>;
  get(key: string): Promise<string | null>;
  /** SET with optional TTL; with `onlyIfAbsent` returns false when the key already existed. */
  set(key: string, value: string, options?: { ttlMs?: number; onlyIfAbsent?: boolean }): Promise<boolean>;
  del(key: string): Promise<number>;
  /**
   * Fixed-window counter: adds `by` (a positive integer, @default 1) and starts the window's TTL
   * on the first hit. `get` reads it without counting.
   */
  incrementWindow(key: string, windowMs: number, by?: number): Promise<{ count: number; resetMs: number }>;
  /** Appends to a list, keeps only the newest `maxLength` items and refreshes its TTL. Returns the length. */
  listAppend(key: string, values: string[], options: { maxLength: number; ttlMs?: number }): Promise<number>;
  /** LRANGE semantics (inclusive, negative indexes from the end). */
  listRange(key: string, start: number, stop: number): Promise<string[]>;
  /** XADD with an exact MAXLEN cap; returns the new entry's id. */
  streamAppend(
    key: string,
    fields: Record<string, string>,
    options: { maxLength: number; ttlMs?: number },
  ): Promise<string>;
  /**
   * The relay's append, atomic: checks the request's state, appends like `streamAppend` (field
   * `frame`), updates the state and both TTLs. Returns the new entry id (the frame's `event_id`), or
   * null when the event is a redelivery and nothing was written:
   * - `delta`: skipped once the request is done, or when `seq` <= the last appended `seq`;
   * - `reset`: skipped once done; otherwise appended and the last `seq` goes back to -1;
   * - `final`: skipped once done; otherwise appended and the request is done.
   */
  appendFrame(options: AppendFrameOptions): Promise<AppendResult | null>;
  /** Entries with an id strictly greater than `afterId` ('0' for all), oldest first. */
  streamRead(key: string, afterId: string, count: number): Promise<StreamEntry[]>;
  /**
   * The stream's first and last ids and the highest id `streamAppend` ever trimmed away ('0-0' if
   * none), or null when the stream does not exist. Resume uses it to tell a gap from nothing new.
   */
  streamInfo(
    key: string,
  ): Promise<{ firstId: string | null; lastId: string | null; maxDeletedId: string; length: number } | null>;
  /** Presence leases (see {@link PresenceLeaseOptions}); returns the keys whose online state changed. */
  presenceLease(options: PresenceLeaseOptions): Promise<string[]>;
  /** Sets the chosen status and message; returns the hash's fields afterwards. */
  presenceSet(options: PresenceSetOptions): Promise<Record<string, string>>;
  /** HGETALL of each key, in one round trip: null for a key that does not exist. */
  hashGetMany(keys: string[]): Promise<Array<Record<string, string> | null>>;
  close(): Promise<void>;
}

export type MessageListener = (message: string, channel: string) => void;

/**
 * Pub/sub port. A channel is subscribed on the server while it has at least one listener; the Redis
 * adapter subscribes every held channel again after a reconnect.
 */
export interface PubSub {
  readonly kind: 'redis' | 'memory';
  /** Returns how many subscribers received it (Redis' PUBLISH reply). */
  publish(channel: string, message: string): Promise<number>;
  /** Resolves once the subscription is active on the server. */
  subscribe(channel: string, listener: MessageListener): Promise<void>;
  unsubscribe(channel: string, listener: MessageListener): Promise<void>;
  /** Channels this instance currently holds. */
  channels(): string[];
  close(): Promise<void>;
}

// Part of the wire contract (clients compare event_ids too); re-exported for the server side.
export { compareStreamIds } from '../contract/stream-ids.js';
