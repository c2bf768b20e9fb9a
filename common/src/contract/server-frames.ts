// zod/mini: these shapes are parsed in browsers too (@relay/client, the widget), where the full zod
// costs ~26 KB gzipped and its mini build ~5 KB. The schemas are the same zod core types, with
// `.safeParse()` and `z.infer`, so the server side uses them unchanged.
import * as z from 'zod/mini';
import { ERROR_CODE_LIST } from '../errors.js';
import { presenceRecordShape } from './presence.js';

/**
 * Frames the gateway sends. The original `response` and `error` shapes are kept field for field;
 * everything else is additive (`request_id`, `event_id`, `code`, …) or a new opt-in type.
 */
const common = {
  userid: z.string(),
  request_id: z.optional(z.string()),
  conversation_id: z.optional(z.string()),
  /** Per-user, monotonically increasing id used to resume (`?last_event_id=`). */
  event_id: z.optional(z.string()),
};

/** A knowledge source the answer was grounded in, with its best cosine similarity (0..1). */
export const sourceSchema = z.object({ name: z.string(), score: z.number() });

export const responseFrameSchema = z.object({
  type: z.literal('response'),
  content: z.string(),
  timestamp: z.string(),
  processing_time_ms: z.number().check(z.nonnegative()),
  finish_reason: z.optional(z.string()),
  /** The model that answered (the fallback's name when the primary was down). */
  model: z.optional(z.string()),
  /** Sources of the site's knowledge the answer was given, best first; only for sites with one. */
  sources: z.optional(z.array(sourceSchema)),
  ...common,
});

export const errorFrameSchema = z.object({
  type: z.literal('error'),
  message: z.string(),
  code: z.enum(ERROR_CODE_LIST),
  ...common,
  userid: z.optional(z.string()),
});

export const ackFrameSchema = z.object({ type: z.literal('ack'), ...common, request_id: z.string() });

export const deltaFrameSchema = z.object({
  type: z.literal('response.delta'),
  ...common,
  request_id: z.string(),
  seq: z.int().check(z.nonnegative()),
  delta: z.string(),
});

/** To streaming sockets: discard this request's deltas so far; they start again at `seq` 0. */
export const resetFrameSchema = z.object({
  type: z.literal('response.reset'),
  ...common,
  request_id: z.string(),
});

/**
 * To streaming sockets while a prompt waits for a model worker (docs/delivery.md, "Queue position"):
 * `position` prompts are ahead of it in the ai-consumer's line (0: it is next). A progress hint, not
 * part of the answer: never in the replay log, so it has no `event_id`; throttled, sent on change
 * only, and never after the request's first delta. Clients show it until the deltas start.
 */
export const queuedFrameSchema = z.object({
  type: z.literal('queued'),
  ...common,
  request_id: z.string(),
  position: z.int().check(z.nonnegative()),
});

/** To a socket that resumed from an id older than what is retained: frames may have been lost. */
export const resumeGapFrameSchema = z.object({
  type: z.literal('resume.gap'),
  last_event_id: z.string(),
  oldest_event_id: z.nullable(z.string()),
  message: z.string(),
});

/** The answer to a client's `presence` frame: the user's presence as others now read it. */
export const presenceFrameSchema = z.object({ type: z.literal('presence'), ...presenceRecordShape });

export const serverFrameSchema = z.discriminatedUnion('type', [
  responseFrameSchema,
  errorFrameSchema,
  ackFrameSchema,
  deltaFrameSchema,
  resetFrameSchema,
  queuedFrameSchema,
  resumeGapFrameSchema,
  presenceFrameSchema,
]);

export type ResponseFrame = z.infer<typeof responseFrameSchema>;
export type SourceRef = z.infer<typeof sourceSchema>;
export type ErrorFrame = z.infer<typeof errorFrameSchema>;
export type AckFrame = z.infer<typeof ackFrameSchema>;
export type DeltaFrame = z.infer<typeof deltaFrameSchema>;
export type ResetFrame = z.infer<typeof resetFrameSchema>;
export type QueuedFrame = z.infer<typeof queuedFrameSchema>;
export type ResumeGapFrame = z.infer<typeof resumeGapFrameSchema>;
export type PresenceFrame = z.infer<typeof presenceFrameSchema>;
export type ServerFrame = z.infer<typeof serverFrameSchema>;
