import { randomBytes } from 'node:crypto';

/** Polls `condition` until it returns a truthy value (returned) or the timeout passes (throws). */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  /** `message` may be a function: it is read at the timeout, to describe the state then. */
  options: { timeoutMs?: number; intervalMs?: number; message?: string | (() => string) } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      const message = typeof options.message === 'function' ? options.message() : options.message;
      throw new Error(
        `waitFor timed out after ${options.timeoutMs ?? 10_000} ms${message ? ` (${message})` : ''}${why}`,
      );
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 25));
  }
}

/** A name no other test (or earlier run) uses: topics, groups, key prefixes. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A logger that discards everything, for tests that need one. */
export { silentLogger } from './silent-logger.js';
