import { createMetrics } from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { consumerMetrics } from '../consumer-metrics.js';
import { CircuitOpenError } from '../upstream-errors.js';
import { ground, type GroundOptions } from './grounding.js';
import type { Retriever } from './types.js';

function options(retriever: Retriever | undefined, site: string | undefined = 'acme') {
  const metrics = createMetrics({ service: 't', instance: 't', defaultMetrics: false });
  const opts: GroundOptions = {
    retriever,
    site,
    question: 'how long to return?',
    systemPrompt: 'Be brief.',
    signal: new AbortController().signal,
    log: silentLogger,
    metrics: consumerMetrics(metrics),
    now: Date.now,
  };
  return { opts, metrics };
}

const failing = (error: unknown): Retriever => ({
  has: () => true,
  retrieve: () => Promise.reject(error instanceof Error ? error : new Error(String(error))),
});

describe('ground', () => {
  it('leaves prompts alone when there is no knowledge for their site', async () => {
    const none: Retriever = { has: () => false, retrieve: () => Promise.reject(new Error('not called')) };
    expect(await ground(options(undefined).opts)).toEqual({ systemPrompt: 'Be brief.' });
    expect(await ground(options(none).opts)).toEqual({ systemPrompt: 'Be brief.' });
    expect(await ground(options(none, undefined).opts)).toEqual({ systemPrompt: 'Be brief.' });
  });

  it('answers ungrounded, with an empty source list, when the question cannot be embedded', async () => {
    const { opts, metrics } = options(failing(new Error('embeddings down')));
    expect(await ground(opts)).toEqual({ systemPrompt: 'Be brief.', sources: [] });
    const open = options(failing(new CircuitOpenError(1000)));
    expect(await ground(open.opts)).toEqual({ systemPrompt: 'Be brief.', sources: [] });
    expect(await metrics.registry.metrics()).toMatch(
      /ai_consumer_knowledge_retrievals_total\{result="error"/,
    );
    expect(await open.metrics.registry.metrics()).toMatch(
      /ai_consumer_knowledge_retrievals_total\{result="unavailable"/,
    );
  });

  it('puts the chunks into the system prompt and lists their sources', async () => {
    const retriever: Retriever = {
      has: () => true,
      retrieve: () => Promise.resolve([{ source: 'returns.md', text: '45 days.', score: 0.71234 }]),
    };
    const grounded = await ground(options(retriever).opts);
    expect(grounded.sources).toEqual([{ name: 'returns.md', score: 0.712 }]);
    expect(grounded.systemPrompt).toMatch(
      /^Be brief\.\n\n.*<excerpt source="returns.md">\n45 days\.\n<\/excerpt>$/s,
    );
  });
});
