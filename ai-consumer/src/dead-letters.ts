import type { BusMessage, DlqEvent } from '@relay/common';

/** Longest error description kept in a DLQ record: enough for a cause chain, not a dumped body. */
const MAX_ERROR_MESSAGE = 1000;

/**
 * The DLQ record for a prompt that could not be answered: the original record unchanged (so an
 * operator can replay it) and why it failed.
 */
export function deadLetter(
  message: BusMessage,
  error: { code: string; message: string },
  failedAt: Date,
): DlqEvent {
  return {
    v: 1,
    source_topic: message.topic,
    partition: message.partition,
    offset: message.offset,
    key: message.key,
    value: message.value,
    error: { code: error.code, message: error.message.slice(0, MAX_ERROR_MESSAGE) },
    failed_at: failedAt.toISOString(),
  };
}

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
