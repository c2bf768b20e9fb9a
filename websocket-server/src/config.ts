import {
  ConfigError,
  bool,
  deliveryFragment,
  fragment,
  httpFragment,
  int,
  kafkaFragment,
  list,
  loadConfig,
  logFragment,
  redisFragment,
  tracingFragment,
} from '@relay/common';
import type { Logger } from 'pino';
import { z } from 'zod';
import { presenceFragment } from './presence/options.js';
import { loadSites, type Sites } from './sites/sites.js';

export const SERVICE = 'websocket-server';

/** Client-facing limits and auth. The signing secret has no default (the embedded app makes one per run). */
export const gatewayFragment = fragment(
  {
    /** HS256 signing secret for tokens; at least 32 characters. Required. */
    JWT_SECRET: z.string().min(32, { message: 'must be at least 32 characters' }),
    /** @default 3600 */
    TOKEN_TTL_SECONDS: int(10, 30 * 86_400).default(3600),
    /** Tokens one client IP may get per minute. @default 30 */
    TOKEN_RATE_LIMIT_PER_MINUTE: int(1, 100_000).default(30),
    /** Longest message `content`, in characters. @default 4000 */
    MAX_CONTENT_LENGTH: int(1, 1_000_000).default(4000),
    /** Largest WebSocket frame; larger ones close the socket with 1009. @default 16384 */
    MAX_PAYLOAD_BYTES: int(256, 16 * 1024 * 1024).default(16_384),
    /** Messages one user may send per window. @default 20 */
    RATE_LIMIT_MESSAGES: int(1, 1_000_000).default(20),
    /** @default 10000 */
    RATE_LIMIT_WINDOW_MS: int(100, 3_600_000).default(10_000),
    /**
     * Client frames of any type (valid or not, hello and cancel included) one socket may send per
     * RATE_LIMIT_WINDOW_MS; past it frames are answered `rate_limited`, past twice it the socket is
     * closed with 1008 `rate_limited`. @default twice RATE_LIMIT_MESSAGES, at least 100
     */
    RATE_LIMIT_FRAMES: int(1, 10_000_000).optional(),
    /**
     * Messages one socket may have waiting for intake (rate-limit check and Kafka ack); one more is
     * answered `queue_full` without being queued. @default 32
     */
    MAX_QUEUED_FRAMES: int(1, 100_000).default(32),
    /** Open sockets per user on one gateway. @default 10 */
    MAX_CONNECTIONS_PER_USER: int(1, 10_000).default(10),
    /** Open sockets per client IP on one gateway (upgrade refused with 429 beyond). @default 256 */
    MAX_CONNECTIONS_PER_IP: int(1, 10_000_000).default(256),
    /** Open sockets on one gateway (upgrade refused with 503 `server_full` beyond). @default 50000 */
    MAX_CONNECTIONS: int(1, 10_000_000).default(50_000),
    /** Origins of the dev pseudo-site (dev tokens), comma list of patterns; empty allows any. */
    ALLOWED_ORIGINS: list().default([]),
    /**
     * `POST /token?userid=` for anyone, any userid (the original system's form, docs/identity.md):
     * for a developer's machine only. @default false
     */
    DEV_TOKENS: bool().default(false),
    /** Dev tokens on a non-loopback HOST: refused at start unless this is true too. @default false */
    DEV_TOKENS_ALLOW_PUBLIC: bool().default(false),
    /** Add the `demo` site (anonymous visitors from localhost pages). @default false */
    DEMO_SITE: bool().default(false),
    /** Path of the sites file (JSON, docs/identity.md). */
    SITES_FILE: z.string().min(1).optional(),
    /** The sites file's JSON inline (when SITES_FILE is unset). */
    SITES: z.string().min(1).optional(),
    /** How long after its expiry an anonymous visitor's token may still be renewed. @default 2592000 (30 days) */
    ANON_RENEW_WINDOW_SECONDS: int(0, 365 * 86_400).default(30 * 86_400),
    /** Model tokens one user may use per UTC day (a site's limits may say otherwise); 0: none. @default 100000 */
    DAILY_TOKEN_BUDGET_PER_USER: int(0, 2_000_000_000).default(100_000),
    /** Model tokens one site may use per UTC day (a site's limits may say otherwise); 0: none. @default 0 */
    DAILY_TOKEN_BUDGET_PER_SITE: int(0, 2_000_000_000).default(0),
    /**
     * permessage-deflate on the sockets, for clients that offer it (browsers do): `off`, `shared`
     * (one compressor for all sockets, no memory per socket, each frame on its own) or `dedicated`
     * (a compressor per socket, uWS' 4 KB window setting, that remembers the last frames so repeated
     * keys shrink; it holds ~75 KB per socket measured).
     * Costs CPU per frame; figures in BENCHMARKS.md "Compression". @default off
     */
    WS_COMPRESSION: z.enum(['off', 'shared', 'dedicated']).default('off'),
    /** Seconds without traffic before a socket is closed; pings go out before that. Keep below nginx's proxy_read_timeout. @default 60 */
    IDLE_TIMEOUT_SECONDS: int(8, 960).default(60),
    /** Take the client IP from X-Real-IP / X-Forwarded-For (only behind a trusted proxy). @default false */
    TRUST_PROXY: bool().default(false),
    /** Directory of the chat page served at `/` (optional; nginx serves it in the stack). */
    STATIC_DIR: z.string().optional(),
    // Read only to tell users which model answers (SPEC §5: the UI says when it is the mock);
    // the key itself is never kept by the gateway.
    OPENAI_API_KEY: z.string().optional(),
    /** @default gpt-4o-mini */
    OPENAI_MODEL: z.string().default('gpt-4o-mini'),
    /**
     * Bytes a socket may have waiting in its send buffer before deltas for it are held back and
     * coalesced (one frame per request when it drains). @default 262144 (256 KiB)
     */
    SLOW_CLIENT_SOFT_BYTES: int(1024, 1024 * 1024 * 1024).default(256 * 1024),
    /**
     * Bytes waiting for one socket (send buffer + held deltas) past which it is closed with 1008
     * `slow_consumer`; the client resumes from its last_event_id. @default 4194304 (4 MiB)
     */
    SLOW_CLIENT_HARD_BYTES: int(4096, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
    /**
     * On shutdown, how long messages already being published may take to get their Kafka ack
     * before every socket is closed with 1001 anyway. Keep below SHUTDOWN_TIMEOUT_MS. @default 5000
     */
    DRAIN_TIMEOUT_MS: int(0, 300_000).default(5000),
    /**
     * Lifetime of the "being published" accept marker of a client `id`: if this gateway dies between
     * the marker and the Kafka ack, a resend of the id is taken again after this long. Keep above the
     * Kafka publish timeout. @default 30000
     */
    ACCEPT_PENDING_TTL_MS: int(1000, 3_600_000).default(30_000),
  },
  (e) => {
    if (e.SLOW_CLIENT_HARD_BYTES <= e.SLOW_CLIENT_SOFT_BYTES) {
      throw new ConfigError(
        'SLOW_CLIENT_HARD_BYTES',
        `config error: SLOW_CLIENT_HARD_BYTES must be greater than SLOW_CLIENT_SOFT_BYTES (got ${e.SLOW_CLIENT_HARD_BYTES} <= ${e.SLOW_CLIENT_SOFT_BYTES})`,
      );
    }
    return {
      jwtSecret: e.JWT_SECRET,
      tokenTtlSeconds: e.TOKEN_TTL_SECONDS,
      tokenRateLimitPerMinute: e.TOKEN_RATE_LIMIT_PER_MINUTE,
      maxContentLength: e.MAX_CONTENT_LENGTH,
      maxPayloadBytes: e.MAX_PAYLOAD_BYTES,
      rateLimitMessages: e.RATE_LIMIT_MESSAGES,
      rateLimitWindowMs: e.RATE_LIMIT_WINDOW_MS,
      rateLimitFrames: e.RATE_LIMIT_FRAMES ?? Math.max(100, 2 * e.RATE_LIMIT_MESSAGES),
      maxQueuedFrames: e.MAX_QUEUED_FRAMES,
      maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
      maxConnectionsPerIp: e.MAX_CONNECTIONS_PER_IP,
      maxConnections: e.MAX_CONNECTIONS,
      allowedOrigins: e.ALLOWED_ORIGINS,
      devTokens: e.DEV_TOKENS,
      devTokensAllowPublic: e.DEV_TOKENS_ALLOW_PUBLIC,
      demoSite: e.DEMO_SITE,
      sitesFile: e.SITES_FILE,
      sitesJson: e.SITES,
      anonRenewWindowSeconds: e.ANON_RENEW_WINDOW_SECONDS,
      dailyTokenBudgetPerUser: e.DAILY_TOKEN_BUDGET_PER_USER,
      dailyTokenBudgetPerSite: e.DAILY_TOKEN_BUDGET_PER_SITE,
      idleTimeoutSeconds: e.IDLE_TIMEOUT_SECONDS,
      compression: e.WS_COMPRESSION,
      trustProxy: e.TRUST_PROXY,
      staticDir: e.STATIC_DIR,
      modelLabel: e.OPENAI_API_KEY ? `OpenAI ${e.OPENAI_MODEL}` : 'mock model (bundled)',
      slowClientSoftBytes: e.SLOW_CLIENT_SOFT_BYTES,
      slowClientHardBytes: e.SLOW_CLIENT_HARD_BYTES,
      drainTimeoutMs: e.DRAIN_TIMEOUT_MS,
      acceptPendingTtlMs: e.ACCEPT_PENDING_TTL_MS,
    };
  },
);

export type GatewaySettings = ReturnType<typeof gatewayFragment.build>;

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;

/** Whether a listen address or client address is this machine only. */
export function isLoopback(address: string): boolean {
  return LOOPBACK.test(address) || address === '::ffff:127.0.0.1';
}

/** `sitesFor` for a process entry point: a configuration error is one line and an exit. */
export function loadSitesOrExit(
  settings: GatewaySettings,
  host: string,
  fail: (line: string) => never,
): Sites {
  try {
    return sitesFor(settings, host);
  } catch (err) {
    if (err instanceof ConfigError) return fail(err.message);
    throw err;
  }
}

/** The first log lines say which sites and modes this gateway serves, dev tokens first of all. */
export function logSites(logger: Logger, sites: Sites): void {
  if (sites.devTokens) {
    logger.warn('DEV_TOKENS=true: POST /token?userid= gives anyone a token for any user (development only)');
  }
  for (const id of sites.ids) {
    const site = sites.get(id);
    if (!site) continue;
    logger.info(
      {
        site: id,
        modes: [...site.modes],
        origins: site.anyOrigin ? 'any' : site.origins.map((o) => o.source),
      },
      'site',
    );
  }
}

/**
 * The gateway's sites, validated, with the one rule that needs the listen address: dev tokens let
 * anyone be anyone, so a gateway reachable from other machines refuses them unless told twice.
 */
export function sitesFor(settings: GatewaySettings, host: string): Sites {
  if (settings.devTokens && !isLoopback(host) && !settings.devTokensAllowPublic) {
    throw new ConfigError(
      'DEV_TOKENS',
      `config error: DEV_TOKENS=true lets anyone get a token for any user; HOST ${host} is not loopback, so set DEV_TOKENS_ALLOW_PUBLIC=true as well if that is really meant`,
    );
  }
  return loadSites({
    sitesFile: settings.sitesFile,
    sitesJson: settings.sitesJson,
    demoSite: settings.demoSite,
    devTokens: settings.devTokens,
    devOrigins: settings.allowedOrigins,
    tokensPerMinutePerIp: settings.tokenRateLimitPerMinute,
    dailyTokensPerUser: settings.dailyTokenBudgetPerUser,
    dailyTokensPerSite: settings.dailyTokenBudgetPerSite,
  });
}

/** Replay and dedupe windows, shared with the relay and the consumer (docs/delivery.md). */
export type DeliverySettings = ReturnType<typeof deliveryFragment.build>;

/** Everything the gateway reads from the environment (see .env.example). */
export const configFragments = {
  kafka: kafkaFragment,
  redis: redisFragment,
  http: httpFragment({ service: SERVICE, port: 8080 }),
  log: logFragment,
  tracing: tracingFragment({ service: SERVICE }),
  gateway: gatewayFragment,
  delivery: deliveryFragment,
  presence: presenceFragment,
};

/** The delivery windows with every variable unset, for callers that do not pass their own. */
export function deliveryDefaults(): DeliverySettings {
  return loadConfig({ delivery: deliveryFragment }, {}).delivery;
}
