import { randomBytes } from 'node:crypto';
import { REDIS_KEYS, useridSchema, type KeyValueStore } from '@relay/common';
import type { Logger } from 'pino';
import { z } from 'zod';
import { isLoopback } from '../config.js';
import type { GatewayMetrics } from '../gateway-metrics.js';
import { DEV_SITE_ID, originAllowed, type Site, type Sites, type TokenMode } from '../sites/sites.js';
import type { TokenService } from '../token-service.js';
import type { CaptchaVerifier } from './captcha.js';
import { verifyHostIdentity } from './host-identity.js';

/** What `POST /token` carries, read from the request while it is valid. */
export interface TokenRequest {
  query: URLSearchParams;
  /** The `Origin` header, '' when absent. */
  origin: string;
  ip: string;
  /** The raw body, '' when none was sent. */
  body: string;
}

export interface TokenAnswer {
  status: 200 | 204 | 400 | 401 | 403 | 404 | 429 | 503;
  body: Record<string, unknown> | null;
  headers: Record<string, string>;
}

/** Longest body `POST /token` reads: a site id and one JWT or captcha answer. */
export const TOKEN_BODY_LIMIT_BYTES = 8192;

const bodySchema = z
  .strictObject({
    site: z.string().min(1).max(64),
    captcha: z.string().min(1).max(4096).optional(),
    renew: z.string().min(1).max(4096).optional(),
    identity: z.string().min(1).max(4096).optional(),
  })
  .refine((b) => !(b.renew && b.identity), { message: 'renew and identity exclude each other' });

export interface TokenIssuerDeps {
  sites: Sites;
  tokens: TokenService;
  store: KeyValueStore;
  captcha: CaptchaVerifier;
  metrics: GatewayMetrics;
  logger: Logger;
  /** How long after its expiry an anonymous token may still be renewed. */
  renewWindowSeconds: number;
}

export interface TokenIssuer {
  /** `POST /token`: the three modes of docs/identity.md. Never rejects. */
  issue(request: TokenRequest): Promise<TokenAnswer>;
  /** `OPTIONS /token` and the history API: the CORS preflight for an origin some site allows. */
  preflight(origin: string): TokenAnswer;
  /** CORS headers for an answer to `origin` on `site`: its own origin echoed, or none. */
  cors(site: Site | undefined, origin: string): Record<string, string>;
}

class Refusal {
  constructor(
    readonly status: TokenAnswer['status'],
    readonly error: string,
    readonly message: string,
    readonly extra: Record<string, unknown> = {},
  ) {}
}

/** 128 bits from the CSPRNG: an anonymous visitor's id can be neither guessed nor chosen. */
const anonymousId = (site: string) => `${site}:anon-${randomBytes(16).toString('base64url')}`;

/**
 * Token issuance (docs/identity.md): who a browser is comes from the server (anonymous), from the
 * host site's backend (signed), or, in dev mode only, from the request itself. Every answer is JSON
 * with a catalog-like `error` code; origins are checked per site, IPs rate-limited per site.
 */
export function createTokenIssuer(deps: TokenIssuerDeps): TokenIssuer {
  const { sites, tokens, store } = deps;
  const m = deps.metrics;

  function cors(site: Site | undefined, origin: string): Record<string, string> {
    if (!site || origin === '' || !originAllowed(site, origin)) return {};
    return { 'access-control-allow-origin': origin, vary: 'Origin' };
  }

  /**
   * A refusal is readable by the page that asked (its origin echoed, whatever it is): it holds no
   * token, and a widget on a page that is not allowed can then say so instead of retrying blind.
   */
  function refuse(r: Refusal, origin: string): TokenAnswer {
    m.tokensRefused.inc({ reason: r.error });
    const headers: Record<string, string> = origin
      ? { 'access-control-allow-origin': origin, vary: 'Origin' }
      : {};
    return { status: r.status, body: { error: r.error, message: r.message, ...r.extra }, headers };
  }

  async function rateLimit(site: Site, ip: string): Promise<void> {
    // A developer's own machine in dev mode: a local load test of many users from one address.
    if (sites.devTokens && isLoopback(ip)) return;
    const window = await store.incrementWindow(REDIS_KEYS.tokenRate(`${site.id}|${ip}`), 60_000);
    if (window.count > site.tokensPerMinutePerIp) {
      throw new Refusal(429, 'rate_limited', 'Too many tokens from this address', {
        retry_after_ms: window.resetMs,
      });
    }
  }

  async function sign(site: Site, userid: string, mode: TokenMode) {
    const { token, expiresIn } = await tokens.issue(userid, { site: site.id, mode });
    m.tokensIssued.inc({ mode });
    return { token, userid, expires_in: expiresIn, site: site.id, mode };
  }

  /** The original `POST /token?userid=…`, answered exactly as before. */
  async function dev(request: TokenRequest): Promise<TokenAnswer> {
    const site = sites.get(DEV_SITE_ID);
    if (!site) {
      throw new Refusal(404, 'dev_tokens_disabled', 'POST /token?userid= is off (DEV_TOKENS); use a site');
    }
    if (!originAllowed(site, request.origin))
      throw new Refusal(403, 'origin_not_allowed', 'Origin not allowed');
    const userid = useridSchema.safeParse(request.query.get('userid'));
    if (!userid.success) {
      throw new Refusal(400, 'invalid_userid', userid.error.issues[0]?.message ?? 'invalid userid');
    }
    await rateLimit(site, request.ip);
    const { token, expiresIn } = await tokens.issue(userid.data);
    m.tokensIssued.inc({ mode: 'dev' });
    const headers = cors(site, request.origin);
    return { status: 200, body: { token, userid: userid.data, expires_in: expiresIn }, headers };
  }

  async function forSite(request: TokenRequest, body: z.infer<typeof bodySchema>): Promise<TokenAnswer> {
    const site = sites.get(body.site);
    if (!site || site.id === DEV_SITE_ID) throw new Refusal(400, 'unknown_site', 'No such site');
    const headers = cors(site, request.origin);
    const answer = async (work: () => Promise<Record<string, unknown>>) => {
      try {
        return { status: 200 as const, body: await work(), headers };
      } catch (err) {
        if (err instanceof Refusal) return refuse(err, request.origin);
        throw err;
      }
    };
    if (!originAllowed(site, request.origin)) {
      return refuse(
        new Refusal(403, 'origin_not_allowed', 'Origin not allowed for this site'),
        request.origin,
      );
    }
    return answer(async () => {
      if (body.identity !== undefined) {
        if (!site.modes.has('signed') || !site.secret) {
          throw new Refusal(403, 'mode_not_allowed', 'This site does not take signed identities');
        }
        await rateLimit(site, request.ip);
        const sub = await verifyHostIdentity(body.identity, site.secret);
        if (sub === null)
          throw new Refusal(401, 'invalid_identity', 'The identity is not validly signed for this site');
        return sign(site, `${site.id}:${sub}`, 'signed');
      }
      if (!site.modes.has('anonymous')) {
        throw new Refusal(403, 'mode_not_allowed', 'This site does not take anonymous visitors');
      }
      await rateLimit(site, request.ip);
      if (body.renew !== undefined) {
        const previous = tokens.verifyForRenewal(body.renew, deps.renewWindowSeconds);
        if (!previous || previous.site !== site.id || previous.mode !== 'anonymous') {
          throw new Refusal(401, 'invalid_token', 'Not a renewable anonymous token of this site');
        }
        return sign(site, previous.userid, 'anonymous');
      }
      if (site.captcha) {
        if (body.captcha === undefined)
          throw new Refusal(403, 'captcha_failed', 'This site needs a captcha answer');
        const passed = await deps.captcha
          .verify(site.captcha, body.captcha, request.ip)
          .catch((err: unknown) => {
            deps.logger.warn({ err, site: site.id }, 'captcha verifier unreachable');
            throw new Refusal(503, 'upstream_unavailable', 'The captcha could not be checked; try again');
          });
        if (!passed) throw new Refusal(403, 'captcha_failed', 'The captcha was not passed');
      }
      return sign(site, anonymousId(site.id), 'anonymous');
    });
  }

  async function issue(request: TokenRequest): Promise<TokenAnswer> {
    try {
      // The original form: no body, the userid in the query.
      if (request.body.trim() === '' && request.query.has('userid')) {
        return await dev(request).catch((err: unknown) => {
          if (err instanceof Refusal) return refuse(err, request.origin);
          throw err;
        });
      }
      let data: unknown;
      try {
        data = JSON.parse(request.body);
      } catch {
        throw new Refusal(
          400,
          'invalid_request',
          'Body must be JSON: {"site", "identity"?, "renew"?, "captcha"?}',
        );
      }
      const body = bodySchema.safeParse(data);
      if (!body.success) {
        const issue = body.error.issues[0];
        const where = issue?.path.length ? `${issue.path.map((p) => String(p)).join('.')}: ` : '';
        throw new Refusal(
          400,
          'invalid_request',
          `${where}${issue?.message ?? 'invalid body'}`.slice(0, 200),
        );
      }
      return await forSite(request, body.data);
    } catch (err) {
      if (err instanceof Refusal) return refuse(err, request.origin);
      deps.logger.warn({ err }, 'token issuance failed');
      return refuse(
        new Refusal(503, 'upstream_unavailable', 'Tokens cannot be issued right now'),
        request.origin,
      );
    }
  }

  return {
    issue,
    cors,
    preflight(origin) {
      const allowed = sites.ids.some((id) => {
        const site = sites.get(id);
        return site !== undefined && origin !== '' && originAllowed(site, origin);
      });
      const headers: Record<string, string> = allowed
        ? {
            'access-control-allow-origin': origin,
            vary: 'Origin',
            'access-control-allow-methods': 'GET, POST, PUT, OPTIONS',
            'access-control-allow-headers': 'content-type, authorization',
            'access-control-max-age': '600',
          }
        : {};
      return { status: 204, body: null, headers };
    },
  };
}
