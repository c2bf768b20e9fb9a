import {
  REDIS_KEYS,
  conversationEntrySchema,
  historyTurnSchema,
  idSchema,
  parseStored,
  type KeyValueStore,
} from '@relay/common';
import { authenticateApi, type ApiRequest } from './api-auth.js';
import type { Sites } from './sites/sites.js';
import type { SessionIdentity, TokenService } from './token-service.js';

/** Newest conversations listed at most. */
const LIST_LIMIT = 100;

/** What a history request carries (the shared API authentication's input). */
export type HistoryRequest = ApiRequest;

export interface HistoryAnswer {
  status: 200 | 400 | 401 | 403 | 404;
  body: Record<string, unknown>;
  /** The site whose CORS applies (the token's), when known. */
  site?: string;
}

export interface HistoryApi {
  /** `GET /api/v1/conversations`: the token's user's conversations, newest first. */
  list(request: HistoryRequest): Promise<HistoryAnswer>;
  /** `GET /api/v1/conversations/<id>`: one conversation's messages, oldest first. */
  conversation(request: HistoryRequest, conversationId: string): Promise<HistoryAnswer>;
}

/**
 * History a client may ask for (docs/identity.md): read from the keys the ai-consumer writes (the
 * model's context and the conversation index), for the session token's own user only.
 */
export function createHistoryApi(deps: {
  store: KeyValueStore;
  tokens: TokenService;
  sites: Sites;
}): HistoryApi {
  const { store, tokens, sites } = deps;

  const authenticate = (request: HistoryRequest): SessionIdentity | HistoryAnswer =>
    authenticateApi(tokens, sites, request);

  return {
    async list(request) {
      const who = authenticate(request);
      if (!('userid' in who)) return who;
      const raw = await store.listRange(REDIS_KEYS.conversations(who.userid), 0, -1);
      // Appended per answered turn: the newest entry of a conversation wins.
      const newest = new Map<string, { conversation_id: string; title: string; updated_at: string }>();
      for (const entry of raw) {
        const parsed = parseStored(conversationEntrySchema, entry);
        if (!parsed) continue;
        const first = newest.get(parsed.conversation_id);
        newest.set(parsed.conversation_id, {
          conversation_id: parsed.conversation_id,
          // The title is the first message's: kept from the oldest entry.
          title: first?.title ?? parsed.title,
          updated_at: parsed.updated_at,
        });
      }
      const conversations = [...newest.values()]
        .sort((a, b) => b.updated_at.localeCompare(a.updated_at))
        .slice(0, LIST_LIMIT);
      return { status: 200, body: { conversations }, site: who.site };
    },

    async conversation(request, conversationId) {
      const who = authenticate(request);
      if (!('userid' in who)) return who;
      const id = idSchema.safeParse(conversationId);
      if (!id.success) {
        return {
          status: 400,
          body: { error: 'invalid_request', message: 'conversation_id is not an id' },
          site: who.site,
        };
      }
      const raw = await store.listRange(REDIS_KEYS.history(who.userid, id.data), 0, -1);
      const messages = raw.flatMap((entry) => {
        const turn = parseStored(historyTurnSchema, entry);
        if (!turn) return [];
        return [
          {
            role: turn.role,
            content: turn.content,
            request_id: turn.request_id ?? null,
            time: turn.time ?? null,
          },
        ];
      });
      if (messages.length === 0) {
        return { status: 404, body: { error: 'not_found', message: 'No such conversation' }, site: who.site };
      }
      return { status: 200, body: { conversation_id: id.data, messages }, site: who.site };
    },
  };
}
