import { errors as joseErrors, jwtVerify } from 'jose';

/** Longest a host's identity JWT may live (`exp − iat`): it is made per page view, not kept. */
export const HOST_IDENTITY_MAX_LIFETIME_SECONDS = 600;
/** Clock difference tolerated between the host's backend and the gateway. */
export const HOST_IDENTITY_CLOCK_SKEW_SECONDS = 30;

/** What a host may name its visitors: the userid characters, short enough to prefix with the site. */
const SUB = /^[A-Za-z0-9_.@-]{1,96}$/;

/**
 * The `sub` of a host site's identity JWT (docs/identity.md), or null when it is not one: HS256 with
 * the site's secret only (no `none`, no other algorithm), `sub`, `iat` and `exp` required, lifetime
 * at most {@link HOST_IDENTITY_MAX_LIFETIME_SECONDS}, not expired beyond the bounded clock skew.
 */
export async function verifyHostIdentity(jwt: string, secret: Uint8Array): Promise<string | null> {
  try {
    const { payload } = await jwtVerify(jwt, secret, {
      algorithms: ['HS256'],
      requiredClaims: ['sub', 'iat', 'exp'],
      clockTolerance: HOST_IDENTITY_CLOCK_SKEW_SECONDS,
      maxTokenAge: HOST_IDENTITY_MAX_LIFETIME_SECONDS + HOST_IDENTITY_CLOCK_SKEW_SECONDS,
    });
    const { sub, iat, exp } = payload;
    if (typeof iat !== 'number' || typeof exp !== 'number') return null;
    if (exp - iat > HOST_IDENTITY_MAX_LIFETIME_SECONDS) return null;
    return typeof sub === 'string' && SUB.test(sub) ? sub : null;
  } catch (err) {
    if (err instanceof joseErrors.JOSEError) return null;
    throw err;
  }
}
