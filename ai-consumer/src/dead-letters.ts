/** The DLQ record of a prompt: one shape for every consumer (common). */
export { dlqRecord as deadLetter } from '@relay/common';

/**
 * An error and its causes as one line ("Service temporarily unavailable: 500 …"), for operators:
 * the catalog message alone does not say whether the provider answered 500 or the breaker was open.
 */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current !== undefined && current !== null && !seen.has(current) && parts.length < 5) {
    seen.add(current);
    if (current instanceof Error) {
      if (current.message && parts.at(-1) !== current.message) parts.push(current.message);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(': ') || 'unknown error';
}
