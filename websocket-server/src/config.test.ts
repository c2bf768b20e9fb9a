import { ConfigError, loadConfig } from '@relay/common';
import { describe, expect, it } from 'vitest';
import { configFragments, deliveryDefaults } from './config.js';

const env = { JWT_SECRET: 'x'.repeat(32) };

describe('gateway config', () => {
  it('has the documented slow-client, drain and delivery defaults', () => {
    const config = loadConfig(configFragments, env);
    expect(config.gateway).toMatchObject({
      slowClientSoftBytes: 256 * 1024,
      slowClientHardBytes: 4 * 1024 * 1024,
      drainTimeoutMs: 5000,
      acceptPendingTtlMs: 30_000,
    });
    expect(config.delivery).toEqual({
      replayMaxEvents: 1000,
      replayTtlMs: 3_600_000,
      dedupeTtlMs: 86_400_000,
    });
    expect(deliveryDefaults()).toEqual(config.delivery);
  });

  it('refuses a hard limit at or below the soft one, naming the variable', () => {
    const bad = { ...env, SLOW_CLIENT_SOFT_BYTES: '65536', SLOW_CLIENT_HARD_BYTES: '65536' };
    expect(() => loadConfig(configFragments, bad)).toThrow(ConfigError);
    expect(() => loadConfig(configFragments, bad)).toThrow(
      /^config error: SLOW_CLIENT_HARD_BYTES must be greater/,
    );
  });
});
