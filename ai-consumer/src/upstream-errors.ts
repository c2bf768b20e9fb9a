import { RelayError, type ErrorCode } from '@relay/common';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';

/** The breaker is open: the call was refused without reaching the provider. Never retried. */
export class CircuitOpenError extends RelayError {
  readonly retryInMs: number;

  constructor(retryInMs: number) {
    super('upstream_unavailable');
    this.name = 'CircuitOpenError';
    this.retryInMs = retryInMs;
  }
}

/**
 * A model call failed for good (what `ModelClient.streamChat` throws): the catalog `code` for the
 * user, plus which model it was and how many attempts it made, for metrics, logs and the fallback.
 */
export class ModelCallError extends RelayError {
  readonly model: string;
  readonly attempts: number;

  constructor(code: ErrorCode, model: string, attempts: number, options?: { cause?: unknown }) {
    super(code, undefined, options);
    this.name = 'ModelCallError';
    this.model = model;
    this.attempts = attempts;
  }
}

/** One attempt ran past the per-attempt timeout (time to first byte through the end of the stream). */
export class AttemptTimeoutError extends Error {
  constructor(timeoutMs: number, options?: { cause?: unknown }) {
    super(`model attempt exceeded ${timeoutMs} ms`, options);
    this.name = 'AttemptTimeoutError';
  }
}

/**
 * The response stream broke (connection reset, malformed chunk) or ended without a `finish_reason`:
 * the provider failed mid-answer, so it counts like a connection error.
 */
export class StreamBrokenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StreamBrokenError';
  }
}

/**
 * Whether another attempt can help: network errors, timeouts, broken streams, 408, 409, 429 and 5xx.
 * Other 4xx mean the request itself is wrong (bad key, bad model, too long) and would fail again.
 */
export function isRetryableUpstreamError(error: unknown): boolean {
  if (error instanceof CircuitOpenError) return false;
  if (error instanceof AttemptTimeoutError || error instanceof StreamBrokenError) return true;
  // APIUserAbortError is ours (the caller aborted), and it is an APIError without a status.
  if (error instanceof APIUserAbortError) return false;
  if (error instanceof APIConnectionError) return true;
  if (error instanceof APIError) {
    const status = error.status;
    // No status: an `error` event inside a 200 stream, i.e. the provider failed mid-answer.
    if (status === undefined) return true;
    return status === 408 || status === 409 || status === 429 || status >= 500;
  }
  return false;
}

/**
 * The wait the provider asked for, in ms: `retry-after-ms` (OpenAI's own, more precise) or
 * `Retry-After` (seconds or an HTTP date). Undefined when absent or unreadable.
 */
export function retryAfterMs(error: unknown, now: () => number = Date.now): number | undefined {
  if (!(error instanceof APIError)) return undefined;
  const headers: unknown = error.headers;
  if (!(headers instanceof Headers)) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Number(ms);
  const after = headers.get('retry-after');
  if (after === null) return undefined;
  if (/^\d+(\.\d+)?$/.test(after.trim())) return Number(after) * 1000;
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now());
}

/**
 * The catalog code a failed model call reports to the user, once retries are over: timeouts are
 * `timeout`, a provider that stayed down (or a refused call while the breaker is open) is
 * `upstream_unavailable`, a request the provider rejected is `upstream_error`, anything else is ours.
 */
export function errorCodeFor(error: unknown): ErrorCode {
  if (error instanceof RelayError) return error.code;
  if (error instanceof AttemptTimeoutError || error instanceof APIConnectionTimeoutError) return 'timeout';
  if (isRetryableUpstreamError(error)) return 'upstream_unavailable';
  if (error instanceof APIError) return 'upstream_error';
  return 'internal_error';
}

/** A short label for metrics and logs (never the provider's message, which may echo the prompt). */
export function failureKind(error: unknown): string {
  if (error instanceof AttemptTimeoutError || error instanceof APIConnectionTimeoutError) return 'timeout';
  if (error instanceof StreamBrokenError) return 'stream';
  if (error instanceof APIUserAbortError) return 'aborted';
  if (error instanceof APIConnectionError) return 'connection';
  if (error instanceof APIError) {
    if (error.status === undefined) return 'stream';
    return error.status >= 500 ? '5xx' : String(error.status);
  }
  if (error instanceof RelayError) return error.code;
  return 'other';
}
