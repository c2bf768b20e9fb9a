import { loadConfig } from '@relay/common';
import { describe, expect, it } from 'vitest';
import { gatewayFragment, sitesFor } from '../config.js';
import { originAllowed } from './sites.js';

const settings = (env: Record<string, string>) =>
  loadConfig({ gateway: gatewayFragment }, { JWT_SECRET: 'x'.repeat(32), ...env }).gateway;
const sites = (env: Record<string, string>, host = '127.0.0.1') => sitesFor(settings(env), host);
const one = (site: Record<string, unknown>) => JSON.stringify({ sites: [site] });

describe('sites at start', () => {
  it('production mode: a site must name its origins', () => {
    expect(() => sites({ SITES: one({ id: 'acme', origins: [], identity: ['anonymous'] }) })).toThrow(
      /site acme has no origins/,
    );
    expect(
      sites({ DEV_TOKENS: 'true', SITES: one({ id: 'acme', origins: [], identity: ['anonymous'] }) }).ids,
    ).toContain('acme');
  });

  it('dev tokens on a non-loopback address need a second, explicit yes', () => {
    expect(() => sites({ DEV_TOKENS: 'true' }, '0.0.0.0')).toThrow(/DEV_TOKENS_ALLOW_PUBLIC/);
    expect(sites({ DEV_TOKENS: 'true', DEV_TOKENS_ALLOW_PUBLIC: 'true' }, '0.0.0.0').devTokens).toBe(true);
    expect(sites({ DEV_TOKENS: 'true' }, '127.0.0.1').ids).toEqual(['dev']);
    expect(sites({}, '0.0.0.0').ids).toEqual([]);
  });

  it('who reads whose presence is a site setting: the same site by default, or signed sessions, or oneself', () => {
    const base = { origins: ['https://a.example'], identity: ['anonymous'] };
    expect(sites({ SITES: one({ id: 'acme', ...base }) }).get('acme')?.presenceRead).toBe('site');
    expect(
      sites({ SITES: one({ id: 'acme', ...base, presence: { read: 'self' } }) }).get('acme')?.presenceRead,
    ).toBe('self');
    expect(() => sites({ SITES: one({ id: 'acme', ...base, presence: { read: 'everyone' } }) })).toThrow(
      /sites\.0\.presence\.read/,
    );
    expect(() => sites({ SITES: one({ id: 'acme', ...base, presence: { read: 'site', x: 1 } }) })).toThrow(
      /sites\.0\.presence/,
    );
  });

  it('refuses a bad sites file with one line naming the site and field', () => {
    expect(() => sites({ SITES: 'not json' })).toThrow(/SITES is not valid JSON/);
    expect(() =>
      sites({ SITES: one({ id: 'dev', origins: ['https://a.example'], identity: ['anonymous'] }) }),
    ).toThrow(/reserved/);
    expect(() =>
      sites({ SITES: one({ id: 'acme', origins: ['https://a.example'], identity: ['signed'] }) }),
    ).toThrow(/sites\.0\.secret/);
    expect(() => sites({ SITES: one({ id: 'acme', origins: ['*'], identity: ['anonymous'] }) })).toThrow(
      /origin pattern/,
    );
    expect(() =>
      sites({ SITES: one({ id: 'acme', origins: ['https://a.example'], identity: ['anonymous'], x: 1 }) }),
    ).toThrow(/Unrecognized key/);
    expect(() => sites({ SITES_FILE: '/nonexistent/sites.json' })).toThrow(/cannot be read/);
  });

  it('the demo site takes anonymous visitors from localhost pages only', () => {
    const demo = sites({ DEMO_SITE: 'true' }).get('demo');
    if (!demo) throw new Error('no demo site');
    expect([...demo.modes]).toEqual(['anonymous']);
    expect(originAllowed(demo, 'http://localhost:3000')).toBe(true);
    expect(originAllowed(demo, 'http://127.0.0.1:8080')).toBe(true);
    expect(originAllowed(demo, 'https://evil.example')).toBe(false);
    expect(originAllowed(demo, '')).toBe(false);
  });

  it('site limits fall back to the gateway-wide defaults', () => {
    const s = sites({
      TOKEN_RATE_LIMIT_PER_MINUTE: '7',
      DAILY_TOKEN_BUDGET_PER_USER: '99',
      SITES: one({
        id: 'acme',
        origins: ['https://a.example'],
        identity: ['anonymous'],
        limits: { daily_tokens: 1000 },
      }),
    }).get('acme');
    expect(s).toMatchObject({ tokensPerMinutePerIp: 7, dailyTokensPerUser: 99, dailyTokens: 1000 });
  });
});
