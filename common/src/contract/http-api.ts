// zod/mini for the same reason as server-frames.ts: browsers parse these.
import * as z from 'zod/mini';

/**
 * The gateway's HTTP answers a client reads (docs/identity.md): `POST /token`, the history API and
 * their error bodies. Loose objects: fields may be added.
 */

/** Identity modes of a session token. */
export const IDENTITY_MODES = ['signed', 'anonymous', 'dev'] as const;
export type IdentityMode = (typeof IDENTITY_MODES)[number];

/** `200` of `POST /token`. The original (dev) form has no `site` or `mode`. */
export const tokenResponseSchema = z.looseObject({
  token: z.string().check(z.minLength(1)),
  userid: z.string().check(z.minLength(1)),
  /** Seconds. */
  expires_in: z.number().check(z.positive()),
  site: z.optional(z.string()),
  mode: z.optional(z.enum(IDENTITY_MODES)),
});
export type TokenResponse = z.infer<typeof tokenResponseSchema>;

/** Every 4xx/5xx of `/token` and `/api/…`: `{"error": <code>, "message"}`. */
export const httpErrorSchema = z.looseObject({
  error: z.string(),
  message: z.optional(z.string()),
  retry_after_ms: z.optional(z.number()),
});
export type HttpError = z.infer<typeof httpErrorSchema>;

/** `GET /api/v1/conversations`: newest first. */
export const conversationListSchema = z.looseObject({
  conversations: z.array(
    z.looseObject({
      conversation_id: z.string(),
      /** The start of the first user message. */
      title: z.string(),
      /** ISO 8601. */
      updated_at: z.string(),
    }),
  ),
});
export type ConversationSummary = z.infer<typeof conversationListSchema>['conversations'][number];

/** `GET /api/v1/conversations/<id>`: oldest first. */
export const conversationSchema = z.looseObject({
  conversation_id: z.string(),
  messages: z.array(
    z.looseObject({
      role: z.enum(['user', 'assistant']),
      content: z.string(),
      /** Null on turns stored before request ids were kept. */
      request_id: z.optional(z.nullable(z.string())),
      /** ISO 8601; null as above. */
      time: z.optional(z.nullable(z.string())),
    }),
  ),
});
export type Conversation = z.infer<typeof conversationSchema>;
export type ConversationMessage = Conversation['messages'][number];
