import { LRUCache } from 'lru-cache';
import type { PresenceFields } from './record.js';

/** A cached read: the fields, or null for a user with no presence (cached too: random ids are cheap). */
type Entry = { fields: PresenceFields | null };

export interface PresenceCacheOptions {
  /** Entries kept; the least recently used go first. */
  max: number;
  /** Entry lifetime; 0: nothing is cached (reads still coalesce). */
  ttlMs: number;
  /** Injected clock for tests. @default performance */
  perf?: { now(): number };
}

export interface PresenceCacheStats {
  hits: number;
  misses: number;
  /** Reads that joined a load already under way for the same key. */
  coalesced: number;
}

interface Flight {
  promise: Promise<PresenceFields | null>;
  /** Invalidated while loading: the result goes to its readers but not into the cache. */
  stale: boolean;
}

/**
 * The L1 in front of Redis (L2). Invalidation (`invalidate`, from the presence channel) drops an
 * entry and voids a load of it under way, so a load that read Redis before a write and finished
 * after that write's invalidation arrived can never put the old value back. While the channel is
 * down (`suspend`) nothing is cached: invalidations could be missed.
 */
export class PresenceCache {
  private readonly lru: LRUCache<string, Entry> | undefined;
  private readonly flights = new Map<string, Flight>();
  private bypass = false;
  readonly stats: PresenceCacheStats = { hits: 0, misses: 0, coalesced: 0 };

  constructor(options: PresenceCacheOptions) {
    this.lru =
      options.ttlMs > 0
        ? new LRUCache<string, Entry>({
            max: options.max,
            ttl: options.ttlMs,
            // With an injected clock the cached "now" (a 1 ms timer) would hide the clock's steps.
            ttlResolution: options.perf ? 0 : 1,
            ...(options.perf ? { perf: options.perf } : {}),
          })
        : undefined;
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  /**
   * The fields of every key, from the cache or from `load` (called at most once, with the keys
   * neither cached nor being loaded, in their order). Rejects when `load` does.
   */
  async getMany(
    keys: string[],
    load: (keys: string[]) => Promise<Array<PresenceFields | null>>,
  ): Promise<Array<PresenceFields | null>> {
    const results: Array<PresenceFields | null | Promise<PresenceFields | null>> = [];
    const missing: string[] = [];
    const missingAt: number[] = [];
    let pending = false;
    for (const key of keys) {
      const cached = this.bypass ? undefined : this.lru?.get(key);
      if (cached) {
        this.stats.hits++;
        results.push(cached.fields);
        continue;
      }
      const flight = this.flights.get(key);
      if (flight) {
        this.stats.coalesced++;
        pending = true;
        results.push(flight.promise);
        continue;
      }
      this.stats.misses++;
      missingAt.push(results.length);
      missing.push(key);
      results.push(null);
    }
    if (missing.length > 0) {
      const loading = load(missing);
      missing.forEach((key, i) => {
        const flight: Flight = { promise: loading.then((rows) => rows[i] ?? null), stale: false };
        // Readers that join get the rejection too; nobody is left with an unhandled one.
        flight.promise.then(
          (fields) => {
            if (this.flights.get(key) === flight) this.flights.delete(key);
            if (!flight.stale && !this.bypass) this.lru?.set(key, { fields });
          },
          () => {
            if (this.flights.get(key) === flight) this.flights.delete(key);
          },
        );
        this.flights.set(key, flight);
        results[missingAt[i] as number] = flight.promise;
      });
    }
    // Every key from the cache (the common case): no promise per key.
    if (!pending && missing.length === 0) return results as Array<PresenceFields | null>;
    return Promise.all(results);
  }

  /** These keys changed: drop them, and void their loads under way. */
  invalidate(keys: Iterable<string>): void {
    for (const key of keys) {
      this.lru?.delete(key);
      const flight = this.flights.get(key);
      if (flight) {
        flight.stale = true;
        this.flights.delete(key);
      }
    }
  }

  /** Everything may have changed (a missed invalidation). */
  clear(): void {
    this.lru?.clear();
    for (const flight of this.flights.values()) flight.stale = true;
    this.flights.clear();
  }

  /** The invalidation channel is down: read through to Redis until `resume`. */
  suspend(): void {
    this.bypass = true;
    this.clear();
  }

  /** The channel is back: what was cached before may have missed invalidations, so start empty. */
  resume(): void {
    this.clear();
    this.bypass = false;
  }
}
