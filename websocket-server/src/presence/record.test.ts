import { describe, expect, it } from 'vitest';
import { leaseEnd, presenceView } from './record.js';

const T = 1_700_000_000_000;
const iso = (ms: number) => new Date(ms).toISOString();

describe('presenceView', () => {
  it('online while any lease is live; the chosen status shows then', () => {
    const fields = {
      '@gw-a': String(T + 10_000),
      '@gw-b': String(T - 1),
      s: 'busy',
      m: 'call',
      u: String(T - 5000),
      n: 'gw-a',
      l: String(T - 2000),
    };
    expect(leaseEnd(fields)).toBe(T + 10_000);
    expect(presenceView('u1', fields, T)).toEqual({
      user_id: 'u1',
      status: 'busy',
      message: 'call',
      last_seen: iso(T),
      updated_at: iso(T - 5000),
      node_id: 'gw-a',
      ttl_seconds: 10,
    });
    expect(presenceView('u1', { ...fields, s: 'nonsense' }, T).status).toBe('online');
    expect(presenceView('u1', { '@gw-a': String(T + 1) }, T).status).toBe('online');
  });

  it('offline once every lease ran out: the lapse is the change, last seen the last heartbeat', () => {
    const fields = { '@gw-dead': String(T + 30_000), u: String(T - 60_000), n: 'gw-dead', l: String(T) };
    expect(presenceView('u1', fields, T + 29_999).status).toBe('online');
    expect(presenceView('u1', fields, T + 30_000)).toEqual({
      user_id: 'u1',
      status: 'offline',
      message: '',
      last_seen: iso(T),
      updated_at: iso(T + 30_000),
      node_id: 'gw-dead',
      ttl_seconds: null,
    });
  });

  it('after a leave: offline since the leave, the chosen status kept for the next connect', () => {
    const fields = { s: 'away', m: 'back soon', u: String(T), n: 'gw-b', l: String(T) };
    expect(presenceView('u1', fields, T + 1)).toMatchObject({
      status: 'offline',
      message: 'back soon',
      updated_at: iso(T),
      last_seen: iso(T),
    });
  });
});
