import type { Conversation, ConversationSummary, ServerFrame, TokenResponse } from '@relay/common/contract';
import { createHistoryClient } from './history.js';
import type { FetchLike } from './http.js';
import {
  createResilientClient,
  type ClientState,
  type FinalFrame,
  type StateDetail,
  type WebSocketLike,
} from './resilient-client.js';
import { memoryStorage, storedValues, type StorageLike } from './storage.js';
import { createTokenSource, type Identity, type Session } from './token-source.js';

export interface RelayClientOptions {
  /** The relay's base URL, e.g. `https://relay.example` or `http://localhost:8080`. */
  url: string;
  /** The site id (docs/identity.md): anonymous visitors unless `identity` is given. */
  site?: string;
  /** Signed mode: the host backend's JWT for this visitor, or a function that fetches a fresh one. */
  identity?: string | (() => Promise<string>);
  /** Dev mode (`POST /token?userid=`), only where the gateway has dev tokens on. */
  userid?: string;
  /**
   * Session tokens minted without `/token` by a holder of the gateways' signing secret (a load
   * generator, a backend acting for its users): asked whenever a token is needed. Not for
   * browsers, which must never hold the secret. Takes precedence over `identity` and `userid`.
   */
  issue?: () => Promise<TokenResponse>;
  /** Anonymous mode on a site with a captcha: gives the captcha's response token. */
  captcha?: () => Promise<string>;
  /**
   * Where the anonymous token, the resume point, un-answered messages and the current
   * conversation are kept across page loads, e.g. `window.localStorage`. @default in memory
   */
  storage?: StorageLike;
  /** Key prefix in `storage`. @default `relay:<site>` (`relay:dev` in dev mode, `relay:issued` with `issue`) */
  storageKey?: string;
  /** @default globalThis.fetch */
  fetch?: FetchLike;
  /** @default `(url) => new WebSocket(url)` (the global WebSocket: browsers, Node ≥ 22) */
  createSocket?: (url: string) => WebSocketLike;
  /** Ask for `response.delta` frames. @default true */
  stream?: boolean;
  /** Renew a session token this long before it expires. @default 60000 */
  renewBeforeMs?: number;
  /** Reconnect backoff and bounds (see the resilient client). */
  reconnect?: { baseMs?: number; maxMs?: number; maxAttempts?: number; maxDisconnectedMs?: number };
  /** @default crypto.randomUUID */
  generateId?: () => string;
  /** @default Math.random */
  random?: () => number;
  /** @default Date.now */
  now?: () => number;
}

/** A message sent and not answered yet (also one a previous page load left behind). */
export interface PendingMessage {
  id: string;
  content: string;
  conversation_id: string;
  /** ISO 8601. */
  sent_at: string;
}

export interface RelayClient {
  /** Gets a token and connects; resolves once connected, rejects if the client gives up first. */
  start(): Promise<void>;
  /** Sends `content` in the current (or the given) conversation; returns its request id. */
  send(content: string, options?: { conversation_id?: string }): string;
  /** Stops a generation; its final then carries `finish_reason: "cancelled"`. */
  cancel(requestId: string): void;
  /** Every server frame once, in order (duplicates by `event_id` are dropped). */
  onFrame(listener: (frame: ServerFrame) => void): () => void;
  /** The one final of a request, with the text streamed for it. */
  onFinal(listener: (requestId: string, frame: FinalFrame, streamed: string) => void): () => void;
  onState(listener: (state: ClientState, detail: StateDetail) => void): () => void;
  /** A request waits for a model worker, `position` ahead of it (see the resilient client). */
  onQueued(listener: (requestId: string, position: number) => void): () => void;
  /** Where a request waiting for a worker is in line; undefined once it streams or ended. */
  queuePosition(requestId: string): number | undefined;
  /** The text streamed so far for a request still in flight. */
  text(requestId: string): string;
  /** Messages sent and not answered by a final yet, oldest first. */
  pending(): PendingMessage[];
  /** The conversation `send` uses (kept in storage). */
  readonly conversationId: string;
  /** Starts a new conversation and returns its id. */
  newConversation(): string;
  /** Makes `conversationId` the current one. */
  switchConversation(conversationId: string): void;
  /** `GET /api/v1/conversations`: newest first. */
  conversations(): Promise<ConversationSummary[]>;
  /** `GET /api/v1/conversations/<id>` (@default the current one): oldest first. */
  history(conversationId?: string): Promise<Conversation>;
  readonly state: ClientState;
  /** The session the client connects with, once it has one. */
  readonly session: Session | undefined;
  /** Stops reconnecting, renewing and closes the connection. Idempotent. */
  close(): Promise<void>;
}

const EVENT_ID = /^\d{1,20}-\d{1,20}$/;
const CONVERSATION_ID = /^[\w.:-]{1,64}$/;
/** Un-answered messages kept across page loads at most. */
const PENDING_KEPT = 50;

function identityOf(options: RelayClientOptions): Identity {
  if (options.issue !== undefined) return { mode: 'issued', issue: options.issue };
  if (options.identity !== undefined) {
    if (!options.site) throw new TypeError('a signed identity needs its site');
    return { mode: 'signed', site: options.site, identity: options.identity };
  }
  if (options.userid !== undefined) return { mode: 'dev', userid: options.userid };
  if (options.site) {
    return {
      mode: 'anonymous',
      site: options.site,
      ...(options.captcha ? { captcha: options.captcha } : {}),
    };
  }
  throw new TypeError('RelayClient needs a site (anonymous or signed) or a userid (dev mode)');
}

/** What the default storage key names: the site, or the mode for identities without one. */
function storageScope(identity: Identity): string {
  return identity.mode === 'dev' || identity.mode === 'issued' ? identity.mode : identity.site;
}

function isPending(value: unknown): value is PendingMessage {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === 'string' &&
    typeof v.content === 'string' &&
    typeof v.conversation_id === 'string' &&
    typeof v.sent_at === 'string'
  );
}

/**
 * The relay's client SDK: identity (anonymous, signed or dev tokens, renewed before they expire and
 * after the gateway refuses one), a connection that survives (reconnect with jittered backoff,
 * resend of un-acked messages by `id`, resume by `event_id`, duplicates dropped), conversations and
 * their history. Page loads are survived through `storage`: the anonymous token, the resume point
 * and un-answered messages are kept there.
 */
export function createRelayClient(options: RelayClientOptions): RelayClient {
  const identity = identityOf(options);
  const fetchImpl: FetchLike = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
  const now = options.now ?? Date.now;
  const generateId = options.generateId ?? (() => crypto.randomUUID());
  const prefix = options.storageKey ?? `relay:${storageScope(identity)}`;
  const stored = storedValues(options.storage ?? memoryStorage(), prefix);
  const base = options.url.replace(/\/+$/, '');
  const wsUrl = `${base.replace(/^http/, 'ws')}/ws`;

  const tokens = createTokenSource({
    url: base,
    identity,
    fetch: fetchImpl,
    stored,
    now,
    ...(options.renewBeforeMs !== undefined ? { renewBeforeMs: options.renewBeforeMs } : {}),
  });
  const history = createHistoryClient({
    url: base,
    fetch: fetchImpl,
    token: async (refresh) => (await tokens.get({ refresh })).token,
  });

  /** Conversations this client started and sent nothing in yet: their history is empty, no need to ask. */
  const unused = new Set<string>();
  const kept = stored.get('conversation') as { id?: unknown; used?: unknown } | undefined;
  let conversationId: string;
  if (typeof kept?.id === 'string' && CONVERSATION_ID.test(kept.id)) {
    conversationId = kept.id;
    if (kept.used === false) unused.add(conversationId);
  } else {
    conversationId = newId();
    unused.add(conversationId);
  }
  const keepConversation = () =>
    stored.set('conversation', { id: conversationId, used: !unused.has(conversationId) });
  keepConversation();

  const keptPending = stored.get('pending');
  const pending = new Map<string, PendingMessage>(
    (Array.isArray(keptPending) ? keptPending.filter(isPending) : []).map((p) => [p.id, p]),
  );

  function newId(): string {
    return `c-${generateId()}`.slice(0, 64);
  }

  const client = createResilientClient({
    url: wsUrl,
    ...(identity.mode === 'dev' ? { userid: identity.userid } : {}),
    getToken: async ({ refresh }) => {
      const session = await tokens.get({ refresh });
      scheduleRenewal();
      return { token: session.token, userid: session.userid };
    },
    resumePoint: (userid) => {
      const kept = stored.get(`event:${userid}`);
      return typeof kept === 'string' && EVENT_ID.test(kept) ? kept : undefined;
    },
    createSocket:
      options.createSocket ??
      ((url) => {
        const ws = new WebSocket(url);
        ws.binaryType = 'arraybuffer';
        return ws as unknown as WebSocketLike;
      }),
    generateId,
    ...(options.stream !== undefined ? { stream: options.stream } : {}),
    ...(options.random ? { random: options.random } : {}),
    now,
    ...(options.reconnect?.baseMs !== undefined ? { reconnectBaseMs: options.reconnect.baseMs } : {}),
    ...(options.reconnect?.maxMs !== undefined ? { reconnectMaxMs: options.reconnect.maxMs } : {}),
    ...(options.reconnect?.maxAttempts !== undefined
      ? { maxReconnectAttempts: options.reconnect.maxAttempts }
      : {}),
    ...(options.reconnect?.maxDisconnectedMs !== undefined
      ? { maxDisconnectedMs: options.reconnect.maxDisconnectedMs }
      : {}),
  });

  function savePending(): void {
    stored.set('pending', [...pending.values()].slice(-PENDING_KEPT));
  }

  // The resume point is kept at acks and finals: a page that reloads mid-answer replays that
  // answer's deltas from its start, which is what it needs to show it again.
  client.onFrame((frame) => {
    if (frame.type !== 'ack' && frame.type !== 'response' && frame.type !== 'error') return;
    const userid = client.userid;
    const eventId = client.lastEventId;
    if (userid !== undefined && eventId !== undefined) stored.set(`event:${userid}`, eventId);
  });
  client.onFinal((requestId) => {
    if (pending.delete(requestId)) savePending();
  });

  // Renew ahead of expiry while running, so a reconnect or a history call never waits for /token.
  let renewTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  function scheduleRenewal(): void {
    if (renewTimer !== undefined) clearTimeout(renewTimer);
    renewTimer = undefined;
    const at = tokens.renewAt();
    if (closed || at === undefined) return;
    // setTimeout's ceiling is 2^31-1 ms; a long-lived token is renewed in steps.
    const delay = Math.min(Math.max(0, at - now()), 2_147_483_647);
    renewTimer = setTimeout(() => {
      renewTimer = undefined;
      tokens.get().then(scheduleRenewal, () => {
        // Not now (offline, rate limited): the next connect or history call asks again.
        renewTimer = setTimeout(scheduleRenewal, 30_000);
      });
    }, delay);
  }

  let restored = false;
  function restorePending(): void {
    if (restored) return;
    restored = true;
    // Sent again under the same id: the gateway answers an id once, and a final that came while
    // the page was away arrives by resume.
    for (const p of pending.values())
      client.send(p.content, { id: p.id, conversation_id: p.conversation_id });
  }

  return {
    start() {
      restorePending();
      return client.start();
    },
    send(content, sendOptions = {}) {
      const conversation = sendOptions.conversation_id ?? conversationId;
      const id = client.send(content, { conversation_id: conversation });
      if (unused.delete(conversation)) keepConversation();
      pending.set(id, { id, content, conversation_id: conversation, sent_at: new Date(now()).toISOString() });
      savePending();
      return id;
    },
    cancel: (requestId) => client.cancel(requestId),
    onFrame: (listener) => client.onFrame(listener),
    onFinal: (listener) => client.onFinal(listener),
    onState: (listener) => client.onState(listener),
    onQueued: (listener) => client.onQueued(listener),
    queuePosition: (requestId) => client.queuePosition(requestId),
    text: (requestId) => client.text(requestId),
    pending: () => [...pending.values()],
    get conversationId() {
      return conversationId;
    },
    newConversation() {
      conversationId = newId();
      unused.add(conversationId);
      keepConversation();
      return conversationId;
    },
    switchConversation(id) {
      if (!CONVERSATION_ID.test(id)) throw new TypeError('not a conversation id');
      conversationId = id;
      keepConversation();
    },
    conversations: () => history.list(),
    history: async (id = conversationId) =>
      unused.has(id) ? { conversation_id: id, messages: [] } : history.get(id),
    get state() {
      return client.state;
    },
    get session() {
      return tokens.current;
    },
    async close() {
      closed = true;
      if (renewTimer !== undefined) clearTimeout(renewTimer);
      renewTimer = undefined;
      await client.close();
    },
  };
}
