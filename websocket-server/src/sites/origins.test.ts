import { describe, expect, it } from 'vitest';
import { compileOrigin } from './origins.js';

describe('origin patterns', () => {
  it('matches exact origins, default ports included', () => {
    const p = compileOrigin('https://www.acme.example');
    expect(p.matches('https://www.acme.example')).toBe(true);
    expect(p.matches('https://www.acme.example:443')).toBe(true);
    expect(p.matches('HTTPS://WWW.ACME.EXAMPLE')).toBe(true);
    expect(p.matches('http://www.acme.example')).toBe(false);
    expect(p.matches('https://www.acme.example:8443')).toBe(false);
    expect(p.matches('https://www.acme.example.evil.example')).toBe(false);
    expect(p.matches('https://evilwww.acme.example')).toBe(false);
    expect(p.matches('null')).toBe(false);
    expect(p.matches('')).toBe(false);
  });

  it('a wildcard label is one label, never the bare domain or a deeper name', () => {
    const p = compileOrigin('https://*.acme.example');
    expect(p.matches('https://shop.acme.example')).toBe(true);
    expect(p.matches('https://acme.example')).toBe(false);
    expect(p.matches('https://a.b.acme.example')).toBe(false);
    expect(p.matches('https://shopacme.example')).toBe(false);
  });

  it('a wildcard port takes any port of that host', () => {
    const p = compileOrigin('http://localhost:*');
    expect(p.matches('http://localhost:3000')).toBe(true);
    expect(p.matches('http://localhost')).toBe(true);
    expect(p.matches('http://localhost.evil.example:3000')).toBe(false);
    expect(p.matches('https://localhost:3000')).toBe(false);
    expect(p.matches('http://127.0.0.1:3000')).toBe(false);
  });

  it('refuses malformed patterns at start', () => {
    for (const bad of [
      '*',
      'https://*',
      'acme.example',
      'https://a.*.example',
      'https://acme.example/path',
      'ftp://x',
    ])
      expect(() => compileOrigin(bad)).toThrow(/origin pattern/);
  });
});
