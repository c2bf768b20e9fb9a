import { z } from 'zod';
import type { MessageOrdering, SubscribeOptions } from './bus.js';

/** The scheduling part of `SubscribeOptions`, with defaults applied. */
export interface ResolvedConsumption {
  concurrency: number;
  ordering: MessageOrdering;
  maxQueued: number;
  drainTimeoutMs: number;
}

const positiveInt = z.number().int().positive();
const schema = z.object({
  concurrency: positiveInt.optional(),
  partitionsConcurrently: positiveInt.optional(),
  ordering: z.enum(['partition', 'key']).optional(),
  maxQueued: z.number().int().nonnegative().optional(),
  drainTimeoutMs: z.number().int().nonnegative().optional(),
});

/**
 * Applies the defaults documented on `SubscribeOptions`; throws a TypeError naming the option when
 * a value is invalid (a programming error, caught at subscribe time rather than mid-stream).
 */
export function resolveConsumption(options: SubscribeOptions): ResolvedConsumption {
  const parsed = schema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TypeError(
      `invalid subscribe option ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const o = parsed.data;
  // The deprecated option meant "this many partitions at once, each in order".
  const legacy = o.concurrency === undefined && o.partitionsConcurrently !== undefined;
  const concurrency = o.concurrency ?? o.partitionsConcurrently ?? 1;
  const ordering = o.ordering ?? (legacy || concurrency === 1 ? 'partition' : 'key');
  return {
    concurrency,
    ordering,
    maxQueued: o.maxQueued ?? 4 * concurrency,
    drainTimeoutMs: o.drainTimeoutMs ?? 10_000,
  };
}

/** Identifies a partition in the bookkeeping maps. Topic names cannot contain `|`. */
export function slotKey(topic: string, partition: number): string {
  return `${topic}|${partition}`;
}

/** The lane a message runs in: messages of one lane run one at a time, in offset order. */
export function laneKey(ordering: MessageOrdering, slot: string, key: string | null): string {
  if (ordering === 'partition' || key === null) return slot;
  // The NUL separator keeps a key from colliding with the key-less lane of its partition.
  return `${slot}\u0000${key}`;
}
