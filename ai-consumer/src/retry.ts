import { setTimeout as delay } from 'node:timers/promises';

export interface RetryInfo {
  /** 1 for the first retry. */
  retry: number;
  delayMs: number;
  error: unknown;
  /** True when the wait came from the provider (`Retry-After`) rather than the backoff. */
  fromRetryAfter: boolean;
}

export interface RetryOptions {
  /** Retries after the first attempt (0 = one attempt). */
  maxRetries: number;
  /** Backoff ceiling of the first retry; it doubles per retry. */
  baseDelayMs: number;
  /** Ceiling of any backoff delay. */
  maxDelayMs: number;
  /** Longest provider-requested wait honoured; a longer `Retry-After` is cut to this. */
  maxRetryAfterMs: number;
  /** Whether `error` (from attempt `attempt`, 0-based) is worth another attempt. */
  shouldRetry: (error: unknown, attempt: number) => boolean;
  /** The wait the error asks for (e.g. `Retry-After`), in ms. */
  retryAfterMs?: (error: unknown) => number | undefined;
  onRetry?: (info: RetryInfo) => void;
  /** Aborting stops the loop, also in the middle of a wait. */
  signal?: AbortSignal;
  /** @default Math.random */
  random?: () => number;
  /** Injected for tests. @default an abortable timer */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Full jitter (AWS architecture blog): uniform in [0, min(max, base·2^retryIndex)). */
export function backoffDelay(
  retryIndex: number,
  options: { baseDelayMs: number; maxDelayMs: number },
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** retryIndex);
  return random() * ceiling;
}

const abortableSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  delay(ms, undefined, signal ? { signal } : {});

/**
 * Calls `fn` until it succeeds, `shouldRetry` says no, or the retries run out; then rethrows the
 * last error unchanged so the caller can classify it. This is the only retry layer of a model call:
 * the OpenAI client is built with `maxRetries: 0`.
 */
export async function retryWithBackoff<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? abortableSleep;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= options.maxRetries || options.signal?.aborted || !options.shouldRetry(error, attempt)) {
        throw error;
      }
      const asked = options.retryAfterMs?.(error);
      const fromRetryAfter = asked !== undefined;
      const delayMs = fromRetryAfter
        ? Math.min(asked, options.maxRetryAfterMs)
        : backoffDelay(attempt, options, random);
      options.onRetry?.({ retry: attempt + 1, delayMs, error, fromRetryAfter });
      await sleep(delayMs, options.signal);
    }
  }
}
