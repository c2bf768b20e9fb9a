import { httpErrorSchema } from '@relay/common/contract';

/** The part of `fetch` the client uses (the global one in browsers and Node ≥ 18). */
export type FetchLike = (
  url: string,
  init: { method: string; headers?: Record<string, string>; body?: string; credentials?: 'omit' },
) => Promise<{
  status: number;
  ok: boolean;
  json(): Promise<unknown>;
  headers: { get(name: string): string | null };
}>;

/**
 * A refusal from `/token` or `/api/…` (`{"error","message"}`), or the request never reaching the
 * relay (`status` 0, `code` `network_error`). `retryable` says whether asking again can help:
 * rate limits, 5xx and network failures can; a refused origin or identity cannot.
 */
export class RelayHttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'RelayHttpError';
    this.status = status;
    this.code = code;
    this.retryable = status === 0 || status === 408 || status === 429 || status >= 500;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** One JSON request; a non-2xx answer becomes a {@link RelayHttpError} with the server's code. */
export async function requestJson(
  fetchImpl: FetchLike,
  url: string,
  init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: unknown },
): Promise<{ status: number; body: unknown }> {
  let response: Awaited<ReturnType<FetchLike>>;
  try {
    response = await fetchImpl(url, {
      method: init.method,
      headers: {
        ...(init.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        ...init.headers,
      },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      // Identity is the token, never a cookie of the relay's origin.
      credentials: 'omit',
    });
  } catch (cause) {
    // A CORS refusal looks the same as a network failure to a page: fetch only says TypeError.
    throw new RelayHttpError(0, 'network_error', 'The relay could not be reached', { cause });
  }
  const body: unknown = await response.json().catch(() => undefined);
  if (response.ok) return { status: response.status, body };
  const parsed = httpErrorSchema.safeParse(body);
  const retryAfter = Number(response.headers.get('retry-after'));
  throw new RelayHttpError(
    response.status,
    parsed.success ? parsed.data.error : `http_${response.status}`,
    (parsed.success ? parsed.data.message : undefined) ?? `HTTP ${response.status}`,
    {
      retryAfterMs:
        parsed.success && parsed.data.retry_after_ms !== undefined
          ? parsed.data.retry_after_ms
          : Number.isFinite(retryAfter) && retryAfter > 0
            ? retryAfter * 1000
            : undefined,
    },
  );
}
