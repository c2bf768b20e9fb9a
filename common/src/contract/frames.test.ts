import { describe, expect, it } from 'vitest';
import {
  DELTA_FRAME_PREFIX,
  attachEventId,
  frameFromEvent,
  isDeltaPayload,
  isQueuedPayload,
  isStreamOnlyPayload,
  serializeFrame,
} from './frames.js';
import { parseEvent, responseEventSchema, type ResponseEvent } from './kafka-events.js';
import { serverFrameSchema } from './server-frames.js';

function event(raw: Record<string, unknown>): ResponseEvent {
  const r = parseEvent(
    responseEventSchema,
    JSON.stringify({ v: 1, request_id: 'r1', userid: 'user123', ...raw }),
  );
  if (!r.ok) throw new Error(r.error);
  return r.event;
}

const delta = event({ type: 'delta', seq: 3, delta: 'He' });
const final = event({
  type: 'final',
  content: "I'm doing well, thank you!",
  timestamp: '2024-01-01T12:00:00Z',
  processing_time_ms: 1200,
  conversation_id: 'c1',
  finish_reason: 'stop',
});
const error = event({
  type: 'error',
  code: 'upstream_unavailable',
  message: 'Service temporarily unavailable',
});
const queued = event({ type: 'queued', position: 2 });

describe('frameFromEvent', () => {
  it('maps a delta to a response.delta frame', () => {
    expect(frameFromEvent(delta)).toEqual({
      type: 'response.delta',
      request_id: 'r1',
      seq: 3,
      delta: 'He',
      userid: 'user123',
    });
  });

  it('maps a final event to the original response frame, plus additive fields', () => {
    const frame = frameFromEvent(final);
    expect(frame).toEqual({
      type: 'response',
      content: "I'm doing well, thank you!",
      userid: 'user123',
      timestamp: '2024-01-01T12:00:00Z',
      processing_time_ms: 1200,
      request_id: 'r1',
      conversation_id: 'c1',
      finish_reason: 'stop',
    });
    // Without a conversation the key is absent, not undefined-valued.
    const { conversation_id: _c, ...noConversation } = final;
    expect(Object.keys(frameFromEvent(noConversation as ResponseEvent))).not.toContain('conversation_id');
  });

  it('carries the answering model and the knowledge sources of a final, picking only their fields', () => {
    const grounded = event({
      type: 'final',
      content: 'Within 45 days [returns.md]',
      timestamp: '2024-01-01T12:00:00Z',
      processing_time_ms: 10,
      model: 'gpt-fallback',
      sources: [{ name: 'returns.md', score: 0.62, chunk_text: 'not for clients' }],
    });
    const frame = frameFromEvent(grounded);
    expect(frame).toMatchObject({ model: 'gpt-fallback', sources: [{ name: 'returns.md', score: 0.62 }] });
    expect(JSON.stringify(frame)).not.toContain('chunk_text');
    expect(serverFrameSchema.safeParse(frame).success).toBe(true);
    // An empty list (the site has knowledge, nothing matched) is kept: it is not the same as none.
    expect(frameFromEvent(event({ ...grounded, sources: [] }))).toMatchObject({ sources: [] });
    expect(Object.keys(frameFromEvent(final))).not.toContain('sources');
    expect(Object.keys(frameFromEvent(final))).not.toContain('model');
  });

  it('maps an error event to the original error frame with a code', () => {
    expect(frameFromEvent(error)).toEqual({
      type: 'error',
      message: 'Service temporarily unavailable',
      code: 'upstream_unavailable',
      userid: 'user123',
      request_id: 'r1',
    });
  });

  it('maps a queued event to a queued frame with its position and no event_id', () => {
    expect(frameFromEvent(queued)).toEqual({
      type: 'queued',
      request_id: 'r1',
      position: 2,
      userid: 'user123',
    });
    expect(JSON.stringify(frameFromEvent(event({ type: 'queued', position: 0, note: 'x' })))).not.toContain(
      'note',
    );
  });

  it('does not pass unknown event fields through to the client', () => {
    const withExtra = event({ type: 'delta', seq: 0, delta: 'x', internal_note: 'secret' });
    expect(JSON.stringify(frameFromEvent(withExtra))).not.toContain('internal_note');
  });

  it('produces frames the server-frame schema accepts', () => {
    for (const e of [delta, final, error, queued]) {
      expect(serverFrameSchema.safeParse(frameFromEvent(e)).success).toBe(true);
    }
  });
});

describe('serializeFrame', () => {
  it('puts type first and event_id last, keeping the original field names', () => {
    const text = serializeFrame(frameFromEvent(final), '1700000000000-0');
    expect(text.startsWith('{"type":"response",')).toBe(true);
    expect(text.endsWith(',"event_id":"1700000000000-0"}')).toBe(true);
    const parsed: unknown = JSON.parse(text);
    expect(parsed).toMatchObject({
      type: 'response',
      content: "I'm doing well, thank you!",
      userid: 'user123',
      timestamp: '2024-01-01T12:00:00Z',
      processing_time_ms: 1200,
      event_id: '1700000000000-0',
    });
    const errorText = serializeFrame(frameFromEvent(error), '5-1');
    expect(JSON.parse(errorText)).toMatchObject({
      type: 'error',
      message: 'Service temporarily unavailable',
      userid: 'user123',
      event_id: '5-1',
    });
  });

  it('keeps type first even when the frame object lists it later', () => {
    const text = serializeFrame({ userid: 'u', request_id: 'r', type: 'ack' });
    expect(text).toBe('{"type":"ack","userid":"u","request_id":"r"}');
  });

  it('omits event_id when none is given and replaces one already on the frame', () => {
    expect(serializeFrame(frameFromEvent(delta))).not.toContain('event_id');
    const text = serializeFrame(
      { type: 'response.delta', request_id: 'r1', seq: 3, delta: 'He', userid: 'u', event_id: 'old' },
      'new',
    );
    expect(JSON.parse(text)).toMatchObject({ event_id: 'new' });
    expect(text.match(/event_id/g)).toHaveLength(1);
  });

  it('lets a gateway spot deltas by prefix', () => {
    expect(isDeltaPayload(serializeFrame(frameFromEvent(delta), '1-0'))).toBe(true);
    expect(serializeFrame(frameFromEvent(delta)).startsWith(DELTA_FRAME_PREFIX)).toBe(true);
    expect(isDeltaPayload(serializeFrame(frameFromEvent(final)))).toBe(false);
    expect(isDeltaPayload(serializeFrame(frameFromEvent(error)))).toBe(false);
  });

  it('marks queued frames stream-only, like deltas and resets, and tells them apart', () => {
    const text = serializeFrame(frameFromEvent(queued));
    expect(text).toBe('{"type":"queued","request_id":"r1","position":2,"userid":"user123"}');
    expect(isStreamOnlyPayload(text)).toBe(true);
    expect(isQueuedPayload(text)).toBe(true);
    expect(isDeltaPayload(text)).toBe(false);
    expect(isStreamOnlyPayload(serializeFrame(frameFromEvent(delta)))).toBe(true);
    expect(isStreamOnlyPayload(serializeFrame(frameFromEvent(final)))).toBe(false);
    expect(isQueuedPayload(serializeFrame(frameFromEvent(delta)))).toBe(false);
  });

  it('attachEventId on a stored payload gives the same bytes as serialising with the id', () => {
    for (const e of [delta, final, error]) {
      const frame = frameFromEvent(e);
      expect(attachEventId(serializeFrame(frame), '42-7')).toBe(serializeFrame(frame, '42-7'));
    }
    expect(() => attachEventId('"not an object"', '1-0')).toThrow(/not a JSON object/);
  });

  it('escapes content safely', () => {
    const tricky = event({
      type: 'delta',
      seq: 1,
      delta: '"},"type":"error","x":"\u2028',
    });
    const text = serializeFrame(frameFromEvent(tricky), '1-0');
    expect(JSON.parse(text)).toMatchObject({
      type: 'response.delta',
      delta: '"},"type":"error","x":"\u2028',
    });
  });
});
