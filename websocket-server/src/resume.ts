import {
  REDIS_KEYS,
  attachEventId,
  compareStreamIds,
  serializeFrame,
  type KeyValueStore,
  type ResumeGapFrame,
} from '@relay/common';
import { streamIdMs } from './event-id.js';
import type { Delivery, OutboundSocket } from './socket-delivery.js';

/** Entries read per XRANGE while replaying. */
export const REPLAY_PAGE_SIZE = 200;

export interface ResumeDeps {
  store: KeyValueStore;
  delivery: Delivery;
  /** `REPLAY_TTL_SECONDS` in ms: a log that is gone lost everything older than this. */
  replayTtlMs: number;
  /** @default Date.now */
  now?: () => number;
}

export interface ResumeResult {
  /** Frames read from the log (before the socket's stream filter). */
  replayed: number;
  gap: boolean;
  /** The socket closed during the replay; it never went live. */
  abandoned: boolean;
}

type StreamInfo = Awaited<ReturnType<KeyValueStore['streamInfo']>>;

/**
 * Whether frames after `since` may be missing from the log (docs/delivery.md, "Resume"): trimmed by
 * the cap, or the whole log expired. Ids in the log only grow and trimming removes the oldest, so a
 * real `since` above the highest trimmed id is either still in the log or gone with the whole
 * stream: when the log's first id is past it, the stream expired and was created again since.
 */
export function isGap(info: StreamInfo, since: string, ttlMs: number, now: number): boolean {
  if (info === null) return streamIdMs(since) < now - ttlMs;
  const trimmed = compareStreamIds(info.maxDeletedId, since);
  if (trimmed > 0) return true;
  return trimmed < 0 && info.firstId !== null && compareStreamIds(info.firstId, since) > 0;
}

/**
 * Replays `replay:{userid}` after `afterId` to a socket registered in resuming mode whose user
 * channel is already subscribed, then switches it to live: live frames that arrived meanwhile and
 * are newer than the last replayed one follow, so the client sees every retained frame once, in
 * order. A gap (frames no longer retained) is announced with `resume.gap` before the frames after it.
 */
export async function resumeSocket(
  deps: ResumeDeps,
  socket: OutboundSocket,
  afterId: string,
): Promise<ResumeResult> {
  const now = deps.now ?? Date.now;
  const data = socket.getUserData();
  const key = REDIS_KEYS.replayLog(data.userid);
  let last = afterId;
  let replayed = 0;
  let gap = false;
  for (;;) {
    const page = await deps.store.streamRead(key, last, REPLAY_PAGE_SIZE);
    // Read after the page: if nothing after `last` had been trimmed by then, the page starts right
    // after `last`. Checked per page, as a busy log can trim between two pages of a long replay.
    const info = await deps.store.streamInfo(key);
    if (data.closed) return { replayed, gap, abandoned: true };
    if (isGap(info, last, deps.replayTtlMs, now())) {
      gap = true;
      const frame: ResumeGapFrame = {
        type: 'resume.gap',
        last_event_id: last,
        oldest_event_id: info?.firstId ?? null,
        message: 'Some frames after last_event_id are no longer retained',
      };
      deps.delivery.replayed(socket, serializeFrame(frame));
    }
    for (const entry of page) {
      const stored = entry.fields.frame;
      if (stored !== undefined) deps.delivery.replayed(socket, attachEventId(stored, entry.id));
      last = entry.id;
      replayed++;
    }
    if (page.length === REPLAY_PAGE_SIZE) continue;
    if (!data.outbox.overflowed) break;
    // Live frames were given up while replaying (too many): they are in the log, read on from here.
    // Clearing the flag first means frames from now on are kept again, so none falls in between.
    data.outbox.overflowed = false;
  }
  if (data.closed) return { replayed, gap, abandoned: true };
  deps.delivery.goLive(socket, last);
  return { replayed, gap, abandoned: false };
}
