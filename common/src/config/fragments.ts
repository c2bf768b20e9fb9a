import { hostname } from 'node:os';
import { z } from 'zod';
import { bool, fragment, int, list, port, url } from './parse.js';

/** Kafka client libraries the `Bus` can run on (common/src/transport/kafka-client.ts). */
export const KAFKA_CLIENTS = ['kafkajs', 'platformatic'] as const;
export type KafkaClientName = (typeof KAFKA_CLIENTS)[number];

/** Kafka connection. `KAFKA_BOOTSTRAP_SERVERS` is the original name. */
export const kafkaFragment = fragment(
  {
    /** Comma-separated host:port list. @default 127.0.0.1:9092 */
    KAFKA_BOOTSTRAP_SERVERS: list()
      .pipe(z.array(z.string().regex(/^[^\s:]+:\d+$/, { message: 'must be host:port[,host:port]' })).min(1))
      .default(['127.0.0.1:9092']),
    /** Partitions for topics this service creates. @default 6 */
    KAFKA_TOPIC_PARTITIONS: int(1, 1000).default(6),
    /** Consumer group session timeout. @default 10000 */
    KAFKA_SESSION_TIMEOUT_MS: int(1000, 300_000).default(10_000),
    /**
     * Kafka client library: `kafkajs`, or `platformatic` (@platformatic/kafka). Same Bus semantics;
     * every member of one consumer group must use the same client (their group protocols differ).
     * @default kafkajs
     */
    KAFKA_CLIENT: z
      .string()
      .transform((v) => v.toLowerCase())
      .pipe(z.enum(KAFKA_CLIENTS, { message: `must be one of ${KAFKA_CLIENTS.join(', ')}` }))
      .default('kafkajs'),
  },
  (e) => ({
    brokers: e.KAFKA_BOOTSTRAP_SERVERS,
    partitions: e.KAFKA_TOPIC_PARTITIONS,
    sessionTimeoutMs: e.KAFKA_SESSION_TIMEOUT_MS,
    client: e.KAFKA_CLIENT,
  }),
);

/** Redis connection: `REDIS_URL`, or the original `REDIS_HOST`/`REDIS_PORT` (+ password, db). */
export const redisFragment = fragment(
  {
    REDIS_URL: url(['redis', 'rediss']).optional(),
    /** @default 127.0.0.1 */
    REDIS_HOST: z.string().default('127.0.0.1'),
    /** @default 6379 */
    REDIS_PORT: int(1, 65535).default(6379),
    REDIS_PASSWORD: z.string().optional(),
    /** @default 0 */
    REDIS_DB: int(0, 15).default(0),
  },
  (e) => {
    if (e.REDIS_URL) return { url: e.REDIS_URL };
    const auth = e.REDIS_PASSWORD ? `:${encodeURIComponent(e.REDIS_PASSWORD)}@` : '';
    return { url: `redis://${auth}${e.REDIS_HOST}:${e.REDIS_PORT}/${e.REDIS_DB}` };
  },
);

/** Identity and HTTP listener of one service instance. */
export const httpFragment = (defaults: { service: string; port: number }) =>
  fragment(
    {
      PORT: port().default(defaults.port),
      /** @default 0.0.0.0 */
      HOST: z.string().default('0.0.0.0'),
      /** Instance id reported in /health and metrics. @default the host name */
      SERVER_ID: z.string().min(1).max(128).default(hostname()),
      /** Service name (original variable). */
      APP_NAME: z.string().min(1).max(64).default(defaults.service),
      /** Graceful shutdown deadline. @default 10000 */
      SHUTDOWN_TIMEOUT_MS: int(100, 300_000).default(10_000),
    },
    (e) => ({
      port: e.PORT,
      host: e.HOST,
      serverId: e.SERVER_ID,
      appName: e.APP_NAME,
      shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    }),
  );

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const logFragment = fragment(
  {
    /** @default info */
    LOG_LEVEL: z
      .string()
      .transform((v) => v.toLowerCase())
      .pipe(z.enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` }))
      .default('info'),
    /** Human-readable logs instead of JSON lines. @default false */
    LOG_PRETTY: bool().default(false),
  },
  (e) => ({ level: e.LOG_LEVEL, pretty: e.LOG_PRETTY }),
);

/** The model provider. Without `OPENAI_API_KEY` the bundled mock model is used. */
export const openaiFragment = fragment(
  {
    OPENAI_API_KEY: z.string().min(1).optional(),
    OPENAI_BASE_URL: url(['http', 'https']).optional(),
    /** @default gpt-4o-mini */
    OPENAI_MODEL: z.string().min(1).default('gpt-4o-mini'),
    /** Per-attempt timeout. @default 60000 */
    OPENAI_TIMEOUT_MS: int(100, 600_000).default(60_000),
    /** Retries after the first attempt. @default 3 */
    OPENAI_MAX_RETRIES: int(0, 10).default(3),
    /** `max_tokens` of every model call: no answer costs more than this. @default 1024 */
    OPENAI_MAX_TOKENS: int(1, 1_000_000).default(1024),
    /**
     * Concurrent model calls per consumer process (original variable). They are streams an async
     * runtime waits on, not threads, so the bound is the provider's rate limit, not the CPU; the
     * original system's example configuration used 200. @default 200
     */
    MAX_WORKERS: int(1, 10_000).default(200),
    /** @default You are a helpful assistant. */
    SYSTEM_PROMPT: z.string().default('You are a helpful assistant.'),
  },
  (e) => ({
    apiKey: e.OPENAI_API_KEY,
    baseUrl: e.OPENAI_BASE_URL,
    model: e.OPENAI_MODEL,
    timeoutMs: e.OPENAI_TIMEOUT_MS,
    maxRetries: e.OPENAI_MAX_RETRIES,
    maxTokens: e.OPENAI_MAX_TOKENS,
    maxWorkers: e.MAX_WORKERS,
    systemPrompt: e.SYSTEM_PROMPT,
  }),
);

/**
 * Delivery windows (docs/delivery.md): the replay log the relay writes and the gateway resumes
 * from, and how long ids are remembered for deduplication.
 */
export const deliveryFragment = fragment(
  {
    /** Frames kept per user for resume (exact cap of the replay stream). @default 1000 */
    REPLAY_MAX_EVENTS: int(1, 1_000_000).default(1000),
    /** How long a user's replay log outlives their last frame: the resume window. @default 3600 */
    REPLAY_TTL_SECONDS: int(1, 30 * 86_400).default(3600),
    /** How long accepted ids and request states are remembered. @default 86400 */
    DEDUPE_TTL_SECONDS: int(60, 30 * 86_400).default(86_400),
  },
  (e) => ({
    replayMaxEvents: e.REPLAY_MAX_EVENTS,
    replayTtlMs: e.REPLAY_TTL_SECONDS * 1000,
    dedupeTtlMs: e.DEDUPE_TTL_SECONDS * 1000,
  }),
);
