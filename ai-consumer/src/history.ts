import {
  CONVERSATION_TITLE_LENGTH,
  REDIS_KEYS,
  historyTurnSchema,
  parseStored,
  type ConversationEntry,
  type HistoryTurn,
  type KeyValueStore,
} from '@relay/common';

/** One message as the model sees it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Conversations remembered per user in the index the history API lists. */
export const CONVERSATIONS_KEPT = 200;

/** The conversation's Redis key; one builder for every service (common `REDIS_KEYS`). */
export const historyKey = REDIS_KEYS.history;

export interface HistoryOptions {
  store: KeyValueStore;
  /** Messages kept per conversation; 0 disables history (no Redis calls at all). */
  maxMessages: number;
  ttlSeconds: number;
}

export interface History {
  /** The kept turns, oldest first. Entries that do not parse (another version, manual edits) are skipped. */
  load(userid: string, conversationId: string): Promise<ChatMessage[]>;
  /**
   * Appends the turns in one atomic command (RPUSH + LTRIM + PEXPIRE), so a pair is never split, and
   * notes the conversation in the user's index (what `GET /api/v1/conversations` lists). Resolves
   * with the number of messages the conversation keeps now (0 when history is off).
   */
  append(userid: string, conversationId: string, turns: HistoryTurn[]): Promise<number>;
}

/** Multi-turn context per user and conversation: a capped Redis list with a sliding TTL. */
export function createHistory(options: HistoryOptions): History {
  const { store, maxMessages } = options;
  return {
    async load(userid, conversationId) {
      if (maxMessages === 0) return [];
      const raw = await store.listRange(historyKey(userid, conversationId), -maxMessages, -1);
      const turns: ChatMessage[] = [];
      for (const entry of raw) {
        // A corrupt entry costs the model one turn of context, not the whole answer.
        const turn = parseStored(historyTurnSchema, entry);
        if (turn) turns.push({ role: turn.role, content: turn.content });
      }
      // An odd cap can trim a user turn and keep its answer; an answer without its question misleads.
      while (turns[0]?.role === 'assistant') turns.shift();
      return turns;
    },
    async append(userid, conversationId, turns) {
      if (maxMessages === 0 || turns.length === 0) return 0;
      const ttlMs = options.ttlSeconds * 1000;
      const kept = await store.listAppend(
        historyKey(userid, conversationId),
        turns.map((t) => JSON.stringify(t)),
        { maxLength: maxMessages, ttlMs },
      );
      const firstUser = turns.find((t) => t.role === 'user');
      const entry: ConversationEntry = {
        conversation_id: conversationId,
        title: (firstUser?.content ?? '').slice(0, CONVERSATION_TITLE_LENGTH),
        updated_at: turns.at(-1)?.time ?? new Date().toISOString(),
      };
      await store.listAppend(REDIS_KEYS.conversations(userid), [JSON.stringify(entry)], {
        maxLength: CONVERSATIONS_KEPT,
        ttlMs,
      });
      return kept;
    },
  };
}

/** What the model receives: the system prompt (if any), the kept history, then the new prompt. */
export function buildMessages(systemPrompt: string, history: ChatMessage[], prompt: string): ChatMessage[] {
  return [
    ...(systemPrompt ? [{ role: 'system' as const, content: systemPrompt }] : []),
    ...history,
    { role: 'user' as const, content: prompt },
  ];
}
