import type { ResponseEvent } from './kafka-events.js';
import type { ServerFrame } from './server-frames.js';

/**
 * Every serialised frame starts with its `type`, so a gateway can tell a delta from the rest without
 * parsing: `payload.startsWith(DELTA_FRAME_PREFIX)`. It needs that on the hot path, because a client
 * that did not opt in to streaming gets no deltas, and deltas are most of the traffic.
 */
export const DELTA_FRAME_PREFIX = '{"type":"response.delta"';

/** True when a payload made by {@link serializeFrame} is a `response.delta` frame. */
export function isDeltaPayload(payload: string): boolean {
  return payload.startsWith(DELTA_FRAME_PREFIX);
}

export const RESET_FRAME_PREFIX = '{"type":"response.reset"';
export const QUEUED_FRAME_PREFIX = '{"type":"queued"';

/**
 * Frames only streaming sockets get: deltas, the resets that void them, and the queue positions
 * before them. Clients of the original protocol never see any of the three.
 */
export function isStreamOnlyPayload(payload: string): boolean {
  return (
    payload.startsWith(DELTA_FRAME_PREFIX) ||
    payload.startsWith(RESET_FRAME_PREFIX) ||
    payload.startsWith(QUEUED_FRAME_PREFIX)
  );
}

/**
 * True for a `queued` frame: a transient hint, never in the replay log (no `event_id`), which a
 * gateway may drop where a log frame would have to wait (a socket resuming or behind on its sends).
 */
export function isQueuedPayload(payload: string): boolean {
  return payload.startsWith(QUEUED_FRAME_PREFIX);
}

/**
 * The client frame for a response event. Fields are picked one by one: events are lenient and may
 * carry fields from a newer producer, which must not leak to clients. The original `response` and
 * `error` fields keep their names; everything else is additive.
 */
export function frameFromEvent(event: ResponseEvent): ServerFrame {
  switch (event.type) {
    case 'delta':
      return {
        type: 'response.delta',
        request_id: event.request_id,
        seq: event.seq,
        delta: event.delta,
        userid: event.userid,
      };
    case 'final':
      return {
        type: 'response',
        content: event.content,
        userid: event.userid,
        timestamp: event.timestamp,
        processing_time_ms: event.processing_time_ms,
        request_id: event.request_id,
        ...(event.conversation_id !== undefined ? { conversation_id: event.conversation_id } : {}),
        finish_reason: event.finish_reason,
        ...(event.model !== undefined ? { model: event.model } : {}),
        // Picked field by field too: a newer producer's extra fields on a source stay out.
        ...(event.sources !== undefined
          ? { sources: event.sources.map((s) => ({ name: s.name, score: s.score })) }
          : {}),
      };
    case 'error':
      return {
        type: 'error',
        message: event.message,
        code: event.code,
        userid: event.userid,
        request_id: event.request_id,
      };
    case 'reset':
      return { type: 'response.reset', request_id: event.request_id, userid: event.userid };
    case 'queued':
      return {
        type: 'queued',
        request_id: event.request_id,
        position: event.position,
        userid: event.userid,
      };
  }
}

/**
 * JSON text of a frame with `type` always the first key (see {@link DELTA_FRAME_PREFIX}) and, when
 * given, `event_id` the last one. `attachEventId(serializeFrame(f), id)` gives the same bytes as
 * `serializeFrame(f, id)`, so a frame replayed from the log and one delivered live look alike.
 */
export function serializeFrame(frame: ServerFrame, eventId?: string): string {
  const { type, ...rest } = frame as ServerFrame & { event_id?: string };
  delete rest.event_id;
  const text = JSON.stringify({ type, ...rest });
  return eventId === undefined ? text : attachEventId(text, eventId);
}

/**
 * Adds `event_id` to a payload made by {@link serializeFrame} without parsing it: the payload is a
 * JSON object, so the field goes in before its closing brace.
 */
export function attachEventId(payload: string, eventId: string): string {
  if (!payload.endsWith('}')) throw new Error('attachEventId: payload is not a JSON object');
  return `${payload.slice(0, -1)},"event_id":${JSON.stringify(eventId)}}`;
}
