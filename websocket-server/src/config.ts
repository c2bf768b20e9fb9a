import {
  bool,
  fragment,
  httpFragment,
  int,
  kafkaFragment,
  list,
  logFragment,
  redisFragment,
} from '@relay/common';
import { z } from 'zod';

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
    /** Open sockets per user on one gateway. @default 10 */
    MAX_CONNECTIONS_PER_USER: int(1, 10_000).default(10),
    /** Browser Origins allowed to upgrade (comma list); empty allows any. */
    ALLOWED_ORIGINS: list().default([]),
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
  },
  (e) => ({
    jwtSecret: e.JWT_SECRET,
    tokenTtlSeconds: e.TOKEN_TTL_SECONDS,
    tokenRateLimitPerMinute: e.TOKEN_RATE_LIMIT_PER_MINUTE,
    maxContentLength: e.MAX_CONTENT_LENGTH,
    maxPayloadBytes: e.MAX_PAYLOAD_BYTES,
    rateLimitMessages: e.RATE_LIMIT_MESSAGES,
    rateLimitWindowMs: e.RATE_LIMIT_WINDOW_MS,
    maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
    allowedOrigins: e.ALLOWED_ORIGINS,
    idleTimeoutSeconds: e.IDLE_TIMEOUT_SECONDS,
    trustProxy: e.TRUST_PROXY,
    staticDir: e.STATIC_DIR,
    modelLabel: e.OPENAI_API_KEY ? `OpenAI ${e.OPENAI_MODEL}` : 'mock model (bundled)',
  }),
);

export type GatewaySettings = ReturnType<typeof gatewayFragment.build>;

/** Everything the gateway reads from the environment (see .env.example). */
export const configFragments = {
  kafka: kafkaFragment,
  redis: redisFragment,
  http: httpFragment({ service: SERVICE, port: 8080 }),
  log: logFragment,
  gateway: gatewayFragment,
};
