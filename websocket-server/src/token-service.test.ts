import { describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { createTokenService } from './token-service.js';

const secret = 'a'.repeat(32);

describe('token service', () => {
  it('issues a token bound to the user that verifies to that user', async () => {
    const tokens = createTokenService({ secret, ttlSeconds: 60 });
    const { token, expiresIn } = await tokens.issue('user123');
    expect(expiresIn).toBe(60);
    expect(await tokens.verify(token)).toBe('user123');
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

describe('token hygiene', () => {
  const key = new TextEncoder().encode(secret);
  const sign = (claims: Record<string, unknown>, alg = 'HS256') =>
    new SignJWT(claims)
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
    expect(await tokens.verify(await sign({ sub: 'alice', iat: now(), exp: now() + 30 }))).toBe('alice');
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
