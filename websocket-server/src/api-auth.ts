import { originAllowed, type Sites } from './sites/sites.js';
import type { SessionIdentity, TokenService } from './token-service.js';

/** What an authenticated JSON API request carries, read from uWS' `req` before any await. */
export interface ApiRequest {
  /** `Authorization` header ('' when absent). */
  authorization: string;
  query: URLSearchParams;
  /** `Origin` ('' when absent: not a cross-origin browser request, the token alone decides). */
  origin: string;
}

/** A refusal of the API's authentication: the answer to send. */
export interface ApiRefusal {
  status: 401 | 403;
  body: { error: string; message: string };
  site?: string;
}

/**
 * The session token's identity (`Authorization: Bearer` or `?token=`), on a site this gateway has,
 * from an `Origin` that site allows (or none). The history and presence APIs share it.
 */
export function authenticateApi(
  tokens: TokenService,
  sites: Sites,
  request: ApiRequest,
): SessionIdentity | ApiRefusal {
  const bearer = /^Bearer\s+(\S+)$/i.exec(request.authorization)?.[1];
  const token = bearer ?? request.query.get('token') ?? '';
  const identity = token ? tokens.verify(token) : null;
  const site = identity ? sites.get(identity.site) : undefined;
  if (!identity || !site)
    return { status: 401, body: { error: 'invalid_token', message: 'Invalid or expired token' } };
  // A GET without Origin is no cross-origin browser request: the token alone is the credential.
  if (request.origin !== '' && !originAllowed(site, request.origin)) {
    return {
      status: 403,
      body: { error: 'origin_not_allowed', message: 'Origin not allowed' },
      site: site.id,
    };
  }
  return identity;
}
