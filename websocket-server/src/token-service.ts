import { useridSchema } from '@relay/common';
import { SignJWT, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { DEV_SITE_ID, type TokenMode } from './sites/sites.js';

const ISSUER = 'ai-relay';
const AUDIENCE = 'ai-relay-ws';

/**
 * Seconds of clock difference between the gateway that issued a token and the one that checks it.
 * Bounded: `exp` and `iat` mean what they say within this.
 */
export const CLOCK_TOLERANCE_SECONDS = 5;

/** Who a session token was issued to: the user, the site it works on, how the user was identified. */
export interface SessionIdentity {
  userid: string;
  site: string;
  mode: TokenMode;
}

const MODES: ReadonlySet<string> = new Set<TokenMode>(['signed', 'anonymous', 'dev']);
const isTokenMode = (mode: unknown): mode is TokenMode => typeof mode === 'string' && MODES.has(mode);

export interface TokenService {
  /**
   * A signed token bound to `userid` on `site`, valid for the configured TTL. @default site `dev`,
   * mode `dev` (what `POST /token?userid=` gives, and what load tests sign with the stack's secret)
   */
  issue(
    userid: string,
    on?: { site: string; mode: TokenMode },
  ): Promise<{ token: string; expiresIn: number }>;
  /**
   * Who the token was issued to, or null when it is invalid, expired, forged, lacks `sub`, `site`,
   * `iat` or `exp`, names a userid the contract does not allow, or lives longer than the TTL.
   */
  verify(token: string): Promise<SessionIdentity | null>;
  /**
   * For an anonymous renewal: the identity of a token this gateway signed that may have expired up
   * to `graceSeconds` ago (every other check as in `verify`), or null.
   */
  verifyForRenewal(token: string, graceSeconds: number): Promise<SessionIdentity | null>;
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
  function identityOf(payload: JWTPayload): SessionIdentity | null {
    const { sub, iat, exp, site, mode } = payload;
    if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > maxLifetime) return null;
    if (typeof site !== 'string' || !isTokenMode(mode)) return null;
    const userid = useridSchema.safeParse(sub);
    return userid.success ? { userid: userid.data, site, mode } : null;
  }

  async function check(token: string, options: { maxTokenAge: number; clockTolerance: number }) {
    try {
      const { payload } = await jwtVerify(token, key, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['HS256'],
        requiredClaims: ['sub', 'iat', 'exp'],
        ...options,
      });
      return identityOf(payload);
    } catch (err) {
      if (err instanceof joseErrors.JOSEError) return null;
      throw err;
    }
  }

  return {
    async issue(userid, on = { site: DEV_SITE_ID, mode: 'dev' }) {
      const token = await new SignJWT({ site: on.site, mode: on.mode })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(userid)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(`${options.ttlSeconds}s`)
        .sign(key);
      return { token, expiresIn: options.ttlSeconds };
    },
    verify: (token) => check(token, { maxTokenAge: maxLifetime, clockTolerance: CLOCK_TOLERANCE_SECONDS }),
    verifyForRenewal: (token, graceSeconds) =>
      check(token, {
        maxTokenAge: maxLifetime + graceSeconds,
        clockTolerance: CLOCK_TOLERANCE_SECONDS + graceSeconds,
      }),
  };
}
