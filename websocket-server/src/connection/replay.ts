import {
  REDIS_KEYS,
  attachEventId,
  compareStreamIds,
  serializeFrame,
  type KeyValueStore,
  type ResumeGapFrame,
} from '@relay/common';
import { streamIdMs } from '../event-id.js';
import type { Connection } from './connection.js';

/** Entries read per XRANGE while replaying. */
export const REPLAY_PAGE_SIZE = 200;

export interface ReplayDeps {
  store: KeyValueStore;
  /** `REPLAY_TTL_SECONDS` in ms: a log that is gone lost everything older than this. */
  replayTtlMs: number;
  /** @default Date.now */
  now?: () => number;
}

export interface ReplayResult {
  /** Frames read from the log (before the socket's stream filter). */
  replayed: number;
  gap: boolean;
  /** The resume point was ahead of the log and was moved back to its end. */
  clamped: boolean;
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
 * Where a replay of `from` really starts: a resume point past the newest entry of the log (or, with
 * no log, past the clock) is not a position this user ever had, and taken as is it would make the
 * socket drop every real frame as already seen. It goes back to the log's end (or to nothing).
 */
function clampStart(info: StreamInfo, from: string, now: number): { start: string | null; clamped: boolean } {
  if (info === null)
    return streamIdMs(from) > now ? { start: null, clamped: true } : { start: from, clamped: false };
  if (info.lastId !== null && compareStreamIds(from, info.lastId) > 0)
    return { start: info.lastId, clamped: true };
  return { start: from, clamped: false };
}

function gapFrame(lastEventId: string, info: StreamInfo, message: string): string {
  const frame: ResumeGapFrame = {
    type: 'resume.gap',
    last_event_id: lastEventId,
    oldest_event_id: info?.firstId ?? null,
    message,
  };
  return serializeFrame(frame);
}

/**
 * Replays `replay:{userid}` after `from` to a `resuming` connection whose user channel is already
 * subscribed, then lets it go live (`caughtUp`): live frames that arrived meanwhile and are newer
 * than the last replayed one follow, so the client sees every retained frame once, in order. A gap
 * (frames no longer retained) is announced with `resume.gap` before the frames after it.
 */
export async function replayLog(
  deps: ReplayDeps,
  connection: Connection,
  from: string,
): Promise<ReplayResult> {
  const now = deps.now ?? Date.now;
  const key = REDIS_KEYS.replayLog(connection.userid);
  let last = from;
  let replayed = 0;
  let gap = false;
  let clamped = false;
  let first = true;
  // Right after a clamp the start is the log's end (or nothing) by construction, not a gap.
  let skipGapCheck = false;
  for (;;) {
    const page = await deps.store.streamRead(key, last, REPLAY_PAGE_SIZE);
    // Read after the page: if nothing after `last` had been trimmed by then, the page starts right
    // after `last`. Checked per page, as a busy log can trim between two pages of a long replay.
    const info = await deps.store.streamInfo(key);
    if (connection.state !== 'resuming') return { replayed, gap, clamped, abandoned: true };
    if (first) {
      first = false;
      const start = clampStart(info, last, now());
      if (start.clamped) {
        clamped = true;
        connection.rewindTo(start.start);
        connection.replayed(gapFrame(last, info, 'last_event_id is ahead of the log; resuming from its end'));
        last = start.start ?? '0-0';
        skipGapCheck = true;
        // The page was read after an id beyond the log, so it is empty: read again from the end.
        continue;
      }
    }
    if (!skipGapCheck && isGap(info, last, deps.replayTtlMs, now())) {
      gap = true;
      connection.replayed(gapFrame(last, info, 'Some frames after last_event_id are no longer retained'));
    }
    skipGapCheck = false;
    for (const entry of page) {
      const stored = entry.fields.frame;
      if (stored !== undefined) connection.replayed(attachEventId(stored, entry.id));
      last = entry.id;
      replayed++;
    }
    if (page.length === REPLAY_PAGE_SIZE) continue;
    if (connection.state !== 'resuming') return { replayed, gap, clamped, abandoned: true };
    if (connection.caughtUp(last)) break;
  }
  return { replayed, gap, clamped, abandoned: false };
}
