import { readFileSync } from 'node:fs';
import { ConfigError } from '@relay/common';
import { z } from 'zod';
import { compileOrigin, type OriginPattern } from './origins.js';

/** Identity modes a site may accept (docs/identity.md); `dev` belongs to the dev pseudo-site only. */
export const SITE_MODES = ['signed', 'anonymous'] as const;
export type SiteMode = (typeof SITE_MODES)[number];
export type TokenMode = SiteMode | 'dev';

/** The id of the pseudo-site dev tokens belong to (`DEV_TOKENS=true`). A sites file cannot use it. */
export const DEV_SITE_ID = 'dev';
export const DEMO_SITE_ID = 'demo';

const siteIdSchema = z
  .string()
  .regex(/^[a-z0-9-]{1,32}$/, { message: 'must be 1-32 characters of [a-z0-9-]' })
  .refine((id) => id !== DEV_SITE_ID, { message: `"${DEV_SITE_ID}" is reserved for dev tokens` });

const limitsSchema = z.strictObject({
  tokens_per_minute_per_ip: z.number().int().min(1).max(1_000_000).optional(),
  daily_tokens_per_user: z.number().int().min(0).optional(),
  daily_tokens: z.number().int().min(0).optional(),
});

/**
 * Whose presence a session of the site may read (docs/presence.md); everyone reads their own, and
 * nobody reads another site's users. `site`: every user of the site; `signed`: only sessions of a
 * signed identity read others (anonymous visitors see only themselves); `self`: nobody reads others.
 */
export const PRESENCE_READ_POLICIES = ['site', 'signed', 'self'] as const;
export type PresenceReadPolicy = (typeof PRESENCE_READ_POLICIES)[number];

const presenceSchema = z.strictObject({
  read: z.enum(PRESENCE_READ_POLICIES).default('site'),
});

const siteSchema = z
  .strictObject({
    id: siteIdSchema,
    origins: z.array(z.string()).max(100),
    identity: z.array(z.enum(SITE_MODES)).min(1),
    secret: z.string().min(32, { message: 'must be at least 32 characters' }).optional(),
    allow_missing_origin: z.boolean().default(false),
    captcha: z.strictObject({ secret: z.string().min(1), verify_url: z.url().optional() }).optional(),
    limits: limitsSchema.default({}),
    presence: presenceSchema.default({ read: 'site' }),
  })
  .refine((s) => !s.identity.includes('signed') || s.secret !== undefined, {
    message: 'a site with signed identities needs a secret',
    path: ['secret'],
  });

export const sitesFileSchema = z.strictObject({ sites: z.array(siteSchema) });
export type SitesFile = z.input<typeof sitesFileSchema>;

/** Where a captcha answer is checked when a site does not say (Turnstile's siteverify). */
export const DEFAULT_CAPTCHA_VERIFY_URL = 'https://challenges.cloudflare.com/turnstile/v0/siteverify';

/** A site as the gateway uses it: patterns compiled, limits resolved against the defaults. */
export interface Site {
  id: string;
  modes: ReadonlySet<TokenMode>;
  /** Empty: any origin (only the dev site in dev mode, with `ALLOWED_ORIGINS` unset). */
  origins: readonly OriginPattern[];
  anyOrigin: boolean;
  allowMissingOrigin: boolean;
  /** Key of the host's identity JWTs (`signed`). */
  secret: Uint8Array | undefined;
  captcha: { secret: string; verifyUrl: string } | undefined;
  tokensPerMinutePerIp: number;
  /** Model tokens per user per UTC day; 0: none. */
  dailyTokensPerUser: number;
  /** Model tokens of the whole site per UTC day; 0: none. */
  dailyTokens: number;
  /** Whose presence the site's sessions may read. */
  presenceRead: PresenceReadPolicy;
}

export interface SiteDefaults {
  tokensPerMinutePerIp: number;
  dailyTokensPerUser: number;
  dailyTokensPerSite: number;
}

export interface SitesOptions extends SiteDefaults {
  /** `SITES_FILE`: path of a JSON sites file. */
  sitesFile?: string | undefined;
  /** `SITES`: the same JSON inline. */
  sitesJson?: string | undefined;
  /** `DEMO_SITE`: add the `demo` site (anonymous, localhost origins). */
  demoSite: boolean;
  /** `DEV_TOKENS`: add the dev pseudo-site (`POST /token?userid=`). */
  devTokens: boolean;
  /** `ALLOWED_ORIGINS`: the dev site's origins; empty allows any. */
  devOrigins: string[];
}

export interface Sites {
  get(id: string): Site | undefined;
  readonly ids: string[];
  readonly devTokens: boolean;
}

/** Whether a request's `Origin` header ('' when absent) may use `site`. */
export function originAllowed(site: Site, origin: string): boolean {
  if (origin === '') return site.allowMissingOrigin;
  if (site.anyOrigin) return true;
  return site.origins.some((p) => p.matches(origin));
}

function fail(message: string): never {
  throw new ConfigError('SITES', `config error: ${message}`);
}

function readSitesFile(options: SitesOptions): SitesFile {
  let text: string | undefined;
  let where = 'SITES';
  if (options.sitesFile) {
    where = `SITES_FILE ${options.sitesFile}`;
    try {
      text = readFileSync(options.sitesFile, 'utf8');
    } catch (err) {
      fail(`${where} cannot be read (${err instanceof Error ? err.message : 'unknown error'})`);
    }
  } else if (options.sitesJson) {
    text = options.sitesJson;
  }
  if (text === undefined) return { sites: [] };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    fail(`${where} is not valid JSON`);
  }
  const parsed = sitesFileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.map((p) => String(p)).join('.') ?? '';
    fail(`${where}: ${path ? `${path} ` : ''}${issue?.message ?? 'is invalid'}`);
  }
  return parsed.data;
}

/**
 * The demo site a newcomer embeds at once (docs/identity.md): anonymous visitors from localhost
 * pages, nothing else.
 */
export const DEMO_SITE: SitesFile['sites'][number] = {
  id: DEMO_SITE_ID,
  origins: ['http://localhost:*', 'http://127.0.0.1:*'],
  identity: ['anonymous'],
};

/**
 * Loads and validates the sites at start. Production mode (dev tokens off) needs every site to
 * name its origins: an empty list there would let any page on the web spend the site's model quota.
 */
export function loadSites(options: SitesOptions): Sites {
  const file = readSitesFile(options);
  const entries = [...file.sites];
  if (options.demoSite && !entries.some((s) => s.id === DEMO_SITE_ID)) entries.push(DEMO_SITE);
  const byId = new Map<string, Site>();
  for (const raw of entries) {
    const entry = siteSchema.parse(raw);
    if (byId.has(entry.id)) fail(`site ${entry.id} is defined twice`);
    if (entry.origins.length === 0 && !options.devTokens) {
      fail(`site ${entry.id} has no origins (required unless DEV_TOKENS=true)`);
    }
    let origins: OriginPattern[];
    try {
      origins = entry.origins.map(compileOrigin);
    } catch (err) {
      fail(`site ${entry.id}: ${err instanceof Error ? err.message : 'bad origin'}`);
    }
    byId.set(entry.id, {
      id: entry.id,
      modes: new Set(entry.identity),
      origins,
      anyOrigin: origins.length === 0,
      allowMissingOrigin: entry.allow_missing_origin,
      secret: entry.secret ? new TextEncoder().encode(entry.secret) : undefined,
      captcha: entry.captcha
        ? { secret: entry.captcha.secret, verifyUrl: entry.captcha.verify_url ?? DEFAULT_CAPTCHA_VERIFY_URL }
        : undefined,
      tokensPerMinutePerIp: entry.limits.tokens_per_minute_per_ip ?? options.tokensPerMinutePerIp,
      dailyTokensPerUser: entry.limits.daily_tokens_per_user ?? options.dailyTokensPerUser,
      dailyTokens: entry.limits.daily_tokens ?? options.dailyTokensPerSite,
      presenceRead: entry.presence.read,
    });
  }
  if (options.devTokens) {
    let origins: OriginPattern[];
    try {
      origins = options.devOrigins.map(compileOrigin);
    } catch (err) {
      throw new ConfigError('ALLOWED_ORIGINS', `config error: ALLOWED_ORIGINS: ${(err as Error).message}`);
    }
    byId.set(DEV_SITE_ID, {
      id: DEV_SITE_ID,
      modes: new Set(['dev']),
      origins,
      anyOrigin: origins.length === 0,
      // The original clients (curl, load tests, the original test UI) send no Origin.
      allowMissingOrigin: true,
      secret: undefined,
      captcha: undefined,
      tokensPerMinutePerIp: options.tokensPerMinutePerIp,
      dailyTokensPerUser: options.dailyTokensPerUser,
      dailyTokens: options.dailyTokensPerSite,
      presenceRead: 'site',
    });
  }
  return {
    get: (id) => byId.get(id),
    ids: [...byId.keys()],
    devTokens: options.devTokens,
  };
}
