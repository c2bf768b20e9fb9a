import { z } from 'zod';

/**
 * Each id part of a multi-part key is percent-encoded: ids may contain `:`, and without encoding
 * `accepted:{a:b}:{c}` and `accepted:{a}:{b:c}` would be the same key (docs/delivery.md).
 */
const part = (id: string): string => encodeURIComponent(id);

/**
 * Redis names of SPEC §4 and docs/delivery.md. One place, so the gateway, the ai-consumer and the
 * relay cannot disagree.
 */
export const REDIS_KEYS = {
  /** Pub/sub channel a gateway subscribes to while it holds a socket of the user. */
  userChannel: (userid: string): string => `user:${userid}`,
  /** Capped stream of the user's frames; its entry ids are the frames' `event_id`s. */
  replayLog: (userid: string): string => `replay:${userid}`,
  /** String (value: the `request_id`), set NX by the gateway before the Kafka publish of a client `id`. */
  accepted: (userid: string, id: string): string => `accepted:${part(userid)}:${part(id)}`,
  /** String `running` / `done`: the ai-consumer's generation state across consumer crashes. */
  request: (userid: string, requestId: string): string => `request:${part(userid)}:${part(requestId)}`,
  /** Hash `{seq, done, last, lastkey}`: what the relay already appended for a request (written by `appendFrame`). */
  relayed: (userid: string, requestId: string): string => `relayed:${part(userid)}:${part(requestId)}`,
  /** String: a cancel was requested, checked by the consumer before it starts a queued request. */
  cancel: (userid: string, requestId: string): string => `cancel:${part(userid)}:${part(requestId)}`,
  /** Capped list of `{role, content}` turns: the model's context for one conversation (ai-consumer). */
  history: (userid: string, conversationId: string): string =>
    `history:${part(userid)}:${part(conversationId)}`,
  /** Capped list of `ConversationEntry` (history.ts): the conversations a user has, for the history API. */
  conversations: (userid: string): string => `conversations:${part(userid)}`,
  /** Model tokens a user used on a UTC day (`YYYY-MM-DD`): the daily budget's counter. */
  userBudget: (userid: string, day: string): string => `budget:user:${part(userid)}:${day}`,
  /** Model tokens a whole site used on a UTC day. */
  siteBudget: (site: string, day: string): string => `budget:site:${part(site)}:${day}`,
  /** Fixed-window counter of a user's messages (gateway rate limit). */
  messageRate: (userid: string): string => `ratelimit:msg:${userid}`,
  /** Fixed-window counter of tokens issued to one client IP. */
  tokenRate: (ip: string): string => `ratelimit:token:${ip}`,
  /**
   * String (base64 float32 vector): a knowledge chunk's embedding by model and SHA-256 of its text,
   * shared by every ai-consumer so unchanged chunks are not embedded again after a restart.
   */
  embedding: (model: string, sha256: string): string => `embedding:${part(model)}:${sha256}`,
  /** Pub/sub channel every ai-consumer listens on; messages follow {@link cancelControlSchema}. */
  cancelChannel: 'control:cancel',
  /**
   * Hash of one user's presence on one site (`PRESENCE_FIELDS`, docs/presence.md). The site is part
   * of the key, so a reader of one site can never reach another site's users.
   */
  presence: (site: string, userid: string): string => `presence:${part(site)}:${part(userid)}`,
  /** Fixed-window counter of a user's presence writes (frame and PUT). */
  presenceWriteRate: (userid: string): string => `ratelimit:presence:${part(userid)}`,
  /**
   * Pub/sub channel every gateway listens on: presence keys that changed, so each gateway drops them
   * from its in-process cache. Messages follow {@link presenceInvalidationSchema}.
   */
  presenceChannel: 'presence:changed',
} as const;

/** The values of {@link REDIS_KEYS.request}: written by the ai-consumer, read by gateways for cancels. */
export const REQUEST_STATES = { running: 'running', done: 'done' } as const;

/** A message on {@link REDIS_KEYS.cancelChannel}: the consumer holding this request aborts it. */
export const cancelControlSchema = z.looseObject({
  userid: z.string().min(1),
  request_id: z.string().min(1),
});

export type CancelControl = z.infer<typeof cancelControlSchema>;

/** A message on {@link REDIS_KEYS.presenceChannel}: these presence keys changed (lenient, versioned). */
export const presenceInvalidationSchema = z.looseObject({
  v: z.literal(1),
  /** The gateway that wrote them (its own cache is already up to date). */
  node: z.string(),
  keys: z.array(z.string()).max(10_000),
  /** Epoch ms of the write, for the invalidation-delay metric. */
  at: z.number().optional(),
});

export type PresenceInvalidation = z.infer<typeof presenceInvalidationSchema>;
