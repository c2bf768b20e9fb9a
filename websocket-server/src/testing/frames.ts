import {
  REDIS_KEYS,
  attachEventId,
  serializeFrame,
  type KeyValueStore,
  type PubSub,
  type ServerFrame,
} from '@relay/common';

/** Server frames as the relay makes them, for tests. */
export const frames = {
  delta: (requestId: string, seq: number, delta: string, userid = 'alice'): ServerFrame => ({
    type: 'response.delta',
    request_id: requestId,
    seq,
    delta,
    userid,
  }),
  final: (requestId: string, content: string, userid = 'alice'): ServerFrame => ({
    type: 'response',
    content,
    userid,
    timestamp: '2024-01-01T12:00:00Z',
    processing_time_ms: 5,
    request_id: requestId,
    finish_reason: 'stop',
  }),
  reset: (requestId: string, userid = 'alice'): ServerFrame => ({
    type: 'response.reset',
    request_id: requestId,
    userid,
  }),
  queued: (requestId: string, position: number, userid = 'alice'): ServerFrame => ({
    type: 'queued',
    request_id: requestId,
    position,
    userid,
  }),
};

/** The payload of a frame with its event id, as it travels on the user channel. */
export const payload = (frame: ServerFrame, eventId?: string): string => serializeFrame(frame, eventId);

/**
 * Does what the relay does with one frame: appends it to the user's replay log (the entry id is
 * its event_id), then publishes it with that id on the user's channel. Returns the event_id.
 */
export async function relayFrame(
  store: KeyValueStore,
  pubsub: PubSub,
  userid: string,
  frame: ServerFrame,
  options: { maxLength?: number; ttlMs?: number; publish?: boolean } = {},
): Promise<string> {
  const stored = serializeFrame(frame);
  const id = await store.streamAppend(
    REDIS_KEYS.replayLog(userid),
    { frame: stored },
    { maxLength: options.maxLength ?? 1000, ttlMs: options.ttlMs ?? 3_600_000 },
  );
  if (options.publish ?? true)
    await pubsub.publish(REDIS_KEYS.userChannel(userid), attachEventId(stored, id));
  return id;
}
