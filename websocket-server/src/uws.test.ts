import { describe, expect, it } from 'vitest';
import { loadUws } from './uws.js';

describe('uWebSockets.js', () => {
  it('loads the native addon, not the pure-JS fallback', () => {
    const { uws, native } = loadUws();
    expect(native).toBe(true);
    expect(typeof uws.App).toBe('function');
    expect(process.env.UWS_USE_FALLBACK ?? '').not.toMatch(/^(1|true)$/i);
  });
});
