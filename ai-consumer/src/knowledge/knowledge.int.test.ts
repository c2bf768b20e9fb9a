/**
 * Grounded answers on in-process transports with the real mock over HTTP: the knowledge files are
 * chunked, embedded through the official `openai` client (the mock's similarity-preserving vectors),
 * cached by content hash (in-process store, and real Redis for the restart case), and the consumer
 * puts the best chunks into the system prompt and their sources into the final event.
 */
import { mkdtemp, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryStore, createMetrics, createRedisStore, type KeyValueStore } from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createMockOpenAI, type MockOpenAIServer } from '../mock-openai/index.js';
import { createModelClient } from '../model-client.js';
import { HARNESS_SYSTEM_PROMPT, startConsumerHarness } from '../testing/consumer-harness.js';
import { createEmbedder } from './embedder.js';
import { createKnowledgeBase, type KnowledgeBase } from './knowledge-base.js';
import { checkSources } from './options.js';
import { GROUNDING_INSTRUCTIONS } from './prompt.js';

const cleanups: Array<() => Promise<void>> = [];
const cleanup = (close: () => Promise<void>) => cleanups.push(close);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const RETURNS = `# Returns

Zephyr kettles can be returned within 45 days of delivery, unused and in their original box.
Refunds reach the original payment method within 5 business days.
`;
const SHIPPING = `# Shipping

Orders ship from our warehouse in Lyon. Standard delivery takes 3 to 5 working days; express
delivery arrives the next day for orders placed before noon.
`;
const WARRANTY = `# Warranty

Every appliance carries a two year warranty against manufacturing defects. Limescale damage is
not covered.
`;

async function knowledgeDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relay-knowledge-'));
  cleanup(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

async function startMock(): Promise<{ mock: MockOpenAIServer; baseUrl: string }> {
  const mock = createMockOpenAI({ port: 0, ttftMs: 0, tokenMs: 0 });
  const { url } = await mock.start();
  cleanup(() => mock.close());
  return { mock, baseUrl: `${url}/v1` };
}

interface BaseOptions {
  baseUrl: string;
  sources: Record<string, string>;
  store?: KeyValueStore;
  embeddingModel?: string;
  refreshMs?: number;
}

async function startKnowledge(options: BaseOptions): Promise<KnowledgeBase> {
  const metrics = createMetrics({ service: 'ai-consumer', instance: 'test', defaultMetrics: false });
  const kb = createKnowledgeBase({
    sources: checkSources(options.sources),
    embedder: createEmbedder({
      apiKey: 'test',
      baseUrl: options.baseUrl,
      model: options.embeddingModel ?? 'mock-embedding',
      store: options.store ?? createMemoryStore(),
      cacheTtlMs: 600_000,
      timeoutMs: 5000,
      maxRetries: 0,
    }),
    chunk: { size: 1200, overlap: 200 },
    topK: 4,
    minScore: 0.3,
    refreshMs: options.refreshMs ?? 3_600_000,
    queryTimeoutMs: 5000,
    breaker: { failureThreshold: 5, cooldownMs: 30_000 },
    logger: silentLogger,
    metrics,
  });
  cleanup(() => kb.close());
  await kb.start();
  return kb;
}

async function setup(files: Record<string, string> = { 'returns.md': RETURNS, 'shipping.md': SHIPPING }) {
  const { mock, baseUrl } = await startMock();
  const dir = await knowledgeDir(files);
  const knowledge = await startKnowledge({ baseUrl, sources: { acme: dir } });
  const metrics = createMetrics({ service: 'ai-consumer', instance: 'test', defaultMetrics: false });
  const model = createModelClient({
    apiKey: 'test',
    baseUrl,
    model: 'mock-gpt',
    maxTokens: 512,
    timeoutMs: 5000,
    retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 },
    breaker: { failureThreshold: 5, cooldownMs: 60_000 },
    logger: silentLogger,
    metrics,
  });
  const h = await startConsumerHarness({ model, metrics, knowledge, cleanup });
  return { ...h, mock, dir, knowledge, metrics };
}

describe('grounded answers (knowledge files → embeddings → system prompt → sources)', () => {
  it('a question answered only in the knowledge file gets that chunk, and the answer cites it', async () => {
    const t = await setup();
    const question = 'How many days do I have to return my Zephyr kettle?';
    const final = await t.answerOf(await t.send('acme:alice', question, { site: 'acme' }));

    expect(final.sources).toEqual([{ name: 'returns.md', score: expect.any(Number) }]);
    expect(final.sources?.[0]?.score).toBeGreaterThanOrEqual(0.3);
    // The mock cites what it was given, as a model told to cite would.
    expect(final.content).toContain('[returns.md] Zephyr kettles can be returned within 45 days of delivery');
    const system = t.systemPromptFor(question);
    expect(system).toBe(
      `${HARNESS_SYSTEM_PROMPT}\n\n${GROUNDING_INSTRUCTIONS}\n\n<excerpt source="returns.md">\n${RETURNS.trim()}\n</excerpt>`,
    );
    expect(system).not.toContain('Lyon');
    expect(await t.metrics.registry.metrics()).toMatch(
      /ai_consumer_knowledge_retrievals_total\{result="grounded"[^}]*\} 1/,
    );
  });

  it('an unrelated question gets no chunk above the threshold: no excerpts, no sources', async () => {
    const t = await setup();
    const question = 'What is the capital of France?';
    const final = await t.answerOf(await t.send('acme:bob', question, { site: 'acme' }));
    expect(final.sources).toEqual([]);
    expect(t.systemPromptFor(question)).toBe(HARNESS_SYSTEM_PROMPT);
    expect(final.content).not.toContain('[');
    expect(await t.metrics.registry.metrics()).toMatch(
      /ai_consumer_knowledge_retrievals_total\{result="none"[^}]*\} 1/,
    );
  });

  it('a site without a knowledge source (or a prompt without a site) is not grounded and lists no sources', async () => {
    const t = await setup();
    const before = t.mock.stats().embeddings;
    const other = await t.answerOf(await t.send('beta:carol', 'return a Zephyr kettle?', { site: 'beta' }));
    const none = await t.answerOf(await t.send('dave', 'return a Zephyr kettle?'));
    for (const final of [other, none]) expect(Object.keys(final)).not.toContain('sources');
    // No question was embedded for them.
    expect(t.mock.stats().embeddings).toBe(before);
  });

  it('a changed file is re-embedded, an unchanged one is not, a removed one is dropped', async () => {
    const t = await setup({ 'returns.md': RETURNS, 'shipping.md': SHIPPING, 'warranty.md': WARRANTY });
    // One chunk per file at these sizes.
    expect(t.mock.stats().embeddings).toBe(3);
    expect(t.knowledge.size('acme')).toBe(3);

    await writeFile(join(t.dir, 'returns.md'), RETURNS.replace('45 days', '60 days'));
    // Touched with the same content: read and hashed again, not embedded.
    const later = new Date(Date.now() + 5000);
    await utimes(join(t.dir, 'shipping.md'), later, later);
    await unlink(join(t.dir, 'warranty.md'));
    const report = await t.knowledge.refresh();
    expect(report).toEqual({ changed: 1, removed: 1, embedded: 1, failed: 0 });
    expect(t.mock.stats().embeddings).toBe(4);
    expect(t.knowledge.size('acme')).toBe(2);

    // Nothing moved: a check reads nothing and embeds nothing.
    expect(await t.knowledge.refresh()).toEqual({ changed: 0, removed: 0, embedded: 0, failed: 0 });
    expect(t.mock.stats().embeddings).toBe(4);

    const returns = await t.answerOf(
      await t.send('acme:erin', 'How many days to return a Zephyr kettle?', { site: 'acme' }),
    );
    expect(returns.content).toContain('within 60 days');
    const warranty = await t.answerOf(
      await t.send('acme:erin', 'Is limescale damage covered by the warranty?', { site: 'acme' }),
    );
    expect(warranty.sources).toEqual([]);
  });

  it('the periodic check picks up a new file by itself', async () => {
    const { mock, baseUrl } = await startMock();
    const dir = await knowledgeDir({ 'returns.md': RETURNS });
    const kb = await startKnowledge({ baseUrl, sources: { acme: dir }, refreshMs: 1000 });
    expect(kb.size('acme')).toBe(1);
    await writeFile(join(dir, 'warranty.md'), WARRANTY);
    await writeFile(join(dir, 'notes.json'), '{"not": "indexed"}');
    await waitFor(() => kb.size('acme') === 2, { timeoutMs: 5000, message: 'warranty.md indexed' });
    const found = await kb.retrieve('acme', 'Is limescale damage covered by the warranty?');
    expect(found.map((c) => c.source)).toEqual(['warranty.md']);
    expect(mock.stats().embeddings).toBe(3);
  });

  it('a restart embeds nothing it embedded before: the vectors come from Redis by content hash', async () => {
    const { mock, baseUrl } = await startMock();
    const redis = createRedisStore({ url: inject('redisUrl'), logger: silentLogger });
    cleanup(() => redis.close());
    // A model name of its own keeps this test's cache keys apart from every other run's.
    const embeddingModel = uniqueName('mock-embedding');
    const dir = await knowledgeDir({ 'returns.md': RETURNS, 'shipping.md': SHIPPING });
    const first = await startKnowledge({ baseUrl, sources: { acme: dir }, store: redis, embeddingModel });
    expect(mock.stats().embeddings).toBe(2);
    await first.close();

    await writeFile(join(dir, 'shipping.md'), SHIPPING.replace('Lyon', 'Turin'));
    const second = await startKnowledge({ baseUrl, sources: { acme: dir }, store: redis, embeddingModel });
    // Only the changed file's chunk was embedded again.
    expect(mock.stats().embeddings).toBe(3);
    const found = await second.retrieve('acme', 'How many days to return a Zephyr kettle?');
    expect(found[0]).toMatchObject({ source: 'returns.md', text: RETURNS.trim() });
  });

  it('a single-file source is named by its file name', async () => {
    const { baseUrl } = await startMock();
    const dir = await knowledgeDir({ 'faq.txt': `${RETURNS}\n${SHIPPING}` });
    const kb = await startKnowledge({ baseUrl, sources: { acme: join(dir, 'faq.txt') } });
    const found = await kb.retrieve('acme', 'Where do orders ship from, Lyon?');
    expect(found[0]).toMatchObject({ source: 'faq.txt' });
    expect(found[0]?.text).toContain('Lyon');
    expect(found[0]?.text).not.toContain('Zephyr');
  });
});
