import type { IncomingHttpHeaders } from 'node:http';

/** An error status the mock was asked to answer with, and the retry hints to send along. */
export interface ForcedStatus {
  status: number;
  /** Seconds, sent as `Retry-After`. */
  retryAfter?: number;
  /** Milliseconds, sent as `retry-after-ms` (the official client prefers it over `Retry-After`). */
  retryAfterMs?: number;
  /** Only the first `times` requests carrying the same prompt are forced; absent = every one. */
  times?: number;
  /** Only requests for this model are forced (prompt marker `model=`); absent = any model. */
  model?: string;
  source: 'header' | 'prompt marker';
}

export type ForcedStatusResult =
  { ok: true; forced: ForcedStatus | undefined } | { ok: false; message: string };

const NONE: ForcedStatusResult = { ok: true, forced: undefined };

function isErrorStatus(value: number): boolean {
  return Number.isInteger(value) && value >= 400 && value <= 599;
}

function parseNonNegative(text: string): number | undefined {
  if (!/^\d+(\.\d+)?$/u.test(text.trim())) return undefined;
  return Number(text);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `x-mock-status: 429`, optionally with `x-mock-retry-after: 1` and/or `x-mock-retry-after-ms: 250`. */
export function forcedStatusFromHeaders(headers: IncomingHttpHeaders): ForcedStatusResult {
  const statusText = header(headers, 'x-mock-status');
  if (statusText === undefined) return NONE;
  const status = Number(statusText);
  if (!/^\d+$/u.test(statusText.trim()) || !isErrorStatus(status)) {
    return {
      ok: false,
      message: `x-mock-status must be an HTTP error status (400-599), got '${statusText}'.`,
    };
  }
  const forced: ForcedStatus = { status, source: 'header' };
  const retryAfterText = header(headers, 'x-mock-retry-after');
  if (retryAfterText !== undefined) {
    const retryAfter = parseNonNegative(retryAfterText);
    if (retryAfter === undefined)
      return { ok: false, message: 'x-mock-retry-after must be a number of seconds.' };
    forced.retryAfter = retryAfter;
  }
  const retryAfterMsText = header(headers, 'x-mock-retry-after-ms');
  if (retryAfterMsText !== undefined) {
    const retryAfterMs = parseNonNegative(retryAfterMsText);
    if (retryAfterMs === undefined) {
      return { ok: false, message: 'x-mock-retry-after-ms must be a number of milliseconds.' };
    }
    forced.retryAfterMs = retryAfterMs;
  }
  return { ok: true, forced };
}

const MARKER = /\[mock:([^\]]*)\]/u;

/**
 * `[mock:status=429,retry_after=1,retry_after_ms=250,times=1,model=gpt-x]` anywhere in the prompt. `status`
 * is required; the others are optional. A malformed marker is reported rather than ignored, so a typo cannot silently
 * turn a failure test into a passing one.
 */
export function forcedStatusFromPrompt(prompt: string): ForcedStatusResult {
  const match = MARKER.exec(prompt);
  if (!match) return NONE;
  const fields = new Map<string, string>();
  for (const pair of (match[1] ?? '').split(',')) {
    const [key, value, ...rest] = pair.split('=').map((part) => part.trim());
    if (!key || value === undefined || rest.length > 0) {
      return { ok: false, message: `Invalid mock marker '${match[0]}': expected key=value pairs.` };
    }
    fields.set(key, value);
  }
  const invalid = (detail: string): ForcedStatusResult => ({
    ok: false,
    message: `Invalid mock marker '${match[0]}': ${detail}.`,
  });
  const statusText = fields.get('status');
  const status = statusText !== undefined && /^\d+$/u.test(statusText) ? Number(statusText) : Number.NaN;
  if (!isErrorStatus(status)) return invalid('status must be an HTTP error status (400-599)');
  const forced: ForcedStatus = { status, source: 'prompt marker' };
  for (const [key, value] of fields) {
    if (key === 'status') continue;
    if (key === 'model') {
      forced.model = value;
      continue;
    }
    const number = parseNonNegative(value);
    if (number === undefined) return invalid(`${key} must be a non-negative number`);
    if (key === 'retry_after') forced.retryAfter = number;
    else if (key === 'retry_after_ms') forced.retryAfterMs = number;
    else if (key === 'times') {
      if (!Number.isInteger(number) || number < 1) return invalid('times must be a positive integer');
      forced.times = number;
    } else return invalid(`unknown key '${key}'`);
  }
  return { ok: true, forced };
}

/** Response headers carrying the retry hints of a forced status. */
export function retryHeaders(forced: ForcedStatus): Record<string, string> {
  const headers: Record<string, string> = {};
  if (forced.retryAfter !== undefined) headers['retry-after'] = String(forced.retryAfter);
  if (forced.retryAfterMs !== undefined) headers['retry-after-ms'] = String(forced.retryAfterMs);
  return headers;
}
