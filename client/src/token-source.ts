import { tokenResponseSchema, type IdentityMode, type TokenResponse } from '@relay/common/contract';
import { RelayHttpError, requestJson, type FetchLike } from './http.js';
import type { StoredValues } from './storage.js';

/** A session token and what it is for. */
export interface Session {
  token: string;
  userid: string;
  mode: IdentityMode;
  site: string | undefined;
  /** Epoch ms. */
  expiresAt: number;
}

/**
 * Who the visitor is (docs/identity.md):
 * - `anonymous`: the server picks the userid; the token is kept in storage and renewed, so the
 *   visitor stays the same across reloads and days.
 * - `signed`: the host site's backend signs the visitor's identity (a short-lived JWT); `identity`
 *   is that JWT, or a function asked for a fresh one whenever a token is needed.
 * - `dev`: the original `POST /token?userid=` (only where a developer turned it on).
 * - `issued`: no `/token` at all; `issue` hands over session tokens minted by a holder of the
 *   gateways' signing secret (a load generator driving thousands of users from one address, which
 *   `/token`'s per-IP limit would refuse; a backend acting for its users). Asked like `/token`
 *   would be: for the first token, before expiry, and after the gateway refused one.
 */
export type Identity =
  | { mode: 'anonymous'; site: string; captcha?: () => Promise<string> }
  | { mode: 'signed'; site: string; identity: string | (() => Promise<string>) }
  | { mode: 'dev'; userid: string }
  | { mode: 'issued'; issue: () => Promise<TokenResponse> };

export interface TokenSourceOptions {
  /** The relay's base URL: `<url>/token`. */
  url: string;
  identity: Identity;
  fetch: FetchLike;
  /** Where an anonymous visitor's token is kept. */
  stored: StoredValues;
  /** Renew this long before expiry. @default 60000 (a tenth of the lifetime for short tokens) */
  renewBeforeMs?: number;
  /** @default Date.now */
  now?: () => number;
}

export interface TokenSource {
  /** A token valid for a while yet: the one held, or a new one. Concurrent calls share one request. */
  get(options?: { refresh?: boolean }): Promise<Session>;
  /** The token held now, if any (may be near expiry). */
  readonly current: Session | undefined;
  /** Epoch ms at which {@link get} will fetch a new token (the caller may renew early then). */
  renewAt(): number | undefined;
  /** Forgets the token, the kept one too: the next anonymous token is a new visitor. */
  forget(): void;
}

const STORED_KEY = 'session';

function isSession(value: unknown): value is Session {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.token === 'string' &&
    typeof v.userid === 'string' &&
    typeof v.expiresAt === 'number' &&
    (v.site === undefined || typeof v.site === 'string')
  );
}

/** Gets, keeps and renews session tokens for one identity. */
export function createTokenSource(options: TokenSourceOptions): TokenSource {
  const { identity, stored } = options;
  const now = options.now ?? Date.now;
  const base = options.url.replace(/\/+$/, '');
  let current: Session | undefined;
  let inFlight: Promise<Session> | undefined;

  if (identity.mode === 'anonymous') {
    const kept = stored.get(STORED_KEY);
    if (isSession(kept) && kept.site === identity.site) current = { ...kept, mode: 'anonymous' };
  }

  function margin(session: Session, issuedAt: number): number {
    const lifetime = session.expiresAt - issuedAt;
    return Math.min(options.renewBeforeMs ?? 60_000, Math.max(0, lifetime / 10));
  }
  const margins = new WeakMap<Session, number>();

  function fresh(session: Session | undefined): session is Session {
    if (!session) return false;
    return now() < session.expiresAt - (margins.get(session) ?? options.renewBeforeMs ?? 60_000);
  }

  /** A `/token` answer (or what `issue` gave) as a session, checked like any answer from outside. */
  function sessionOf(answer: unknown, issuedAt: number): Session {
    const parsed = tokenResponseSchema.safeParse(answer);
    if (!parsed.success)
      throw new RelayHttpError(502, 'invalid_response', 'The relay sent a token answer it should not have');
    const session: Session = {
      token: parsed.data.token,
      userid: parsed.data.userid,
      // An issued token's mode is whatever its issuer signed; without a word, it was signed for the user.
      mode: parsed.data.mode ?? (identity.mode === 'issued' ? 'signed' : identity.mode),
      site: parsed.data.site ?? ('site' in identity ? identity.site : undefined),
      expiresAt: issuedAt + parsed.data.expires_in * 1000,
    };
    margins.set(session, margin(session, issuedAt));
    return session;
  }

  async function exchange(body: Record<string, unknown> | undefined, query = ''): Promise<Session> {
    const issuedAt = now();
    const { body: answer } = await requestJson(options.fetch, `${base}/token${query}`, {
      method: 'POST',
      ...(body !== undefined ? { body } : {}),
    });
    return sessionOf(answer, issuedAt);
  }

  async function anonymous(site: string, captcha: (() => Promise<string>) | undefined): Promise<Session> {
    const kept = current;
    if (kept) {
      try {
        return await exchange({ site, renew: kept.token });
      } catch (err) {
        // Too old, or from another deployment (a new secret): only then start over as a new visitor.
        // Anything else (rate limit, network) is retried later with the same token.
        if (!(err instanceof RelayHttpError && err.code === 'invalid_token')) throw err;
      }
    }
    return exchange({ site, ...(captcha ? { captcha: await captcha() } : {}) });
  }

  async function obtain(): Promise<Session> {
    switch (identity.mode) {
      case 'anonymous': {
        const session = await anonymous(identity.site, identity.captcha);
        stored.set(STORED_KEY, session);
        return session;
      }
      case 'signed': {
        const jwt = typeof identity.identity === 'string' ? identity.identity : await identity.identity();
        return exchange({ site: identity.site, identity: jwt });
      }
      case 'dev':
        return exchange(undefined, `?userid=${encodeURIComponent(identity.userid)}`);
      case 'issued': {
        const issuedAt = now();
        return sessionOf(await identity.issue(), issuedAt);
      }
    }
  }

  return {
    get({ refresh = false } = {}) {
      if (!refresh && fresh(current)) return Promise.resolve(current);
      inFlight ??= obtain()
        .then((session) => {
          current = session;
          return session;
        })
        .finally(() => {
          inFlight = undefined;
        });
      return inFlight;
    },
    get current() {
      return current;
    },
    renewAt() {
      if (!current) return undefined;
      return current.expiresAt - (margins.get(current) ?? options.renewBeforeMs ?? 60_000);
    },
    forget() {
      current = undefined;
      stored.remove(STORED_KEY);
    },
  };
}
