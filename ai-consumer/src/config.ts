import {
  ConfigError,
  deliveryFragment,
  fragment,
  httpFragment,
  int,
  kafkaFragment,
  logFragment,
  openaiFragment,
  redisFragment,
  tracingFragment,
  url,
} from '@relay/common';
import { z } from 'zod';
import { knowledgeFragment } from './knowledge/options.js';

export const SERVICE = 'ai-consumer';

/** How ai-consumer streams, remembers and protects the model calls (beside `openaiFragment`). */
export const consumerFragment = fragment(
  {
    /** Longest a streamed token waits before it is published in a `delta` event. @default 25 */
    DELTA_FLUSH_MS: int(0, 1000).default(25),
    /**
     * Least time between two queue-position updates to a waiting streaming prompt (sent only on a
     * change; docs/delivery.md); 0 sends none. @default 500
     */
    QUEUE_UPDATE_MS: int(0, 60_000).default(500),
    /** Turns kept per user and conversation (user and assistant count one each); 0 disables history. @default 20 */
    HISTORY_MAX_MESSAGES: int(0, 1000).default(20),
    /** A conversation is forgotten this long after its last turn. @default 86400 */
    HISTORY_TTL_SECONDS: int(1, 365 * 86_400).default(86_400),
    /** First retry delay ceiling; doubles per retry (full jitter). @default 500 */
    OPENAI_RETRY_BASE_DELAY_MS: int(1, 60_000).default(500),
    /** Ceiling of the backoff delay. @default 8000 */
    OPENAI_RETRY_MAX_DELAY_MS: int(1, 300_000).default(8000),
    /** Longest `Retry-After` honoured; a longer one is cut to this. @default 30000 */
    OPENAI_RETRY_AFTER_MAX_MS: int(0, 600_000).default(30_000),
    /** Consecutive provider failures (5xx, 408, 409, 429, network, timeout) that open the breaker. @default 5 */
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: int(1, 1000).default(5),
    /** How long an open breaker fails fast before letting one trial call through. @default 30000 */
    CIRCUIT_BREAKER_COOLDOWN_MS: int(100, 3_600_000).default(30_000),
  },
  (e) => ({
    deltaFlushMs: e.DELTA_FLUSH_MS,
    queueUpdateMs: e.QUEUE_UPDATE_MS,
    historyMaxMessages: e.HISTORY_MAX_MESSAGES,
    historyTtlSeconds: e.HISTORY_TTL_SECONDS,
    retryBaseDelayMs: e.OPENAI_RETRY_BASE_DELAY_MS,
    retryMaxDelayMs: e.OPENAI_RETRY_MAX_DELAY_MS,
    retryAfterMaxMs: e.OPENAI_RETRY_AFTER_MAX_MS,
    breakerFailureThreshold: e.CIRCUIT_BREAKER_FAILURE_THRESHOLD,
    breakerCooldownMs: e.CIRCUIT_BREAKER_COOLDOWN_MS,
  }),
);

export type ConsumerSettings = ReturnType<typeof consumerFragment.build>;

/**
 * A second model for when `OPENAI_MODEL` cannot answer (breaker open, retries exhausted before any
 * delta): same timeout, retries and breaker settings, its own breaker. Unset: no fallback.
 */
export const fallbackFragment = fragment(
  {
    /** Model asked when the primary is down. */
    OPENAI_FALLBACK_MODEL: z.string().min(1).optional(),
    /** Its server, if not the primary's (`OPENAI_BASE_URL`, OpenAI's, or the bundled mock). */
    OPENAI_FALLBACK_BASE_URL: url(['http', 'https']).optional(),
    /** Its key (secret: no default). Without it: the primary's key on the primary's server, none on another. */
    OPENAI_FALLBACK_API_KEY: z.string().min(1).optional(),
  },
  (e) => {
    if (!e.OPENAI_FALLBACK_MODEL) {
      const orphan = e.OPENAI_FALLBACK_BASE_URL
        ? 'OPENAI_FALLBACK_BASE_URL'
        : e.OPENAI_FALLBACK_API_KEY
          ? 'OPENAI_FALLBACK_API_KEY'
          : undefined;
      if (orphan) {
        throw new ConfigError(orphan, `config error: ${orphan} is set but OPENAI_FALLBACK_MODEL is not`);
      }
      return undefined;
    }
    return {
      model: e.OPENAI_FALLBACK_MODEL,
      baseUrl: e.OPENAI_FALLBACK_BASE_URL,
      apiKey: e.OPENAI_FALLBACK_API_KEY,
    };
  },
);

export type FallbackSettings = ReturnType<typeof fallbackFragment.build>;

const failRate = z
  .string()
  .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, { message: 'must be a number between 0 and 1' })
  .transform(Number);

/**
 * The bundled mock model, started in-process only when neither `OPENAI_API_KEY` nor
 * `OPENAI_BASE_URL` is set. Same variable names as the standalone mock (`npm run mock-openai`).
 */
export const mockModelFragment = fragment(
  {
    /** @default 127.0.0.1 */
    MOCK_OPENAI_HOST: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port. @default 0 */
    MOCK_OPENAI_PORT: int(0, 65535).default(0),
    /** @default 200 */
    MOCK_OPENAI_TTFT_MS: int(0, 600_000).default(200),
    /** @default 25 */
    MOCK_OPENAI_TOKEN_MS: int(0, 60_000).default(25),
    /** Shortest answer in tokens (padded with picked words). @default 0 */
    MOCK_OPENAI_MIN_TOKENS: int(0, 100_000).default(0),
    /** Share of completions answered with 500. @default 0 */
    MOCK_OPENAI_FAIL_RATE: failRate.default(0),
    /** @default 1 */
    MOCK_OPENAI_SEED: int(0, 2 ** 31 - 1).default(1),
  },
  (e) => ({
    host: e.MOCK_OPENAI_HOST,
    port: e.MOCK_OPENAI_PORT,
    ttftMs: e.MOCK_OPENAI_TTFT_MS,
    tokenMs: e.MOCK_OPENAI_TOKEN_MS,
    minTokens: e.MOCK_OPENAI_MIN_TOKENS,
    failRate: e.MOCK_OPENAI_FAIL_RATE,
    seed: e.MOCK_OPENAI_SEED,
  }),
);

/** Everything ai-consumer reads from the environment (see .env.example). */
export const configFragments = {
  kafka: kafkaFragment,
  redis: redisFragment,
  http: httpFragment({ service: SERVICE, port: 9101 }),
  log: logFragment,
  tracing: tracingFragment({ service: SERVICE }),
  openai: openaiFragment,
  fallback: fallbackFragment,
  consumer: consumerFragment,
  knowledge: knowledgeFragment,
  delivery: deliveryFragment,
  mockModel: mockModelFragment,
};
