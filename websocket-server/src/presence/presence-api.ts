import { presenceUpdateSchema, useridSchema, type PresenceBatch, type PresenceRecord } from '@relay/common';
import { z } from 'zod';
import { authenticateApi, type ApiRequest } from '../api-auth.js';
import type { Site, Sites } from '../sites/sites.js';
import type { SessionIdentity, TokenService } from '../token-service.js';
import type { PresenceSettings } from './options.js';
import type { Presence } from './presence-service.js';

export interface PresenceAnswer {
  status: 200 | 400 | 401 | 403 | 404 | 413 | 429 | 503;
  body: Record<string, unknown>;
  /** The site whose CORS applies (the token's), when known. */
  site?: string;
}

export interface PresenceApi {
  /** `GET /api/v2/presence/{user_id}`. */
  get(request: ApiRequest, userId: string): Promise<PresenceAnswer>;
  /** `GET /api/v2/presence?users=a,b`. */
  list(request: ApiRequest): Promise<PresenceAnswer>;
  /** `POST /api/v2/presence/batch` with `{"users":[…]}`; `body` null: over the size limit. */
  batch(request: ApiRequest, body: string | null): Promise<PresenceAnswer>;
  /** `PUT /api/v2/presence/{user_id}` with `{"status","message"?}`, the token's own user only. */
  put(request: ApiRequest, userId: string, body: string | null): Promise<PresenceAnswer>;
  /** Largest body `batch` and `put` read, in bytes. */
  readonly bodyLimit: number;
}

const refuse = (
  status: PresenceAnswer['status'],
  error: string,
  message: string,
  site?: string,
): PresenceAnswer => ({
  status,
  body: { error, message },
  ...(site !== undefined ? { site } : {}),
});

/** JSON text → value, undefined when it is not JSON (never throws). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The presence API (docs/presence.md). Reads are answered for the reader's own site only: the site
 * is part of the key read, so another site's user is exactly as absent as one who never connected
 * (404 / `not_found`) and the answer says nothing about them. Whether a reader may read others at
 * all is the site's `presence.read` setting, decided from the reader alone (403 `forbidden`), so
 * that answer says nothing about the target either.
 */
export function createPresenceApi(deps: {
  presence: Presence;
  tokens: TokenService;
  sites: Sites;
  settings: PresenceSettings;
}): PresenceApi {
  const { presence, tokens, sites, settings } = deps;
  const updateSchema = presenceUpdateSchema(settings.maxMessageLength);
  const batchSchema = z.strictObject({ users: z.array(z.string()).min(1).max(settings.maxBatch) });
  // Every user id at its longest, quoted and separated, and some room.
  const bodyLimit = Math.max(2048, settings.maxBatch * 140 + 1024, settings.maxMessageLength * 6 + 256);

  type Reader = { who: SessionIdentity; site: Site };
  function reader(request: ApiRequest): Reader | PresenceAnswer {
    const who = authenticateApi(tokens, sites, request);
    if (!('userid' in who)) return who;
    const site = sites.get(who.site);
    if (!site) return refuse(401, 'invalid_token', 'Invalid or expired token');
    return { who, site };
  }

  function mayReadOthers({ who, site }: Reader): boolean {
    switch (site.presenceRead) {
      case 'site':
        return true;
      case 'signed':
        return who.mode === 'signed';
      case 'self':
        return false;
    }
  }

  /** Validated, deduplicated user ids, or the refusal. */
  function targets(r: Reader, ids: readonly string[]): string[] | PresenceAnswer {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return refuse(400, 'invalid_request', 'Name at least one user', r.site.id);
    if (unique.length > settings.maxBatch) {
      return refuse(400, 'invalid_request', `At most ${settings.maxBatch} users per request`, r.site.id);
    }
    if (!unique.every((id) => useridSchema.safeParse(id).success)) {
      return refuse(400, 'invalid_request', 'A user id is not valid', r.site.id);
    }
    if (!mayReadOthers(r) && unique.some((id) => id !== r.who.userid)) {
      return refuse(403, 'forbidden', "This site's sessions may read only their own presence", r.site.id);
    }
    return unique;
  }

  async function readMany(r: Reader, ids: readonly string[]): Promise<PresenceAnswer> {
    const users = targets(r, ids);
    if (!Array.isArray(users)) return users;
    let rows: Array<PresenceRecord | null>;
    try {
      rows = await presence.read(r.site.id, users);
    } catch {
      return refuse(503, 'upstream_unavailable', 'Presence is unavailable, try again', r.site.id);
    }
    const body: PresenceBatch = {
      presence: rows.filter((row): row is PresenceRecord => row !== null),
      not_found: users.filter((_, i) => rows[i] === null),
    };
    return { status: 200, body, site: r.site.id };
  }

  return {
    bodyLimit,
    async get(request, userId) {
      const r = reader(request);
      if (!('who' in r)) return r;
      const answer = await readMany(r, [userId]);
      if (answer.status !== 200) return answer;
      const [record] = (answer.body as PresenceBatch).presence;
      return record
        ? { status: 200, body: record, site: r.site.id }
        : refuse(404, 'not_found', 'No presence for this user', r.site.id);
    },
    async list(request) {
      const r = reader(request);
      if (!('who' in r)) return r;
      const raw = request.query.get('users') ?? '';
      // Bounded before it is split: a query string of a million commas is refused, not walked.
      if (raw.length > settings.maxBatch * 130) {
        return refuse(400, 'invalid_request', `At most ${settings.maxBatch} users per request`, r.site.id);
      }
      return readMany(
        r,
        raw
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      );
    },
    async batch(request, body) {
      const r = reader(request);
      if (!('who' in r)) return r;
      if (body === null) return refuse(413, 'invalid_request', 'Body too large', r.site.id);
      const parsed = batchSchema.safeParse(parseJson(body));
      if (!parsed.success) {
        return refuse(
          400,
          'invalid_request',
          `Body must be {"users":[…]} with 1 to ${settings.maxBatch} user ids`,
          r.site.id,
        );
      }
      return readMany(r, parsed.data.users);
    },
    async put(request, userId, body) {
      const r = reader(request);
      if (!('who' in r)) return r;
      // Anyone's own presence only: what the path names is checked against the token, nothing else.
      if (userId !== r.who.userid) {
        return refuse(403, 'forbidden', 'A session may set only its own presence', r.site.id);
      }
      if (body === null) return refuse(413, 'invalid_request', 'Body too large', r.site.id);
      const parsed = updateSchema.safeParse(parseJson(body));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue?.path.length ? `${issue.path.map((p) => String(p)).join('.')}: ` : '';
        return refuse(
          400,
          'invalid_request',
          `${where}${issue?.message ?? 'invalid body'}`.slice(0, 200),
          r.site.id,
        );
      }
      try {
        const result = await presence.set(r.site.id, r.who.userid, parsed.data);
        if (!result.ok) {
          return {
            status: 429,
            body: {
              error: 'rate_limited',
              message: 'Too many presence updates',
              retry_after_ms: result.retryAfterMs,
            },
            site: r.site.id,
          };
        }
        return { status: 200, body: result.record, site: r.site.id };
      } catch {
        return refuse(503, 'upstream_unavailable', 'Presence is unavailable, try again', r.site.id);
      }
    },
  };
}
