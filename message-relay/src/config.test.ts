import { loadConfig } from '@relay/common';
import { describe, expect, it } from 'vitest';
import { configFragments } from './config.js';

describe('message-relay config', () => {
  it('defaults to the shared group, a 1000-frame replay log, a one-hour resume window, a one-day dedupe window', () => {
    const c = loadConfig(configFragments, {});
    expect(c.relay).toEqual({ groupId: 'message-relay', concurrency: 16 });
    expect(c.delivery).toEqual({ replayMaxEvents: 1000, replayTtlMs: 3_600_000, dedupeTtlMs: 86_400_000 });
    expect(c.http.port).toBe(9102);
  });

  it('reads REPLAY_* and DEDUPE_TTL_SECONDS from the shared delivery fragment and names a bad value', () => {
    const c = loadConfig(configFragments, {
      REPLAY_MAX_EVENTS: '50',
      REPLAY_TTL_SECONDS: '120',
      DEDUPE_TTL_SECONDS: '600',
    });
    expect(c.delivery).toEqual({ replayMaxEvents: 50, replayTtlMs: 120_000, dedupeTtlMs: 600_000 });
    expect(() => loadConfig(configFragments, { REPLAY_TTL_SECONDS: '0' })).toThrow(
      /^config error: REPLAY_TTL_SECONDS must be >= 1/,
    );
  });
});
