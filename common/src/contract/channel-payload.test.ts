import { describe, expect, it } from 'vitest';
import { hasTraceContext, splitTraceContext, withTraceContext } from './channel-payload.js';
import { attachEventId, serializeFrame } from './frames.js';

const frame = attachEventId(
  serializeFrame({ type: 'response.delta', request_id: 'r1', seq: 0, delta: 'a\nb: {c}', userid: 'u' }),
  '1-0',
);
const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('channel payload (trace context beside the frame on user:{userid})', () => {
  it('an untraced payload is the frame itself', () => {
    expect(hasTraceContext(frame)).toBe(false);
    expect(withTraceContext(frame, {})).toBe(frame);
    expect(splitTraceContext(frame)).toEqual({ frame, carrier: {} });
  });

  it('a traced payload gives back the exact frame bytes and the carrier', () => {
    const carrier = { traceparent, tracestate: 'vendor=a:b{c}' };
    const payload = withTraceContext(frame, carrier);
    expect(payload).toBe(`traceparent:${traceparent}\ntracestate:vendor=a:b{c}\n${frame}`);
    expect(hasTraceContext(payload)).toBe(true);
    expect(splitTraceContext(payload)).toEqual({ frame, carrier });
  });

  it('leaves out what would break the layout, and passes on a payload that has no frame line', () => {
    expect(withTraceContext(frame, { 'a:b': 'x', c: 'd\ne', traceparent })).toBe(
      `traceparent:${traceparent}\n${frame}`,
    );
    expect(splitTraceContext('not a frame')).toEqual({ frame: 'not a frame', carrier: {} });
    expect(splitTraceContext('junk\n{"type":"x"}')).toEqual({ frame: '{"type":"x"}', carrier: {} });
  });
});
