import { describe, expect, it } from 'vitest';
import { clientFrameSchemas, parseClientFrame } from './client-frames.js';
import { presenceFrameSchema, serverFrameSchema } from './server-frames.js';
import { REDIS_KEYS } from './redis-keys.js';

const limits = { maxContentLength: 100, maxPresenceMessageLength: 20 };
const schemas = clientFrameSchemas(limits);
const parse = (raw: string) => parseClientFrame(raw, schemas, limits, 'acme:ann');

describe('the presence client frame', () => {
  it('takes a chosen status and an optional short message', () => {
    expect(parse('{"type":"presence","status":"away","message":"lunch"}')).toEqual({
      ok: true,
      frame: { type: 'presence', status: 'away', message: 'lunch' },
    });
    expect(parse('{"type":"presence","status":"online"}')).toMatchObject({ ok: true });
  });

  it('refuses anything else, with a catalog code and never a throw', () => {
    const refused = [
      '{"type":"presence","status":"offline"}',
      '{"type":"presence","status":"AWAY"}',
      '{"type":"presence"}',
      '{"type":"presence","status":"busy","message":"' + 'x'.repeat(21) + '"}',
      '{"type":"presence","status":"busy","message":"line\\nbreak"}',
      '{"type":"presence","status":"busy","message":7}',
      '{"type":"presence","status":"busy","userid":"acme:ann"}',
      '{"type":"presence","status":{"toString":1}}',
      '{"type":"presence","status":["away"]}',
    ];
    for (const raw of refused) {
      const result = parse(raw);
      expect(result.ok, raw).toBe(false);
      if (!result.ok) expect(result.code).toBe('invalid_message');
    }
  });
});

describe('presence on the wire', () => {
  it('the answer frame is a server frame the client SDK can parse', () => {
    const frame = {
      type: 'presence',
      user_id: 'acme:ann',
      status: 'busy',
      message: '',
      last_seen: '2024-01-01T00:00:00.000Z',
      updated_at: '2024-01-01T00:00:00.000Z',
      node_id: 'gw-1',
      ttl_seconds: 30,
    };
    expect(presenceFrameSchema.safeParse(frame).success).toBe(true);
    expect(serverFrameSchema.safeParse(frame).success).toBe(true);
  });

  it('presence keys are per site, with the ids encoded', () => {
    expect(REDIS_KEYS.presence('acme', 'acme:ann')).toBe('presence:acme:acme%3Aann');
    expect(REDIS_KEYS.presence('a', 'b:c')).not.toBe(REDIS_KEYS.presence('a:b', 'c'));
  });
});
