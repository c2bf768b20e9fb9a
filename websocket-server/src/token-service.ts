import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';

const ISSUER = 'ai-relay';
const AUDIENCE = 'ai-relay-ws';

export interface TokenService {
  /** A signed token bound to `userid`, valid for the configured TTL. */
  issue(userid: string): Promise<{ token: string; expiresIn: number }>;
  /** The userid the token was issued to, or null when it is invalid, expired or forged. */
  verify(token: string): Promise<string | null>;
}

/** HS256 JWTs via jose: `sub` carries the userid; issuer and audience pin them to this system. */
export function createTokenService(options: { secret: string; ttlSeconds: number }): TokenService {
  const key = new TextEncoder().encode(options.secret);
  return {
    async issue(userid) {
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userid)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(`${options.ttlSeconds}s`)
        .sign(key);
      return { token, expiresIn: options.ttlSeconds };
    },
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, key, {
          issuer: ISSUER,
          audience: AUDIENCE,
          algorithms: ['HS256'],
        });
        return typeof payload.sub === 'string' ? payload.sub : null;
      } catch (err) {
        if (err instanceof joseErrors.JOSEError) return null;
        throw err;
      }
    },
  };
}
