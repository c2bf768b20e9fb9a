import { z } from 'zod';

/**
 * One stored turn of a conversation (`REDIS_KEYS.history`): written by the ai-consumer, read back as
 * the model's context and, by the gateway, as the history a client may ask for (docs/identity.md).
 * `request_id` and `time` are absent on turns written before they existed.
 */
export const historyTurnSchema = z.looseObject({
  role: z.enum(['user', 'assistant']),
  content: z.string(),
  request_id: z.string().optional(),
  /** ISO 8601. */
  time: z.string().optional(),
});
export type HistoryTurn = z.infer<typeof historyTurnSchema>;

/**
 * One entry of a user's conversation index (`REDIS_KEYS.conversations`), appended on every answered
 * turn: the newest entry of a `conversation_id` wins.
 */
export const conversationEntrySchema = z.looseObject({
  conversation_id: z.string(),
  /** The start of the conversation's first user message. */
  title: z.string(),
  updated_at: z.string(),
});
export type ConversationEntry = z.infer<typeof conversationEntrySchema>;

/** Characters of the first user message kept as a conversation's title. */
export const CONVERSATION_TITLE_LENGTH = 80;

/** Parses a stored JSON entry against `schema`; undefined for anything else (never throws). */
export function parseStored<T>(schema: z.ZodType<T>, raw: string): T | undefined {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const parsed = schema.safeParse(data);
  return parsed.success ? parsed.data : undefined;
}
