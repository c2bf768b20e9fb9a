import { z } from 'zod';
import { ERROR_CODE_LIST } from '../errors.js';

/** Topic names of SPEC §3. */
export const TOPICS = {
  incoming: 'incoming_messages',
  responses: 'responses',
  incomingDlq: 'incoming_messages.dlq',
  responsesDlq: 'responses.dlq',
} as const;

/** Kafka header names; values are strings. */
export const HEADERS = {
  correlationId: 'correlation_id',
  traceparent: 'traceparent',
} as const;

/**
 * Kafka events are produced by our own services but may come from an older or newer version:
 * lenient objects (unknown fields pass through) with an explicit version.
 */
const base = { v: z.literal(1), request_id: z.string().min(1), userid: z.string().min(1) };

/** gateway → ai-consumer on `incoming_messages`, keyed by userid. */
export const promptEventSchema = z.looseObject({
  ...base,
  content: z.string(),
  conversation_id: z.string().default('default'),
  /** Gateway that accepted it (for logs; delivery goes through Redis, not back to this gateway). */
  gateway_id: z.string().optional(),
  received_at: z.string(),
  /**
   * Whether any socket of the user asked for deltas when the gateway took the prompt (SPEC §3).
   * `false`: the consumer publishes no `delta` events for it, only the final, so clients of the
   * original protocol do not pay for streaming they never asked for. Absent means true.
   */
  stream: z.boolean().optional(),
  /** The site the user's session token names (docs/identity.md): whose daily budget it spends. */
  site: z.string().optional(),
  /**
   * The daily model-token budgets that apply (0: none), as the gateway resolved them from the
   * site's limits: the consumer checks them again before the model call and counts what it used.
   */
  budget: z
    .looseObject({ user: z.number().int().nonnegative(), site: z.number().int().nonnegative() })
    .optional(),
});

const deltaEvent = z.looseObject({
  ...base,
  type: z.literal('delta'),
  seq: z.number().int().nonnegative(),
  delta: z.string(),
});
/** A knowledge source an answer was grounded in (docs/knowledge.md), with its best cosine similarity. */
const sourceRef = z.looseObject({ name: z.string(), score: z.number() });

const finalEvent = z.looseObject({
  ...base,
  type: z.literal('final'),
  content: z.string(),
  conversation_id: z.string().optional(),
  processing_time_ms: z.number().nonnegative(),
  finish_reason: z.string().default('stop'),
  timestamp: z.string(),
  /** The model that answered: `OPENAI_MODEL`, or `OPENAI_FALLBACK_MODEL` when the primary was down. */
  model: z.string().optional(),
  /**
   * Present when the user's site has a knowledge source: the sources of the excerpts the model was
   * given, best first (empty: nothing scored high enough). Absent for sites without one.
   */
  sources: z.array(sourceRef).optional(),
});
const errorEvent = z.looseObject({
  ...base,
  type: z.literal('error'),
  code: z.enum(ERROR_CODE_LIST),
  message: z.string(),
});

/** The generation restarts (after a consumer crash): deltas before it are void, `seq` starts at 0. */
const resetEvent = z.looseObject({ ...base, type: z.literal('reset') });

/**
 * The prompt still waits for a model worker, `position` prompts ahead of it (docs/delivery.md). Only
 * for streaming prompts; the relay publishes it without appending it to the replay log. A relay
 * older than this event sends it to the DLQ as invalid, so relays and gateways are deployed first.
 */
const queuedEvent = z.looseObject({
  ...base,
  type: z.literal('queued'),
  position: z.number().int().nonnegative(),
});

/** ai-consumer → message-relay on `responses`, keyed by userid. */
export const responseEventSchema = z.discriminatedUnion('type', [
  deltaEvent,
  finalEvent,
  errorEvent,
  resetEvent,
  queuedEvent,
]);

/** What goes to `*.dlq`: the original record and why it could not be handled. */
export const dlqEventSchema = z.looseObject({
  v: z.literal(1),
  source_topic: z.string(),
  partition: z.number().int(),
  offset: z.string(),
  key: z.string().nullable(),
  value: z.string(),
  error: z.object({ code: z.string(), message: z.string() }),
  failed_at: z.string(),
});

export type PromptEvent = z.infer<typeof promptEventSchema>;
export type ResponseEvent = z.infer<typeof responseEventSchema>;
export type DeltaEvent = z.infer<typeof deltaEvent>;
export type FinalEvent = z.infer<typeof finalEvent>;
export type ErrorEvent = z.infer<typeof errorEvent>;
export type ResetEvent = z.infer<typeof resetEvent>;
export type QueuedEvent = z.infer<typeof queuedEvent>;
export type DlqEvent = z.infer<typeof dlqEventSchema>;

/** Longest error description kept in a DLQ record: enough for a cause chain, not a dumped body. */
const MAX_DLQ_ERROR_MESSAGE = 1000;

/**
 * The DLQ record for a record that could not be handled: the original unchanged (so an operator can
 * replay it) and why it failed.
 */
export function dlqRecord(
  original: { topic: string; partition: number; offset: string; key: string | null; value: string },
  error: { code: string; message: string },
  failedAt: Date,
): DlqEvent {
  return {
    v: 1,
    source_topic: original.topic,
    partition: original.partition,
    offset: original.offset,
    key: original.key,
    value: original.value,
    error: { code: error.code, message: error.message.slice(0, MAX_DLQ_ERROR_MESSAGE) },
    failed_at: failedAt.toISOString(),
  };
}

/** Parses a Kafka value (JSON text) with a schema; never throws. */
export function parseEvent<T>(
  schema: z.ZodType<T>,
  value: string,
): { ok: true; event: T } | { ok: false; error: string } {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch {
    return { ok: false, error: 'value is not valid JSON' };
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `${issue?.path.join('.') || 'value'}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, event: parsed.data };
}
