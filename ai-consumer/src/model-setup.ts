import type { Metrics } from '@relay/common';
import type { Logger } from 'pino';
import type { ConsumerSettings, mockModelFragment } from './config.js';
import { createMockOpenAI } from './mock-openai/index.js';
import { createModelClient, type ModelClient } from './model-client.js';

// An OpenAI-compatible server without auth still needs a non-empty key for the client to send.
const NO_AUTH_KEY = 'no-key';

export interface ModelSetupConfig {
  openai: {
    apiKey: string | undefined;
    baseUrl: string | undefined;
    model: string;
    timeoutMs: number;
    maxTokens: number;
    maxRetries: number;
  };
  consumer: ConsumerSettings;
  mockModel: ReturnType<typeof mockModelFragment.build>;
}

export interface ModelSetup {
  model: ModelClient;
  /** Where calls go, for logs and the UI. */
  baseUrl: string;
  /** True when the bundled mock answers (no OPENAI_API_KEY and no OPENAI_BASE_URL). */
  mock: boolean;
  /** Stops the bundled mock, if one was started. Idempotent. */
  close(): Promise<void>;
}

/**
 * Picks the model the way SPEC §5 says: `OPENAI_API_KEY` → that provider (`OPENAI_BASE_URL` or
 * OpenAI's); only `OPENAI_BASE_URL` → that server without a key; neither → the bundled mock,
 * started in-process, and a warning that says so. Shared by the ai-consumer service and the
 * single-process embedded app.
 */
export async function setupModel(
  config: ModelSetupConfig,
  deps: { logger: Logger; metrics: Metrics },
): Promise<ModelSetup> {
  const { logger } = deps;
  let apiKey = config.openai.apiKey;
  let baseUrl = config.openai.baseUrl;
  let close = async () => {};
  let mock = false;
  if (!apiKey && baseUrl) {
    apiKey = NO_AUTH_KEY;
    logger.warn({ base_url: baseUrl }, `no OPENAI_API_KEY: calling ${baseUrl} without a key`);
  } else if (!apiKey) {
    const server = createMockOpenAI(config.mockModel);
    const { url } = await server.start();
    close = () => server.close();
    apiKey = NO_AUTH_KEY;
    baseUrl = `${url}/v1`;
    mock = true;
    logger.warn({ base_url: baseUrl }, `no OPENAI_API_KEY: using the bundled mock model at ${baseUrl}`);
  }
  const model = createModelClient({
    apiKey,
    baseUrl,
    model: config.openai.model,
    maxTokens: config.openai.maxTokens,
    timeoutMs: config.openai.timeoutMs,
    retry: {
      maxRetries: config.openai.maxRetries,
      baseDelayMs: config.consumer.retryBaseDelayMs,
      maxDelayMs: config.consumer.retryMaxDelayMs,
      maxRetryAfterMs: config.consumer.retryAfterMaxMs,
    },
    breaker: {
      failureThreshold: config.consumer.breakerFailureThreshold,
      cooldownMs: config.consumer.breakerCooldownMs,
    },
    logger,
    metrics: deps.metrics,
  });
  return { model, baseUrl: baseUrl ?? 'https://api.openai.com/v1', mock, close };
}
