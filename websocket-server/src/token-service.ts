import { createHmac, timingSafeEqual } from 'node:crypto';
import { useridSchema } from '@relay/common';
import { SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
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
   * Synchronous: the gateway admits an upgrade inside uWS' upgrade handler (gateway.ts `upgrade`).
   */
  verify(token: string): SessionIdentity | null;
  /**
   * For an anonymous renewal: the identity of a token this gateway signed that may have expired up
   * to `graceSeconds` ago (every other check as in `verify`), or null.
   */
  verifyForRenewal(token: string, graceSeconds: number): SessionIdentity | null;
}

/** Exactly what `issue` signs: HS256, and nothing that would ask for extra processing (`crit`, `b64`). */
const headerSchema = z.strictObject({ alg: z.literal('HS256'), typ: z.literal('JWT').optional() });

/** Verified tokens remembered (~0.5 KB each): more than the sockets and readers one gateway serves at once. */
const VERIFIED_TOKENS_CACHED = 10_000;

const claimsSchema = z.looseObject({
  sub: useridSchema,
  site: z.string().min(1),
  mode: z.enum(['signed', 'anonymous', 'dev']),
  iss: z.literal(ISSUER),
  aud: z.literal(AUDIENCE),
  iat: z.number(),
  exp: z.number(),
  nbf: z.number().optional(),
});
type Claims = z.infer<typeof claimsSchema>;

function decodePart<T>(part: string, schema: z.ZodType<T>): T | null {
  try {
    const parsed = schema.safeParse(JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    // Not base64url JSON: a forged or truncated token, refused like any other invalid one.
    return null;
  }
}

/**
 * HS256 JWTs: `sub` carries the userid; issuer and audience pin them to this system. Issued with
 * jose; verified with node:crypto, synchronously, because jose verifies only through WebCrypto
 * (asynchronous) and an upgrade admitted later, from a promise, hit a uWS bug (gateway.ts). Only
 * the header `issue` writes is accepted (no `none`, no key confusion); `iat`, `exp`, `sub`, `site`
 * and `mode` are required; a token whose lifetime (`exp - iat`) or age exceeds the TTL is refused
 * even when its signature is good, so a leaked secret cannot mint tokens that outlive a rotation.
 */
export function createTokenService(options: {
  secret: string;
  ttlSeconds: number;
  /** @default Date.now */
  now?: () => number;
}): TokenService {
  const key = new TextEncoder().encode(options.secret);
  const now = options.now ?? Date.now;
  const maxLifetime = options.ttlSeconds + CLOCK_TOLERANCE_SECONDS;

  // Verified tokens by their text: a client presents the same token on every API call (presence
  // reads come by the thousand a second) and the HMAC and claim decoding were a fifth of a cached
  // read's CPU. Only tokens that passed the signature and static checks get in, so forged ones
  // cannot fill it; the clock checks run on every use, hit or not.
  const verified = new LRUCache<string, Claims>({ max: VERIFIED_TOKENS_CACHED });

  function claimsOf(token: string): Claims | null {
    const known = verified.get(token);
    if (known) return known;
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    const [header = '', payload = '', signature = ''] = parts;
    const expected = createHmac('sha256', key).update(`${header}.${payload}`).digest();
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    if (!decodePart(header, headerSchema)) return null;
    const claims = decodePart(payload, claimsSchema);
    if (!claims || claims.exp - claims.iat > maxLifetime) return null;
    verified.set(token, claims);
    return claims;
  }

  function check(token: string, graceSeconds: number): SessionIdentity | null {
    const claims = claimsOf(token);
    if (!claims) return null;
    const t = now() / 1000;
    const tolerance = CLOCK_TOLERANCE_SECONDS + graceSeconds;
    if (claims.exp + tolerance <= t) return null;
    if (claims.nbf !== undefined && claims.nbf > t + CLOCK_TOLERANCE_SECONDS) return null;
    if (claims.iat > t + CLOCK_TOLERANCE_SECONDS || t - claims.iat > maxLifetime + graceSeconds) return null;
    return { userid: claims.sub, site: claims.site, mode: claims.mode };
  }

  return {
    async issue(userid, on = { site: DEV_SITE_ID, mode: 'dev' }) {
      const token = await new SignJWT({ site: on.site, mode: on.mode })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(userid)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(Math.floor(now() / 1000))
        .setExpirationTime(Math.floor(now() / 1000) + options.ttlSeconds)
        .sign(key);
      return { token, expiresIn: options.ttlSeconds };
    },
    verify: (token) => check(token, 0),
    verifyForRenewal: (token, graceSeconds) => check(token, graceSeconds),
  };
}
