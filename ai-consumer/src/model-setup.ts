import type { Metrics } from '@relay/common';
import type { Logger } from 'pino';
import type { ConsumerSettings, FallbackSettings, mockModelFragment } from './config.js';
import { createFallbackModel } from './fallback-model.js';
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
  /** `OPENAI_FALLBACK_*`; absent or undefined: no fallback. */
  fallback?: FallbackSettings;
  consumer: ConsumerSettings;
  mockModel: ReturnType<typeof mockModelFragment.build>;
}

/** Where the primary model is called, with which key: the embeddings of the knowledge base go there too. */
export interface ModelEndpoint {
  apiKey: string;
  /** Undefined: OpenAI's. */
  baseUrl: string | undefined;
}

export interface ModelSetup {
  /** The primary model, wrapped with the fallback when one is configured. */
  model: ModelClient;
  /** Where calls go, for logs and the UI. */
  baseUrl: string;
  endpoint: ModelEndpoint;
  /** The fallback, if configured: its model and where it is called, for logs. */
  fallback?: { model: string; baseUrl: string };
  /** True when the bundled mock answers (no OPENAI_API_KEY and no OPENAI_BASE_URL). */
  mock: boolean;
  /** Stops the bundled mock, if one was started. Idempotent. */
  close(): Promise<void>;
}

const OPENAI_BASE_URL = 'https://api.openai.com/v1';

/**
 * Picks the model the way SPEC §5 says: `OPENAI_API_KEY` → that provider (`OPENAI_BASE_URL` or
 * OpenAI's); only `OPENAI_BASE_URL` → that server without a key; neither → the bundled mock,
 * started in-process, and a warning that says so. `OPENAI_FALLBACK_MODEL` adds a second client
 * (its own breaker) on `OPENAI_FALLBACK_BASE_URL` or the primary's server, with
 * `OPENAI_FALLBACK_API_KEY` or, on the primary's server only, the primary's key: a key is never
 * sent to a server it was not given for. Shared by the ai-consumer service and the embedded app.
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
  const client = (target: { apiKey: string; baseUrl: string | undefined; model: string; label?: string }) =>
    createModelClient({
      apiKey: target.apiKey,
      baseUrl: target.baseUrl,
      model: target.model,
      ...(target.label ? { label: target.label } : {}),
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
  const primary = client({ apiKey, baseUrl, model: config.openai.model });
  const setup: ModelSetup = {
    model: primary,
    baseUrl: baseUrl ?? OPENAI_BASE_URL,
    endpoint: { apiKey, baseUrl },
    mock,
    close,
  };
  const fallback = config.fallback;
  if (!fallback) return setup;

  const fallbackUrl = fallback.baseUrl ?? baseUrl;
  const sameServer = (fallbackUrl ?? OPENAI_BASE_URL) === (baseUrl ?? OPENAI_BASE_URL);
  let fallbackKey = fallback.apiKey ?? (sameServer ? apiKey : undefined);
  if (!fallbackKey) {
    fallbackKey = NO_AUTH_KEY;
    logger.warn(
      { base_url: fallbackUrl },
      `no OPENAI_FALLBACK_API_KEY: calling ${fallbackUrl} without a key`,
    );
  }
  const sameName = fallback.model === config.openai.model;
  const secondary = client({
    apiKey: fallbackKey,
    baseUrl: fallbackUrl,
    model: fallback.model,
    // Metrics tell the two apart even when both serve a model of the same name.
    ...(sameName ? { label: `${fallback.model} (fallback)` } : {}),
  });
  return {
    ...setup,
    model: createFallbackModel({
      primary,
      fallback: secondary,
      names: { primary: config.openai.model, fallback: fallback.model },
      logger,
      metrics: deps.metrics,
    }),
    fallback: { model: fallback.model, baseUrl: fallbackUrl ?? OPENAI_BASE_URL },
  };
}
