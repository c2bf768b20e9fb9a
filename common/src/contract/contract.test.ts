import { describe, expect, it } from 'vitest';
import { clientFrameSchemas, parseClientFrame } from './client-frames.js';
import { parseEvent, promptEventSchema, responseEventSchema } from './kafka-events.js';
import { serverFrameSchema } from './server-frames.js';

const limits = { maxContentLength: 100 };
const schemas = clientFrameSchemas(limits);
const parse = (raw: string) => parseClientFrame(raw, schemas, limits, 'user123');

describe('client frames', () => {
  it('accepts the original message frame unchanged', () => {
    const r = parse('{"type":"message","content":"Hello, how are you?","userid":"user123"}');
    expect(r).toEqual({
      ok: true,
      frame: { type: 'message', content: 'Hello, how are you?', userid: 'user123' },
    });
  });

  it('accepts extensions: id, conversation_id, hello, cancel', () => {
    expect(parse('{"type":"message","content":"hi","id":"m-1","conversation_id":"c1"}').ok).toBe(true);
    expect(parse('{"type":"hello","stream":true}')).toEqual({
      ok: true,
      frame: { type: 'hello', stream: true },
    });
    expect(parse('{"type":"cancel","request_id":"m-1"}').ok).toBe(true);
  });

  it.each([
    ['not json', 'invalid_json'],
    ['[1,2]', 'invalid_message'],
    ['{"type":"shout","content":"x"}', 'unknown_type'],
    ['{"content":"x"}', 'unknown_type'],
    ['{"type":"message"}', 'invalid_message'],
    ['{"type":"message","content":"   "}', 'invalid_message'],
    ['{"type":"message","content":42}', 'invalid_message'],
    [`{"type":"message","content":"${'x'.repeat(101)}"}`, 'message_too_large'],
    ['{"type":"message","content":"hi","userid":"someone-else"}', 'userid_mismatch'],
    ['{"type":"message","content":"hi","extra":1}', 'invalid_message'],
    ['{"type":"message","content":"hi","id":"has space"}', 'invalid_message'],
    ['{"type":"cancel"}', 'invalid_message'],
  ])('%s → %s', (raw, code) => {
    const r = parse(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(code);
  });

  // Both killed the process once (issue: hostile input): String() on an unchecked value.
  it.each([
    ['{"type":{"toString":1}}', 'unknown_type'],
    ['{"type":{"toString":{"valueOf":1}},"content":"x"}', 'unknown_type'],
    [`{"type":${'['.repeat(4000)}${']'.repeat(4000)}}`, 'unknown_type'],
    [`{"type":"message","content":${'['.repeat(4000)}${']'.repeat(4000)}}`, 'invalid_message'],
    [`{"type":"message","content":"hi","x":${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}}`, 'invalid_message'],
    ['{"type":"message","content":{"toString":1}}', 'invalid_message'],
    ['{"type":"cancel","request_id":{"valueOf":1}}', 'invalid_message'],
    ['{"type":"message","content":"hi","__proto__":{"polluted":true}}', 'invalid_message'],
    ['{"type":"message","content":"hi","constructor":"x"}', 'invalid_message'],
    ['{"type":"__proto__"}', 'unknown_type'],
    ['{"type":"hasOwnProperty"}', 'unknown_type'],
  ])('hostile %#: refused with %s, never thrown', (raw, code) => {
    const r = parse(raw);
    expect(r).toMatchObject({ ok: false, code });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('quotes an unknown type escaped and bounds every error message', () => {
    const r = parse(JSON.stringify({ type: '\u0000\ud800<b>'.repeat(30) }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.message.length).toBeLessThanOrEqual(200);
    expect(r.message).toContain('\\u0000');
    const long = parse(JSON.stringify({ type: 'message', content: 'hi', ['k'.repeat(5000)]: 1 }));
    expect(long.ok || long.message.length <= 200).toBe(true);
  });

  it('echoes a valid id on an error so the client can match it', () => {
    const r = parse('{"type":"message","content":"hi","userid":"x","id":"m-9"}');
    expect(r).toMatchObject({ ok: false, code: 'userid_mismatch', id: 'm-9' });
  });
});

describe('server frames', () => {
  it('the original response and error shapes validate', () => {
    expect(
      serverFrameSchema.safeParse({
        type: 'response',
        content: "I'm doing well, thank you!",
        userid: 'user123',
        timestamp: '2024-01-01T12:00:00Z',
        processing_time_ms: 1200,
      }).success,
    ).toBe(true);
    expect(
      serverFrameSchema.safeParse({
        type: 'error',
        message: 'Service temporarily unavailable',
        code: 'upstream_unavailable',
        userid: 'u',
      }).success,
    ).toBe(true);
    expect(serverFrameSchema.safeParse({ type: 'error', message: 'x', code: 'made_up' }).success).toBe(false);
  });

  it('a queued frame needs a request id and a whole, non-negative position', () => {
    const queued = { type: 'queued', request_id: 'r', userid: 'u', position: 0 };
    expect(serverFrameSchema.safeParse(queued).success).toBe(true);
    expect(serverFrameSchema.safeParse({ ...queued, position: -1 }).success).toBe(false);
    expect(serverFrameSchema.safeParse({ ...queued, position: 1.5 }).success).toBe(false);
    const { request_id: _r, ...anonymous } = queued;
    expect(serverFrameSchema.safeParse(anonymous).success).toBe(false);
  });
});

describe('kafka events', () => {
  const prompt = { v: 1, request_id: 'r1', userid: 'u1', content: 'hi', received_at: '2024-01-01T00:00:00Z' };

  it('prompt events are versioned, lenient on unknown fields, and default the conversation', () => {
    const r = parseEvent(promptEventSchema, JSON.stringify({ ...prompt, future_field: true }));
    expect(r.ok && r.event.conversation_id).toBe('default');
    expect(r.ok && (r.event as Record<string, unknown>).future_field).toBe(true);
    expect(parseEvent(promptEventSchema, JSON.stringify({ ...prompt, v: 2 })).ok).toBe(false);
  });

  it('response events discriminate delta/final/error and never throw on garbage', () => {
    const delta = { v: 1, type: 'delta', request_id: 'r', userid: 'u', seq: 0, delta: 'He' };
    expect(parseEvent(responseEventSchema, JSON.stringify(delta)).ok).toBe(true);
    expect(parseEvent(responseEventSchema, JSON.stringify({ ...delta, type: 'final' })).ok).toBe(false);
    expect(parseEvent(responseEventSchema, '{oops')).toEqual({ ok: false, error: 'value is not valid JSON' });
    const bad = parseEvent(responseEventSchema, JSON.stringify({ ...delta, seq: -1 }));
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error).toMatch(/^seq:/);
    const queued = { v: 1, type: 'queued', request_id: 'r', userid: 'u', position: 3 };
    expect(parseEvent(responseEventSchema, JSON.stringify(queued)).ok).toBe(true);
    expect(parseEvent(responseEventSchema, JSON.stringify({ ...queued, position: -1 })).ok).toBe(false);
  });
});
