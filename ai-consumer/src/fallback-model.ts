import { RelayError, startAtZero, type Logger, type Metrics } from '@relay/common';
import { consumerMetrics } from './consumer-metrics.js';
import type { ModelClient } from './model-client.js';
import { CircuitOpenError, ModelCallError } from './upstream-errors.js';

export interface FallbackModelOptions {
  /** `OPENAI_MODEL`: asked first. */
  primary: ModelClient;
  /** `OPENAI_FALLBACK_MODEL`: its own client, so its own retries and breaker. */
  fallback: ModelClient;
  /** Model names, for logs. */
  names: { primary: string; fallback: string };
  logger: Logger;
  metrics: Metrics;
}

/** Why the primary's failure is one the fallback may answer instead; undefined when it is not. */
function fallbackReason(error: unknown): string | undefined {
  if (!(error instanceof RelayError)) return undefined;
  const cause = error instanceof ModelCallError ? error.cause : error;
  if (cause instanceof CircuitOpenError) return 'circuit_open';
  // The provider is down or slow. Not `upstream_error` (it rejected the request, e.g. a 400: the
  // request is the problem) and not `internal_error` (ours).
  if (error.code === 'upstream_unavailable' || error.code === 'timeout') return error.code;
  return undefined;
}

/**
 * The primary model, and the fallback when the primary cannot answer: its breaker is open, or its
 * retries ran out on an outage or timeouts, before a single delta went out. Once deltas went out
 * the user has seen the start of the primary's answer, and another model's answer from the start
 * would garble it: such a failure ends the request as it does without a fallback (an `error` event
 * after the deltas). Without streaming (`stream: false`) nothing went out before an answer, so any
 * such failure of the primary may fall back. The result's `model` says which one answered.
 */
export function createFallbackModel(options: FallbackModelOptions): ModelClient {
  const { primary, fallback, names, logger } = options;
  const m = consumerMetrics(options.metrics);
  startAtZero(m.fallbacks, 'reason', ['circuit_open', 'upstream_unavailable', 'timeout']);
  return {
    // Open only when neither can be called: with the primary's breaker open the fallback answers,
    // so the consumer still serves (the primary's own state is in its breaker metric).
    get breakerState() {
      return primary.breakerState === 'open' ? fallback.breakerState : primary.breakerState;
    },
    async streamChat(messages, chat) {
      let streamed = false;
      try {
        return await primary.streamChat(messages, {
          ...chat,
          onDelta: (text) => {
            streamed = true;
            chat.onDelta?.(text);
          },
        });
      } catch (error) {
        const reason = streamed || chat.signal?.aborted ? undefined : fallbackReason(error);
        if (reason === undefined) throw error;
        m.fallbacks.inc({ reason });
        logger.warn(
          { reason, primary: names.primary, fallback: names.fallback, err: error },
          'primary model unavailable; asking the fallback model',
        );
        const result = await fallback.streamChat(messages, chat);
        const tried = error instanceof ModelCallError ? error.attempts : 0;
        return { ...result, attempts: tried + result.attempts };
      }
    },
  };
}
