import type { Logger } from '@relay/common';
import type { ConsumerMetrics } from '../consumer-metrics.js';
import { CircuitOpenError } from '../upstream-errors.js';
import { groundedSystemPrompt, sourcesOf } from './prompt.js';
import type { Retriever, Source } from './types.js';

export interface Grounding {
  /** The system prompt to send: the configured one, with the chosen excerpts when there are any. */
  systemPrompt: string;
  /**
   * For the final event: the sources used, best first; `[]` when the site has knowledge but nothing
   * scored high enough (or retrieval failed); absent when the site has no knowledge source.
   */
  sources?: Source[];
}

export interface GroundOptions {
  retriever: Retriever | undefined;
  /** The prompt's site (docs/identity.md); older gateways send none. */
  site: string | undefined;
  question: string;
  systemPrompt: string;
  signal: AbortSignal;
  log: Logger;
  metrics: ConsumerMetrics;
  now: () => number;
}

/**
 * The system prompt grounded in the site's knowledge. Never throws: a question that cannot be
 * embedded (provider down, timeout) is answered without excerpts rather than not at all, and the
 * final frame then lists no sources.
 */
export async function ground(options: GroundOptions): Promise<Grounding> {
  const { retriever, site, systemPrompt, metrics: m } = options;
  if (!retriever || site === undefined || !retriever.has(site)) return { systemPrompt };
  const started = options.now();
  try {
    const chunks = await retriever.retrieve(site, options.question, options.signal);
    m.retrievalDuration.observe((options.now() - started) / 1000);
    m.retrievals.inc({ result: chunks.length > 0 ? 'grounded' : 'none' });
    options.log.debug(
      { site, chunks: chunks.map((c) => ({ source: c.source, score: c.score })) },
      'knowledge retrieved',
    );
    return { systemPrompt: groundedSystemPrompt(systemPrompt, chunks), sources: sourcesOf(chunks) };
  } catch (error) {
    // Cancelled meanwhile: the request ends as cancelled, nothing to count against retrieval.
    if (!options.signal.aborted) {
      const unavailable = error instanceof CircuitOpenError;
      m.retrievals.inc({ result: unavailable ? 'unavailable' : 'error' });
      if (!unavailable)
        options.log.warn({ err: error, site }, 'knowledge retrieval failed; answering without it');
    }
    return { systemPrompt, sources: [] };
  }
}
