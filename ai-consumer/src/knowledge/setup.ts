import type { KeyValueStore, Logger, Metrics } from '@relay/common';
import type { ModelEndpoint } from '../model-setup.js';
import { createEmbedder } from './embedder.js';
import { createKnowledgeBase, type KnowledgeBase } from './knowledge-base.js';
import type { KnowledgeSettings } from './options.js';

export interface KnowledgeDeps {
  /** Where the chat model is called (model-setup.ts): embeddings go to the same server with the same key. */
  endpoint: ModelEndpoint;
  store: KeyValueStore;
  /** The chat model's timeout and retries, for the indexing's embeddings requests. */
  openai: { timeoutMs: number; maxRetries: number };
  breaker: { failureThreshold: number; cooldownMs: number };
  logger: Logger;
  metrics: Metrics;
}

/**
 * The knowledge base of `KNOWLEDGE_SOURCES`, indexed once before it is returned (so the first
 * prompts are grounded too), or undefined when no site has a source. Shared by the ai-consumer
 * service and the embedded app.
 */
export async function setupKnowledge(
  settings: KnowledgeSettings,
  deps: KnowledgeDeps,
): Promise<KnowledgeBase | undefined> {
  if (settings.sources.length === 0) return undefined;
  const logger = deps.logger.child({ component: 'knowledge' });
  const knowledge = createKnowledgeBase({
    sources: settings.sources,
    embedder: createEmbedder({
      apiKey: deps.endpoint.apiKey,
      ...(deps.endpoint.baseUrl ? { baseUrl: deps.endpoint.baseUrl } : {}),
      model: settings.embeddingModel,
      store: deps.store,
      cacheTtlMs: settings.cacheTtlMs,
      timeoutMs: deps.openai.timeoutMs,
      maxRetries: deps.openai.maxRetries,
    }),
    chunk: settings.chunk,
    topK: settings.topK,
    minScore: settings.minScore,
    refreshMs: settings.refreshMs,
    queryTimeoutMs: settings.queryTimeoutMs,
    breaker: deps.breaker,
    logger,
    metrics: deps.metrics,
  });
  logger.info(
    {
      sites: settings.sources.map((s) => ({ site: s.site, path: s.path, kind: s.kind })),
      embedding_model: settings.embeddingModel,
      top_k: settings.topK,
      min_score: settings.minScore,
    },
    'grounding answers in the sites’ knowledge',
  );
  await knowledge.start();
  return knowledge;
}
