/** A Redis stream id (`ms-seq`): what `event_id` and `?last_event_id=` look like. */
export const STREAM_ID_PATTERN = /^\d+-\d+$/;

const EVENT_ID_TAIL = ',"event_id":"';

/**
 * The `event_id` of a payload made by `attachEventId` (common), read from its tail without parsing:
 * the relay puts it last, and this runs for every live frame of every resuming socket. A `"` inside a
 * JSON string is always escaped, so the unescaped key can only be a real one. Undefined when the
 * payload carries none (an ack, or a frame from an older relay).
 */
export function eventIdOf(payload: string): string | undefined {
  if (!payload.endsWith('"}')) return undefined;
  const start = payload.lastIndexOf(EVENT_ID_TAIL);
  if (start < 0) return undefined;
  const id = payload.slice(start + EVENT_ID_TAIL.length, -2);
  return STREAM_ID_PATTERN.test(id) ? id : undefined;
}

/** The millisecond part of a stream id: Redis stream ids start with the time they were added. */
export function streamIdMs(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}
