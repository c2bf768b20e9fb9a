import {
  conversationListSchema,
  conversationSchema,
  type Conversation,
  type ConversationSummary,
} from '@relay/common/contract';
import { RelayHttpError, requestJson, type FetchLike } from './http.js';

export interface HistoryClient {
  /** `GET /api/v1/conversations`: the user's conversations, newest first. */
  list(): Promise<ConversationSummary[]>;
  /** `GET /api/v1/conversations/<id>`: its messages, oldest first; none for an unknown one. */
  get(conversationId: string): Promise<Conversation>;
}

/**
 * The history API for the token's own user. `token(refresh)` gives the session token; a 401 is
 * retried once with a refreshed one (it may have expired since it was handed out).
 */
export function createHistoryClient(options: {
  url: string;
  fetch: FetchLike;
  token: (refresh: boolean) => Promise<string>;
}): HistoryClient {
  const base = `${options.url.replace(/\/+$/, '')}/api/v1/conversations`;

  async function get(path: string): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const token = await options.token(attempt > 0);
      try {
        const { body } = await requestJson(options.fetch, `${base}${path}`, {
          method: 'GET',
          headers: { Authorization: `Bearer ${token}` },
        });
        return body;
      } catch (err) {
        if (attempt === 0 && err instanceof RelayHttpError && err.status === 401) continue;
        throw err;
      }
    }
  }

  function invalid(): RelayHttpError {
    return new RelayHttpError(502, 'invalid_response', 'The relay sent a history answer it should not have');
  }

  return {
    async list() {
      const parsed = conversationListSchema.safeParse(await get(''));
      if (!parsed.success) throw invalid();
      return parsed.data.conversations;
    },
    async get(conversationId) {
      let body: unknown;
      try {
        body = await get(`/${encodeURIComponent(conversationId)}`);
      } catch (err) {
        // A conversation nobody answered yet (or one past its TTL) is an empty one, not a failure.
        if (err instanceof RelayHttpError && err.status === 404)
          return { conversation_id: conversationId, messages: [] };
        throw err;
      }
      const parsed = conversationSchema.safeParse(body);
      if (!parsed.success) throw invalid();
      return parsed.data;
    },
  };
}
