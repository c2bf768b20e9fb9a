import {
  PRESENCE_FIELDS as F,
  CHOSEN_PRESENCE_STATUSES,
  type ChosenPresenceStatus,
  type PresenceRecord,
} from '@relay/common';

const CHOSEN = new Set<string>(CHOSEN_PRESENCE_STATUSES);

/** The stored hash of one user (`PRESENCE_FIELDS`), as `hashGetMany` returns it. */
export type PresenceFields = Record<string, string>;

/** The latest lease end of any gateway (0 when none). Expired leases are kept until the next write. */
export function leaseEnd(fields: PresenceFields): number {
  let end = 0;
  for (const [field, value] of Object.entries(fields)) {
    if (!field.startsWith(F.leasePrefix)) continue;
    const until = Number(value);
    if (Number.isFinite(until) && until > end) end = until;
  }
  return end;
}

const iso = (ms: number) => new Date(Number.isFinite(ms) && ms > 0 ? ms : 0).toISOString();

/**
 * What a reader sees at `nowMs`, from the stored fields alone, so a cached copy stays right as time
 * passes: a user whose every lease ran out (their gateways crashed or lost Redis) reads offline at
 * once, whether the copy comes from Redis or from the L1.
 */
export function presenceView(userId: string, fields: PresenceFields, nowMs: number): PresenceRecord {
  const until = leaseEnd(fields);
  const online = until > nowMs;
  const chosen = fields[F.status];
  const updatedAt = Number(fields[F.updatedAt] ?? 0);
  const lastSeen = Number(fields[F.lastSeen] ?? updatedAt);
  return {
    user_id: userId,
    status: online
      ? chosen !== undefined && CHOSEN.has(chosen)
        ? (chosen as ChosenPresenceStatus)
        : 'online'
      : 'offline',
    message: fields[F.message] ?? '',
    last_seen: iso(online ? nowMs : lastSeen),
    // A lapse is a change nobody wrote: it happened when the last lease ran out.
    updated_at: iso(online || until <= updatedAt ? updatedAt : until),
    node_id: fields[F.node] ?? '',
    ttl_seconds: online ? Math.ceil((until - nowMs) / 1000) : null,
  };
}
