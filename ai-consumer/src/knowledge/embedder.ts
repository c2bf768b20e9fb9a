import { createHash } from 'node:crypto';
import { REDIS_KEYS, type KeyValueStore } from '@relay/common';
import OpenAI from 'openai';
import { decodeVector, encodeVector } from './vectors.js';

/** Inputs per embeddings request: ~20k tokens of default chunks, far below the API's limits. */
const BATCH_SIZE = 64;

export interface EmbedderOptions {
  /** Resolved like the chat model's (model-setup.ts): the provider's, a keyless server's, or the mock's. */
  apiKey: string;
  baseUrl?: string;
  model: string;
  store: KeyValueStore;
  /** TTL of a cached vector, refreshed whenever it is written. */
  cacheTtlMs: number;
  /** Per embeddings request of the indexing; the query has its own (`embedQuery`). */
  timeoutMs: number;
  /** The SDK's own retries for the indexing (backoff, `Retry-After`); the query is not retried. */
  maxRetries: number;
}

export interface EmbedResult {
  vectors: Float32Array[];
  /** How many of the texts had to be embedded (the rest came from the cache). */
  embedded: number;
}

export interface Embedder {
  /**
   * Vectors of knowledge chunks, in order: from the cache (Redis, by model and content hash) where
   * they are, else from the embeddings API in batches, then cached. Throws when the cache cannot be
   * read (rather than pay for everything again) or the provider fails.
   */
  embedChunks(texts: readonly string[]): Promise<EmbedResult>;
  /** A question's vector, not cached (questions rarely repeat): one request, no retry. */
  embedQuery(text: string, options: { signal?: AbortSignal; timeoutMs: number }): Promise<Float32Array>;
}

export const contentHash = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Embeddings with the official `openai` client, cached in the KeyValueStore by content hash. */
export function createEmbedder(options: EmbedderOptions): Embedder {
  const { store, model } = options;
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseUrl,
    maxRetries: options.maxRetries,
    timeout: options.timeoutMs,
  });

  async function request(
    input: string[],
    requestOptions: { signal?: AbortSignal; timeout?: number; maxRetries?: number } = {},
  ): Promise<Float32Array[]> {
    const response = await client.embeddings.create({ model, input }, requestOptions);
    const vectors: Array<Float32Array | undefined> = new Array<Float32Array | undefined>(input.length);
    for (const item of response.data) vectors[item.index] = Float32Array.from(item.embedding);
    return vectors.map((v, i) => {
      if (!v || v.length === 0) throw new Error(`embeddings response has no vector for input ${i}`);
      return v;
    });
  }

  return {
    async embedChunks(texts) {
      const keys = texts.map((t) => REDIS_KEYS.embedding(model, contentHash(t)));
      const vectors: Array<Float32Array | undefined> = [];
      for (let i = 0; i < keys.length; i += BATCH_SIZE) {
        const cached = await Promise.all(keys.slice(i, i + BATCH_SIZE).map((k) => store.get(k)));
        vectors.push(...cached.map((c) => (c === null ? undefined : decodeVector(c))));
      }
      const missing = texts.flatMap((_, i) => (vectors[i] ? [] : [i]));
      for (let i = 0; i < missing.length; i += BATCH_SIZE) {
        const batch = missing.slice(i, i + BATCH_SIZE);
        const made = await request(batch.map((j) => texts[j] ?? ''));
        await Promise.all(
          batch.map((j, k) => {
            const vector = made[k] as Float32Array;
            vectors[j] = vector;
            return store.set(keys[j] ?? '', encodeVector(vector), { ttlMs: options.cacheTtlMs });
          }),
        );
      }
      return { vectors: vectors.map((v) => v as Float32Array), embedded: missing.length };
    },
    async embedQuery(text, { signal, timeoutMs }) {
      const [vector] = await request([text], {
        ...(signal ? { signal } : {}),
        timeout: timeoutMs,
        maxRetries: 0,
      });
      return vector as Float32Array;
    },
  };
}
