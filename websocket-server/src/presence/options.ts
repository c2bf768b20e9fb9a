import { ConfigError, PRESENCE_MESSAGE_MAX_LENGTH_DEFAULT, fragment, int, loadConfig } from '@relay/common';

/**
 * Presence settings (docs/presence.md). The lease must outlast a heartbeat interval plus the L1
 * TTL with room to spare: a reader's cached copy of a live user's lease is at most L1 TTL old, and
 * the lease in Redis is at most one heartbeat interval (plus the heartbeat's own time) from being
 * renewed, so a live user never reads offline.
 */
export const presenceFragment = fragment(
  {
    /** How long a gateway's lease on a user lasts without a heartbeat: a crashed gateway's users read offline after at most this. @default 30000 */
    PRESENCE_TTL_MS: int(2000, 3_600_000).default(30_000),
    /** How often a gateway renews the leases of the users it holds. @default 10000 */
    PRESENCE_HEARTBEAT_MS: int(200, 1_800_000).default(10_000),
    /** Lifetime of an entry of the in-process cache (L1); 0 turns it off. Invalidation usually drops entries long before. @default 5000 */
    PRESENCE_L1_TTL_MS: int(0, 600_000).default(5000),
    /** Entries of the in-process cache (least recently used go first). @default 100000 */
    PRESENCE_L1_MAX: int(1, 10_000_000).default(100_000),
    /** How long a user's presence (last seen, chosen status) is kept after their last activity. @default 604800 (7 days) */
    PRESENCE_RETENTION_SECONDS: int(60, 365 * 86_400).default(7 * 86_400),
    /** Longest status message, in characters. @default 140 */
    PRESENCE_MAX_MESSAGE_LENGTH: int(0, 1000).default(PRESENCE_MESSAGE_MAX_LENGTH_DEFAULT),
    /** Users one batch read may name (`?users=`, `POST …/batch`). @default 100 */
    PRESENCE_MAX_BATCH: int(1, 1000).default(100),
    /** Presence writes (frame or PUT) one user may make per PRESENCE_WRITE_WINDOW_MS. @default 30 */
    PRESENCE_WRITE_LIMIT: int(1, 1_000_000).default(30),
    /** @default 60000 */
    PRESENCE_WRITE_WINDOW_MS: int(100, 3_600_000).default(60_000),
  },
  (e) => {
    const margin = 1000;
    if (e.PRESENCE_TTL_MS < e.PRESENCE_HEARTBEAT_MS + e.PRESENCE_L1_TTL_MS + margin) {
      throw new ConfigError(
        'PRESENCE_TTL_MS',
        `config error: PRESENCE_TTL_MS must be at least PRESENCE_HEARTBEAT_MS + PRESENCE_L1_TTL_MS + ${margin} (got ${e.PRESENCE_TTL_MS} < ${e.PRESENCE_HEARTBEAT_MS} + ${e.PRESENCE_L1_TTL_MS} + ${margin}), or live users would read offline`,
      );
    }
    return {
      leaseMs: e.PRESENCE_TTL_MS,
      heartbeatMs: e.PRESENCE_HEARTBEAT_MS,
      l1TtlMs: e.PRESENCE_L1_TTL_MS,
      l1Max: e.PRESENCE_L1_MAX,
      retentionMs: e.PRESENCE_RETENTION_SECONDS * 1000,
      maxMessageLength: e.PRESENCE_MAX_MESSAGE_LENGTH,
      maxBatch: e.PRESENCE_MAX_BATCH,
      writeLimit: e.PRESENCE_WRITE_LIMIT,
      writeWindowMs: e.PRESENCE_WRITE_WINDOW_MS,
    };
  },
);

export type PresenceSettings = ReturnType<typeof presenceFragment.build>;

/** Every variable unset. */
export function presenceDefaults(): PresenceSettings {
  return loadConfig({ presence: presenceFragment }, {}).presence;
}
