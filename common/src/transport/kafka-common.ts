/** What both Kafka adapters (kafka-bus.ts, platformatic-bus.ts) share beside the bookkeeping modules. */
import { BusUnavailableError } from './bus-errors.js';

/** While publishes fail, how often a metadata request checks whether the broker is back. */
export const PROBE_INTERVAL_MS = 2000;

/** Roughly the bytes a record adds to a produce request (string length, plus record overhead). */
export function recordSize(key: unknown, value: unknown): number {
  const length = (v: unknown) => (typeof v === 'string' || Buffer.isBuffer(v) ? v.length : 0);
  return length(key) + length(value) + 32;
}

/** Resolves or rejects like `promise`, or rejects with BusUnavailableError after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new BusUnavailableError(`${what} timed out after ${ms} ms (kafka unreachable?)`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
