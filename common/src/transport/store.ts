/** One entry of a capped stream (the per-user replay log). `id` is Redis' `ms-seq` stream id. */
export interface StreamEntry {
  id: string;
  fields: Record<string, string>;
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
  /** Fixed-window counter: increments and starts the window's TTL on the first hit. */
  incrementWindow(key: string, windowMs: number): Promise<{ count: number; resetMs: number }>;
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
  /** Entries with an id strictly greater than `afterId` ('0' for all), oldest first. */
  streamRead(key: string, afterId: string, count: number): Promise<StreamEntry[]>;
  /**
   * The stream's first and last ids and the highest id `streamAppend` ever trimmed away ('0-0' if
   * none), or null when the stream does not exist. Resume uses it to tell a gap from nothing new.
   */
  streamInfo(
    key: string,
  ): Promise<{ firstId: string | null; lastId: string | null; maxDeletedId: string; length: number } | null>;
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

/** Compares two stream ids (`ms-seq`) numerically. */
export function compareStreamIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map((x) => BigInt(x));
  const [bm = 0n, bs = 0n] = b.split('-').map((x) => BigInt(x));
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}
