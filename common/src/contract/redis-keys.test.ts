import { describe, expect, it } from 'vitest';
import { REDIS_KEYS, cancelControlSchema } from './redis-keys.js';

describe('REDIS_KEYS', () => {
  it('names the user channel and the replay log', () => {
    expect(REDIS_KEYS.userChannel('user123')).toBe('user:user123');
    expect(REDIS_KEYS.replayLog('user123')).toBe('replay:user123');
  });

  it('names the per-request keys of docs/delivery.md', () => {
    expect(REDIS_KEYS.accepted('user123', 'm1')).toBe('accepted:user123:m1');
    expect(REDIS_KEYS.request('user123', 'r1')).toBe('request:user123:r1');
    expect(REDIS_KEYS.relayed('user123', 'r1')).toBe('relayed:user123:r1');
    expect(REDIS_KEYS.cancel('user123', 'r1')).toBe('cancel:user123:r1');
    expect(REDIS_KEYS.cancelChannel).toBe('control:cancel');
  });

  it('encodes each id part, so ids containing ":" cannot collide', () => {
    for (const key of [REDIS_KEYS.accepted, REDIS_KEYS.request, REDIS_KEYS.relayed, REDIS_KEYS.cancel]) {
      expect(key('a:b', 'c')).not.toBe(key('a', 'b:c'));
      expect(key('a:b', 'c').split(':')).toHaveLength(3);
    }
    expect(REDIS_KEYS.accepted('a:b', 'c d/é')).toBe('accepted:a%3Ab:c%20d%2F%C3%A9');
  });

  it('names a cached embedding by model and content hash', () => {
    expect(REDIS_KEYS.embedding('text-embedding-3-small', 'ab12')).toBe(
      'embedding:text-embedding-3-small:ab12',
    );
    expect(REDIS_KEYS.embedding('org:model', 'ab12')).toBe('embedding:org%3Amodel:ab12');
  });
});

describe('cancelControlSchema', () => {
  it('accepts {userid, request_id} and refuses a message without them', () => {
    expect(cancelControlSchema.parse({ userid: 'u', request_id: 'r' })).toEqual({
      userid: 'u',
      request_id: 'r',
    });
    expect(cancelControlSchema.safeParse({ userid: 'u' }).success).toBe(false);
    expect(cancelControlSchema.safeParse({ userid: '', request_id: 'r' }).success).toBe(false);
  });
});
