// zod/mini, as server-frames.ts and http-api.ts: browsers read presence records too.
import * as z from 'zod/mini';

/**
 * Presence (docs/presence.md). `offline` is never set by anyone: a user reads offline when no
 * gateway holds a live lease for them. The three others are what a user chooses; the choice stands
 * across reconnects until changed.
 */
export const PRESENCE_STATUSES = ['online', 'away', 'busy', 'offline'] as const;
export type PresenceStatus = (typeof PRESENCE_STATUSES)[number];
export const CHOSEN_PRESENCE_STATUSES = ['online', 'away', 'busy'] as const;
export type ChosenPresenceStatus = (typeof CHOSEN_PRESENCE_STATUSES)[number];

/** Longest status message accepted by default, in characters (`PRESENCE_MAX_MESSAGE_LENGTH`). */
export const PRESENCE_MESSAGE_MAX_LENGTH_DEFAULT = 140;

/** Control characters have no place in a one-line status message (they would reach other users' UIs). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const PRESENCE_MESSAGE_PATTERN = /^[^\u0000-\u001f\u007f]*$/;

/** The fields of one user's presence, as the API and the `presence` frame give them. */
export const presenceRecordShape = {
  user_id: z.string(),
  status: z.enum(PRESENCE_STATUSES),
  /** '' when none. */
  message: z.string(),
  /** ISO 8601: now while online; when the user was last connected otherwise. */
  last_seen: z.string(),
  /** ISO 8601: when status or message last changed. */
  updated_at: z.string(),
  /** The gateway that made the last change. */
  node_id: z.string(),
  /** Seconds the current status stands without a heartbeat (the lease left); null when offline. */
  ttl_seconds: z.nullable(z.number()),
};

/** One user's presence from the API. Loose: fields may be added. */
export const presenceRecordSchema = z.looseObject(presenceRecordShape);
export type PresenceRecord = z.infer<typeof presenceRecordSchema>;

/** `GET /api/v2/presence?users=…` and `POST /api/v2/presence/batch`. */
export const presenceBatchSchema = z.looseObject({
  presence: z.array(presenceRecordSchema),
  /** Asked for, unknown on the reader's site (never seen, expired, or another site's user). */
  not_found: z.array(z.string()),
});
export type PresenceBatch = z.infer<typeof presenceBatchSchema>;

/**
 * Fields of the stored hash `REDIS_KEYS.presence(site, userid)`, written only by the store's
 * presence methods (atomic there) and read back with `hashGetMany`. Short names: the hash exists
 * for every user who connected in the retention window.
 */
export const PRESENCE_FIELDS = {
  /** The chosen status (`online` | `away` | `busy`); absent: online. */
  status: 's',
  /** The status message; absent: ''. */
  message: 'm',
  /** Epoch ms of the last change of the effective status or message. */
  updatedAt: 'u',
  /** Node id of that change. */
  node: 'n',
  /** Epoch ms of the last join, heartbeat or leave. */
  lastSeen: 'l',
  /** Prefix of a lease field: `@<node id>` → epoch ms until which that gateway holds the user. */
  leasePrefix: '@',
} as const;
