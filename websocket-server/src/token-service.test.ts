import { describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { createTokenService } from './token-service.js';

const secret = 'a'.repeat(32);

describe('token service', () => {
  it('issues a token bound to the user that verifies to that user', async () => {
    const tokens = createTokenService({ secret, ttlSeconds: 60 });
    const { token, expiresIn } = await tokens.issue('user123');
    expect(expiresIn).toBe(60);
    expect(await tokens.verify(token)).toEqual({ userid: 'user123', site: 'dev', mode: 'dev' });
    const onSite = await tokens.issue('demo:anon-x', { site: 'demo', mode: 'anonymous' });
    expect(await tokens.verify(onSite.token)).toEqual({
      userid: 'demo:anon-x',
      site: 'demo',
      mode: 'anonymous',
    });
  });

  it('rejects a token signed with another secret, a tampered one, an expired one, and garbage', async () => {
    const tokens = createTokenService({ secret, ttlSeconds: 60 });
    const other = createTokenService({ secret: 'b'.repeat(32), ttlSeconds: 60 });
    const { token } = await other.issue('user123');
    expect(await tokens.verify(token)).toBeNull();

    const good = (await tokens.issue('alice')).token;
    const [h, , s] = good.split('.');
    const forgedPayload = Buffer.from(
      JSON.stringify({ sub: 'bob', iss: 'ai-relay', aud: 'ai-relay-ws', exp: 9e9 }),
    ).toString('base64url');
    expect(await tokens.verify(`${h}.${forgedPayload}.${s}`)).toBeNull();

    // Past the clock tolerance (CLOCK_TOLERANCE_SECONDS) it is expired for every gateway.
    const expired = createTokenService({ secret, ttlSeconds: -10 as number });
    expect(await tokens.verify((await expired.issue('alice')).token)).toBeNull();
    expect(await tokens.verify('not.a.jwt')).toBeNull();
    expect(await tokens.verify('')).toBeNull();
  });
});

describe('verified tokens are remembered, their clock checks are not', () => {
  it('expires a token it verified before, and honours nbf and renewal grace on every use', async () => {
    let clock = Date.parse('2026-12-01T12:00:00Z');
    const tokens = createTokenService({ secret, ttlSeconds: 60, now: () => clock });
    const { token } = await tokens.issue('alice');
    expect(tokens.verify(token)?.userid).toBe('alice');
    expect(tokens.verify(token)?.userid).toBe('alice');
    // 60 s TTL + 5 s tolerance: the remembered token is refused like a new one would be.
    clock += 66_000;
    expect(tokens.verify(token)).toBeNull();
    expect(tokens.verifyForRenewal(token, 600)?.userid).toBe('alice');
    clock += 600_000;
    expect(tokens.verifyForRenewal(token, 600)).toBeNull();

    const key = new TextEncoder().encode(secret);
    const t = Math.floor(clock / 1000);
    const later = await new SignJWT({ site: 'dev', mode: 'dev', nbf: t + 30 })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('bob')
      .setIssuer('ai-relay')
      .setAudience('ai-relay-ws')
      .setIssuedAt(t)
      .setExpirationTime(t + 60)
      .sign(key);
    expect(tokens.verify(later)).toBeNull();
    clock += 31_000;
    expect(tokens.verify(later)?.userid).toBe('bob');
  });
});

describe('token hygiene', () => {
  const key = new TextEncoder().encode(secret);
  const sign = (claims: Record<string, unknown>, alg = 'HS256') =>
    new SignJWT({ site: 'demo', mode: 'anonymous', ...claims })
      .setProtectedHeader({ alg })
      .setIssuer('ai-relay')
      .setAudience('ai-relay-ws')
      .sign(key);
  const now = () => Math.floor(Date.now() / 1000);
  const tokens = createTokenService({ secret, ttlSeconds: 60 });

  it('requires sub, iat and exp', async () => {
    expect(await tokens.verify(await sign({ sub: 'alice', iat: now() }))).toBeNull();
    expect(await tokens.verify(await sign({ sub: 'alice', exp: now() + 30 }))).toBeNull();
    expect(await tokens.verify(await sign({ iat: now(), exp: now() + 30 }))).toBeNull();
    expect((await tokens.verify(await sign({ sub: 'alice', iat: now(), exp: now() + 30 })))?.userid).toBe(
      'alice',
    );
  });

  it('requires a site and a known mode', async () => {
    const ok = { sub: 'alice', iat: now(), exp: now() + 30 };
    expect(await tokens.verify(await sign({ ...ok, site: undefined }))).toBeNull();
    expect(await tokens.verify(await sign({ ...ok, mode: 'admin' }))).toBeNull();
    expect(await tokens.verify(await sign({ ...ok, site: 42 }))).toBeNull();
  });

  it('renews an expired token only within the grace window', async () => {
    const expired = await sign({ sub: 'demo:anon-1', iat: now() - 120, exp: now() - 60 });
    expect(await tokens.verify(expired)).toBeNull();
    expect((await tokens.verifyForRenewal(expired, 3600))?.userid).toBe('demo:anon-1');
    expect(await tokens.verifyForRenewal(expired, 10)).toBeNull();
    const forged = await createTokenService({ secret: 'z'.repeat(32), ttlSeconds: 60 }).issue('demo:anon-1', {
      site: 'demo',
      mode: 'anonymous',
    });
    expect(await tokens.verifyForRenewal(forged.token, 3600)).toBeNull();
  });

  it('refuses a sub the userid schema does not allow', async () => {
    for (const sub of ['', 'has space', 'x'.repeat(129), 'a/b'])
      expect(await tokens.verify(await sign({ sub, iat: now(), exp: now() + 30 }))).toBeNull();
  });

  it('refuses a well-signed token that lives longer than the TTL, or is older than it', async () => {
    expect(await tokens.verify(await sign({ sub: 'alice', iat: now(), exp: now() + 86_400 }))).toBeNull();
    expect(await tokens.verify(await sign({ sub: 'alice', iat: now() - 3600, exp: now() + 30 }))).toBeNull();
  });

  it('pins the algorithm', async () => {
    expect(
      await tokens.verify(await sign({ sub: 'alice', iat: now(), exp: now() + 30 }, 'HS512')),
    ).toBeNull();
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(
      JSON.stringify({ sub: 'alice', iat: now(), exp: now() + 30, iss: 'ai-relay', aud: 'ai-relay-ws' }),
    ).toString('base64url')}.`;
    expect(await tokens.verify(none)).toBeNull();
  });
});
