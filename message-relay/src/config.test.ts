import { loadConfig } from '@relay/common';
import { describe, expect, it } from 'vitest';
import { configFragments } from './config.js';

describe('message-relay config', () => {
  it('defaults to the shared group, a 1000-frame replay log and a one-hour resume window', () => {
    const c = loadConfig(configFragments, {});
    expect(c.relay).toEqual({
      groupId: 'message-relay',
      partitionsConcurrently: 6,
      replayMaxEvents: 1000,
      replayTtlMs: 3_600_000,
    });
    expect(c.http.port).toBe(9102);
  });

  it('reads REPLAY_* and names a bad value', () => {
    const c = loadConfig(configFragments, { REPLAY_MAX_EVENTS: '50', REPLAY_TTL_SECONDS: '120' });
    expect(c.relay).toMatchObject({ replayMaxEvents: 50, replayTtlMs: 120_000 });
    expect(() => loadConfig(configFragments, { REPLAY_TTL_SECONDS: '0' })).toThrow(
      /^config error: REPLAY_TTL_SECONDS must be >= 1/,
    );
  });
});
