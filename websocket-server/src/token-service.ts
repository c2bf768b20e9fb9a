import { useridSchema } from '@relay/common';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';

const ISSUER = 'ai-relay';
const AUDIENCE = 'ai-relay-ws';

/**
 * Seconds of clock difference between the gateway that issued a token and the one that checks it.
 * Bounded: `exp` and `iat` mean what they say within this.
 */
export const CLOCK_TOLERANCE_SECONDS = 5;

export interface TokenService {
  /** A signed token bound to `userid`, valid for the configured TTL. */
  issue(userid: string): Promise<{ token: string; expiresIn: number }>;
  /**
   * The userid the token was issued to, or null when it is invalid, expired, forged, lacks `sub`,
   * `iat` or `exp`, names a userid the contract does not allow, or lives longer than the TTL.
   */
  verify(token: string): Promise<string | null>;
}

/**
 * HS256 JWTs via jose: `sub` carries the userid; issuer and audience pin them to this system; the
 * algorithm is pinned (no `none`, no key confusion); `iat`, `exp` and `sub` are required, and a
 * token whose lifetime (`exp - iat`) or age exceeds the TTL is refused even when its signature is
 * good, so a leaked secret cannot mint tokens that outlive a rotation by years.
 */
export function createTokenService(options: { secret: string; ttlSeconds: number }): TokenService {
  const key = new TextEncoder().encode(options.secret);
  const maxLifetime = options.ttlSeconds + CLOCK_TOLERANCE_SECONDS;
  return {
    async issue(userid) {
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
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
          requiredClaims: ['sub', 'iat', 'exp'],
          maxTokenAge: maxLifetime,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
        });
        const { sub, iat, exp } = payload;
        if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > maxLifetime) return null;
        const userid = useridSchema.safeParse(sub);
        return userid.success ? userid.data : null;
      } catch (err) {
        if (err instanceof joseErrors.JOSEError) return null;
        throw err;
      }
    },
  };
}
