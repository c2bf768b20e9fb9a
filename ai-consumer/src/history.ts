import { REDIS_KEYS, type KeyValueStore } from '@relay/common';
import { z } from 'zod';

/** One message as the model sees it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

const turnSchema = z.object({ role: z.enum(['user', 'assistant']), content: z.string() });

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
  /** Appends the turns in one atomic command (RPUSH + LTRIM + PEXPIRE), so a pair is never split. */
  append(userid: string, conversationId: string, turns: ChatMessage[]): Promise<void>;
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
        let data: unknown;
        try {
          data = JSON.parse(entry);
        } catch {
          // A corrupt entry costs the model one turn of context, not the whole answer.
          continue;
        }
        const parsed = turnSchema.safeParse(data);
        if (parsed.success) turns.push(parsed.data);
      }
      // An odd cap can trim a user turn and keep its answer; an answer without its question misleads.
      while (turns[0]?.role === 'assistant') turns.shift();
      return turns;
    },
    async append(userid, conversationId, turns) {
      if (maxMessages === 0 || turns.length === 0) return;
      await store.listAppend(
        historyKey(userid, conversationId),
        turns.map((t) => JSON.stringify({ role: t.role, content: t.content })),
        { maxLength: maxMessages, ttlMs: options.ttlSeconds * 1000 },
      );
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
