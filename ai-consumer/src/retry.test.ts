import { RelayError } from '@relay/common';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { describe, expect, it, vi } from 'vitest';
import { backoffDelay, retryWithBackoff, type RetryOptions } from './retry.js';
import {
  AttemptTimeoutError,
  CircuitOpenError,
  StreamBrokenError,
  errorCodeFor,
  isRetryableUpstreamError,
  retryAfterMs,
} from './upstream-errors.js';

const httpError = (status: number, headers: Record<string, string> = {}) =>
  APIError.generate(status, { error: { message: `status ${status}` } }, undefined, new Headers(headers));

function options(overrides: Partial<RetryOptions> = {}): RetryOptions & { waits: number[] } {
  const waits: number[] = [];
  return {
    maxRetries: 3,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    maxRetryAfterMs: 5000,
    shouldRetry: isRetryableUpstreamError,
    retryAfterMs: (e) => retryAfterMs(e),
    random: () => 0.5,
    sleep: async (ms) => void waits.push(ms),
    waits,
    ...overrides,
  };
}

/** A function failing with the given errors in turn, then answering 'ok'. */
function failing(...errors: unknown[]) {
  return vi.fn(async (attempt: number) => {
    const error = errors[attempt];
    if (error !== undefined) throw error;
    return 'ok';
  });
}

describe('backoffDelay (full jitter)', () => {
  it('is uniform in [0, min(max, base·2^n))', () => {
    const o = { baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelay(0, o, () => 0)).toBe(0);
    expect(backoffDelay(0, o, () => 0.999)).toBeCloseTo(99.9);
    expect(backoffDelay(2, o, () => 0.5)).toBe(200);
    expect(backoffDelay(3, o, () => 0.999)).toBeCloseTo(799.2);
    // The ceiling caps the exponential.
    expect(backoffDelay(10, o, () => 0.999)).toBeCloseTo(999);
    for (let n = 0; n < 8; n++) {
      for (const r of [0, 0.25, 0.5, 0.75, 0.999999]) {
        const d = backoffDelay(n, o, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(Math.min(1000, 100 * 2 ** n));
      }
    }
  });
});

describe('retryWithBackoff', () => {
  it('retries retryable errors with jittered, growing waits, then succeeds', async () => {
    const o = options();
    const fn = failing(httpError(500), httpError(503), new APIConnectionError({}));
    await expect(retryWithBackoff(fn, o)).resolves.toBe('ok');
    expect(fn).toHaveBeenCalledTimes(4);
    expect(o.waits).toEqual([50, 100, 200]);
  });

  it('gives up after maxRetries and rethrows the last error unchanged', async () => {
    const o = options({ maxRetries: 2 });
    const last = httpError(502);
    const fn = failing(httpError(500), httpError(500), last, httpError(500));
    await expect(retryWithBackoff(fn, o)).rejects.toBe(last);
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it.each([400, 401, 403, 404, 422])('does not retry %i', async (status) => {
    const o = options();
    const fn = failing(httpError(status));
    await expect(retryWithBackoff(fn, o)).rejects.toMatchObject({ status });
    expect(fn).toHaveBeenCalledTimes(1);
    expect(o.waits).toEqual([]);
  });

  it.each([
    ['408', httpError(408)],
    ['409', httpError(409)],
    ['429', httpError(429)],
    ['500', httpError(500)],
    ['connection', new APIConnectionError({})],
    ['connection timeout', new APIConnectionTimeoutError()],
    ['attempt timeout', new AttemptTimeoutError(10)],
    ['broken stream', new StreamBrokenError('reset')],
  ])('retries %s', async (_name, error) => {
    const fn = failing(error);
    await expect(retryWithBackoff(fn, options())).resolves.toBe('ok');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it('honours Retry-After (seconds) and retry-after-ms instead of the backoff', async () => {
    const o = options();
    const fn = failing(httpError(429, { 'retry-after': '2' }), httpError(429, { 'retry-after-ms': '250' }));
    await expect(retryWithBackoff(fn, o)).resolves.toBe('ok');
    expect(o.waits).toEqual([2000, 250]);
  });

  it('caps a long Retry-After at maxRetryAfterMs', async () => {
    const o = options({ maxRetryAfterMs: 3000 });
    await retryWithBackoff(failing(httpError(503, { 'retry-after': '120' })), o);
    expect(o.waits).toEqual([3000]);
  });

  it('reports each retry', async () => {
    const onRetry = vi.fn();
    await retryWithBackoff(
      failing(httpError(429, { 'retry-after': '1' }), httpError(500)),
      options({ onRetry }),
    );
    expect(onRetry.mock.calls.map(([info]) => [info.retry, info.delayMs, info.fromRetryAfter])).toEqual([
      [1, 1000, true],
      [2, 100, false],
    ]);
  });

  it('stops when the signal is aborted during a wait', async () => {
    const controller = new AbortController();
    const fn = failing(httpError(500), httpError(500));
    const started = Date.now();
    const run = retryWithBackoff(fn, {
      ...options({ signal: controller.signal, baseDelayMs: 60_000, maxDelayMs: 60_000 }),
      // The real, abortable wait; the abort lands while it is running.
      sleep: undefined,
      onRetry: () => void setTimeout(() => controller.abort(), 5),
    });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(fn).toHaveBeenCalledTimes(1);
  });
});

describe('upstream error classification', () => {
  it('never retries a refused call of an open breaker or our own abort', () => {
    expect(isRetryableUpstreamError(new CircuitOpenError(1000))).toBe(false);
    expect(isRetryableUpstreamError(new APIUserAbortError())).toBe(false);
    expect(isRetryableUpstreamError(new TypeError('bug'))).toBe(false);
  });

  it('reads Retry-After as an HTTP date', () => {
    const now = Date.parse('2024-01-01T12:00:00Z');
    const error = httpError(503, { 'retry-after': 'Mon, 01 Jan 2024 12:00:03 GMT' });
    expect(retryAfterMs(error, () => now)).toBe(3000);
    expect(retryAfterMs(httpError(503, { 'retry-after': 'soon' }))).toBeUndefined();
    expect(retryAfterMs(httpError(503))).toBeUndefined();
  });

  it('maps failures to catalog codes', () => {
    expect(errorCodeFor(new AttemptTimeoutError(5))).toBe('timeout');
    expect(errorCodeFor(new APIConnectionTimeoutError())).toBe('timeout');
    expect(errorCodeFor(httpError(503))).toBe('upstream_unavailable');
    expect(errorCodeFor(httpError(429))).toBe('upstream_unavailable');
    expect(errorCodeFor(new APIConnectionError({}))).toBe('upstream_unavailable');
    expect(errorCodeFor(new CircuitOpenError(0))).toBe('upstream_unavailable');
    expect(errorCodeFor(httpError(400))).toBe('upstream_error');
    expect(errorCodeFor(httpError(401))).toBe('upstream_error');
    expect(errorCodeFor(new RelayError('cancelled'))).toBe('cancelled');
    expect(errorCodeFor(new Error('bug'))).toBe('internal_error');
  });
});
