import { describe, expect, it } from 'vitest';
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

    const expired = createTokenService({ secret, ttlSeconds: -1 as number });
    expect(await tokens.verify((await expired.issue('alice')).token)).toBeNull();
    expect(await tokens.verify('not.a.jwt')).toBeNull();
    expect(await tokens.verify('')).toBeNull();
  });
});
