import type { Logger, Metrics } from '@relay/common';
import OpenAI, { APIError } from 'openai';
import { BREAKER_STATE_VALUE, createCircuitBreaker, type BreakerState } from './circuit-breaker.js';
import { consumerMetrics, startModelAtZero } from './consumer-metrics.js';
import type { ChatMessage } from './history.js';
import { retryWithBackoff } from './retry.js';
import {
  AttemptTimeoutError,
  ModelCallError,
  StreamBrokenError,
  errorCodeFor,
  failureKind,
  isRetryableUpstreamError,
  retryAfterMs,
} from './upstream-errors.js';

export interface ModelClientOptions {
  /** Any non-empty string works against a server without auth (the bundled mock). */
  apiKey: string;
  /** OpenAI-compatible base URL including `/v1`. @default OpenAI's */
  baseUrl?: string;
  model: string;
  /**
   * The `model` label of this client's metrics (attempts, retries, breaker). Two clients with the
   * same model name on different servers (a fallback) need different labels. @default model
   */
  label?: string;
  /** `max_tokens` of every call (`OPENAI_MAX_TOKENS`). */
  maxTokens: number;
  /** Per attempt, from sending the request to the end of the stream (or of the whole completion). */
  timeoutMs: number;
  retry: {
    /** Retries after the first attempt. */
    maxRetries: number;
    baseDelayMs: number;
    maxDelayMs: number;
    /** Longest `Retry-After` honoured. */
    maxRetryAfterMs: number;
  };
  breaker: { failureThreshold: number; cooldownMs: number };
  logger: Logger;
  metrics: Metrics;
  /** Injected for tests. @default Date.now */
  now?: () => number;
  /** Injected for tests (jitter). @default Math.random */
  random?: () => number;
  /** Injected for tests (backoff waits). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injected for tests: the openai client's HTTP. @default globalThis.fetch */
  fetch?: typeof globalThis.fetch;
}

export interface StreamChatOptions {
  /**
   * Aborting cancels the call; it then resolves with `finishReason: 'cancelled'` and the partial
   * content (empty without streaming: the HTTP request is aborted before any answer arrived).
   */
  signal?: AbortSignal;
  /**
   * `false`: one `chat.completion` (`stream: false`) instead of an SSE stream, for answers nobody
   * reads deltas of; `onDelta` is then never called. Retries, breaker, timeout and fallback are the
   * same. @default true
   */
  stream?: boolean;
  /** Each content token as it arrives; the concatenation of all calls is the returned `content`. */
  onDelta?: (text: string) => void;
}

export interface StreamChatResult {
  content: string;
  /** The provider's (`stop`, `length`, `content_filter`, …) or `cancelled`. */
  finishReason: string;
  usage?: { promptTokens: number; completionTokens: number };
  /** Attempts made, retries included (on every model tried). */
  attempts: number;
  /** The model that answered, as requested (`OPENAI_MODEL`, or the fallback's). */
  model?: string;
}

/** The model port: the consumer depends on this, tests may wrap it. */
export interface ModelClient {
  /**
   * Asks for a chat completion, streamed unless `options.stream` is false. Fails only with a
   * `RelayError` (a `ModelCallError` from {@link createModelClient}) whose code is safe to show a
   * user: `timeout`, `upstream_unavailable`, `upstream_error` or `internal_error`.
   */
  streamChat(messages: ChatMessage[], options: StreamChatOptions): Promise<StreamChatResult>;
  /** `open`: calls fail at once, without reaching the provider (`/ready` reports the model failing). */
  readonly breakerState: BreakerState;
}

/** Our usage shape from the provider's (a stream's last chunk, or a completion). */
function usageOf(usage: { prompt_tokens: number; completion_tokens: number }): StreamChatResult['usage'] {
  return { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens };
}

/** Thrown inside an attempt when the caller aborted; never retried, never held against the provider. */
class CancelledAttempt extends Error {
  constructor() {
    super('cancelled by the caller');
    this.name = 'CancelledAttempt';
  }
}

/**
 * The official `openai` client with our resilience around it: one retry layer (ours; the client is
 * built with `maxRetries: 0`), a circuit breaker around every attempt, and a per-attempt timeout that
 * covers the whole stream or completion (the client's own `timeout` stops at the response headers).
 */
export function createModelClient(options: ModelClientOptions): ModelClient {
  const { logger, timeoutMs } = options;
  const now = options.now ?? Date.now;
  const m = consumerMetrics(options.metrics);
  const label = options.label ?? options.model;
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseUrl,
    maxRetries: 0,
    timeout: timeoutMs,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const breaker = createCircuitBreaker({
    failureThreshold: options.breaker.failureThreshold,
    cooldownMs: options.breaker.cooldownMs,
    now,
    onStateChange: (state, previous) => {
      m.breakerState.set({ model: label }, BREAKER_STATE_VALUE[state]);
      m.breakerTransitions.inc({ state, model: label });
      const log = state === 'open' ? logger.warn.bind(logger) : logger.info.bind(logger);
      log({ state, previous, model: label }, `model circuit breaker ${state}`);
    },
  });
  m.breakerState.set({ model: label }, BREAKER_STATE_VALUE.closed);
  startModelAtZero(m, label);

  /** What one attempt learnt; `content` only without streaming (streamed text goes to `emit`). */
  interface Answer {
    finishReason: string;
    usage?: StreamChatResult['usage'];
    content?: string;
  }

  /**
   * Runs one request under the per-attempt timeout and the caller's signal: `request` gets the
   * attempt's signal and `interrupted`, which tells (from flags, as an abort is silent inside the
   * client's stream iterator) whether an error is really our timeout or the caller's cancel.
   */
  async function attemptOnce(
    signal: AbortSignal | undefined,
    request: (attempt: AbortSignal, interrupted: (cause?: unknown) => Error | undefined) => Promise<Answer>,
  ): Promise<Answer> {
    const attempt = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      attempt.abort();
    }, timeoutMs);
    // The caller's cancel reaches the attempt through a listener removed when it ends. Not
    // AbortSignal.any: the client leaves an abort listener on the signal it is given, and Node 20
    // keeps a combined signal with a listener alive until it aborts (nodejs/node#55328), so every
    // attempt stayed in memory (~1 kB each, found by the soak).
    const forward = () => attempt.abort(signal?.reason);
    signal?.addEventListener('abort', forward, { once: true });
    if (signal?.aborted) forward();
    const interrupted = (cause?: unknown): Error | undefined => {
      if (timedOut) return new AttemptTimeoutError(timeoutMs, { cause });
      if (signal?.aborted) return new CancelledAttempt();
      return undefined;
    };
    try {
      const answer = await request(attempt.signal, interrupted);
      const why = interrupted();
      if (why) throw why;
      return answer;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', forward);
    }
  }

  const params = (messages: ChatMessage[]) => ({
    model: options.model,
    messages,
    max_tokens: options.maxTokens,
  });

  /** An SSE stream of `chat.completion.chunk`s, each token to `emit` as it arrives. */
  const streamed =
    (messages: ChatMessage[], emit: (text: string) => void) =>
    async (signal: AbortSignal, interrupted: (cause?: unknown) => Error | undefined): Promise<Answer> => {
      let stream;
      try {
        stream = await client.chat.completions.create(
          { ...params(messages), stream: true, stream_options: { include_usage: true } },
          { signal, timeout: timeoutMs },
        );
      } catch (error) {
        throw interrupted(error) ?? error;
      }
      let finishReason: string | undefined;
      let usage: StreamChatResult['usage'];
      try {
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          const text = choice?.delta?.content;
          if (text) emit(text);
          if (choice?.finish_reason) finishReason = choice.finish_reason;
          if (chunk.usage) usage = usageOf(chunk.usage);
        }
      } catch (error) {
        const why = interrupted(error);
        if (why) throw why;
        if (error instanceof APIError) throw error;
        throw new StreamBrokenError('model stream broke', { cause: error });
      }
      // An abort just ends the iterator: without this check a cancel would look like a broken stream.
      const why = interrupted();
      if (why) throw why;
      if (finishReason === undefined) throw new StreamBrokenError('model stream ended without finish_reason');
      return { finishReason, ...(usage ? { usage } : {}) };
    };

  /**
   * One `chat.completion` JSON: no SSE parsing, no chunk objects, no per-token microtasks, for
   * answers nobody reads deltas of (~20 chunks each otherwise).
   */
  const completed =
    (messages: ChatMessage[]) =>
    async (signal: AbortSignal, interrupted: (cause?: unknown) => Error | undefined): Promise<Answer> => {
      let completion;
      try {
        completion = await client.chat.completions.create(
          { ...params(messages), stream: false },
          { signal, timeout: timeoutMs },
        );
      } catch (error) {
        throw interrupted(error) ?? error;
      }
      const choice = completion.choices[0];
      // The same verdict as a stream that ended without one: the provider failed mid-answer.
      if (!choice?.finish_reason) throw new StreamBrokenError('model completion without finish_reason');
      return {
        finishReason: choice.finish_reason,
        content: choice.message.content ?? '',
        ...(completion.usage ? { usage: usageOf(completion.usage) } : {}),
      };
    };

  return {
    get breakerState() {
      return breaker.state;
    },
    async streamChat(messages, { signal, onDelta, stream = true }) {
      if (signal?.aborted)
        return { content: '', finishReason: 'cancelled', attempts: 0, model: options.model };
      let content = '';
      let attempts = 0;
      const emit = (text: string) => {
        content += text;
        onDelta?.(text);
      };
      const request = stream ? streamed(messages, emit) : completed(messages);
      try {
        const result = await retryWithBackoff(
          () => {
            attempts++;
            return breaker.run(
              async () => {
                try {
                  const answer = await attemptOnce(signal, request);
                  m.attempts.inc({ result: 'ok', model: label });
                  return answer;
                } catch (error) {
                  if (!(error instanceof CancelledAttempt)) {
                    m.attempts.inc({ result: failureKind(error), model: label });
                  }
                  throw error;
                }
              },
              (error) =>
                error instanceof CancelledAttempt
                  ? 'ignore'
                  : isRetryableUpstreamError(error)
                    ? 'failure'
                    : // The provider answered (e.g. 400): it is up, whatever it thought of the request.
                      error instanceof APIError
                      ? 'success'
                      : 'ignore',
            );
          },
          {
            maxRetries: options.retry.maxRetries,
            baseDelayMs: options.retry.baseDelayMs,
            maxDelayMs: options.retry.maxDelayMs,
            maxRetryAfterMs: options.retry.maxRetryAfterMs,
            // Deltas already went out to the user, and a new attempt would stream a different answer
            // from the start: retrying after the first delta would duplicate or garble what the user
            // sees. So only attempts that emitted nothing are retried; a stream that breaks later ends
            // the request with an error event after the partial deltas.
            shouldRetry: (error) => content === '' && isRetryableUpstreamError(error),
            retryAfterMs: (error) => retryAfterMs(error, now),
            onRetry: ({ retry, delayMs, error, fromRetryAfter }) => {
              const reason = failureKind(error);
              m.retries.inc({ reason, model: label });
              logger.warn(
                {
                  retry,
                  delay_ms: Math.round(delayMs),
                  reason,
                  from_retry_after: fromRetryAfter,
                  model: label,
                },
                'model call failed, retrying',
              );
            },
            ...(signal ? { signal } : {}),
            ...(options.random ? { random: options.random } : {}),
            ...(options.sleep ? { sleep: options.sleep } : {}),
          },
        );
        // Without streaming the content came whole with the answer (and `content` is still '').
        const { content: whole = content, ...rest } = result;
        return { content: whole, ...rest, attempts, model: options.model };
      } catch (error) {
        // Cancelled in an attempt or during a backoff wait: not a failure, the partial answer stands.
        if (signal?.aborted) return { content, finishReason: 'cancelled', attempts, model: options.model };
        if (content !== '' && isRetryableUpstreamError(error)) {
          const code = error instanceof AttemptTimeoutError ? 'timeout' : 'upstream_error';
          throw new ModelCallError(code, options.model, attempts, { cause: error });
        }
        // A CircuitOpenError keeps its code and stays the cause (the fallback tells it apart).
        throw new ModelCallError(errorCodeFor(error), options.model, attempts, { cause: error });
      }
    },
  };
}
