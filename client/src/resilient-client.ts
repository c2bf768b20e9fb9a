import {
  compareStreamIds,
  isRetryable,
  serverFrameSchema,
  type ErrorFrame,
  type ResponseFrame,
  type ServerFrame,
} from '@relay/common/contract';
import { fullJitter } from './backoff.js';

/** `onmessage = fn` with a parameter type the implementations narrow (method bivariance). */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/**
 * The part of a WebSocket the client uses: the browser's `WebSocket` and the `ws` package's both
 * have it, so the client runs in either without depending on one.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
}

const OPEN = 1;

/** What {@link ResilientClientOptions.getToken} is told about the token it gave last. */
export interface TokenRequest {
  /**
   * The gateway refused the last token (close 1008 `invalid_token`), or the last attempt never
   * opened (a browser cannot see the upgrade's 401, so that is treated the same): get a new one
   * rather than a cached one.
   */
  refresh: boolean;
}

/** A token and the user it is for (anonymous and signed tokens: the server picks the userid). */
export interface TokenGrant {
  token: string;
  userid: string;
}

export interface ResilientClientOptions {
  /** The gateway's WebSocket endpoint, e.g. `ws://localhost:8080/ws`. */
  url: string;
  /** Sent as `?userid=` (the original protocol); optional, the token names its user anyway. */
  userid?: string;
  /**
   * Called before every connection attempt (a token may have expired in between). An error with
   * `retryable: false` (a refused origin, an unknown site) ends the client at once.
   */
  getToken: (request: TokenRequest) => Promise<string | TokenGrant>;
  /**
   * Where to resume a user's stream from when the client first meets that user (the token's
   * userid), e.g. an `event_id` kept across page loads. Called again if the user changes (an
   * anonymous visitor whose token could not be renewed): event ids of one user's stream mean
   * nothing in another's.
   */
  resumePoint?: (userid: string) => string | undefined;
  /** `(url) => new WebSocket(url)`: `ws` in Node, the global `WebSocket` in a browser. */
  createSocket: (url: string) => WebSocketLike;
  /** Ask for `response.delta` frames. @default true */
  stream?: boolean;
  /** Resume point to start from, e.g. kept across page loads. */
  lastEventId?: string;
  /** Ceiling of the first reconnect delay; doubles per failed attempt (full jitter). @default 250 */
  reconnectBaseMs?: number;
  /** @default 10000 */
  reconnectMaxMs?: number;
  /** Consecutive failed connection attempts before the client gives up. @default 20 */
  maxReconnectAttempts?: number;
  /** Longest time without an open connection before the client gives up. @default 120000 */
  maxDisconnectedMs?: number;
  /** Sends of one message the gateway refuses with a retryable code before it counts as failed. @default 10 */
  maxSendAttempts?: number;
  /** @default Math.random */
  random?: () => number;
  /** Idempotency keys for messages (≤ 64 chars of `[\w.:-]`). @default crypto.randomUUID */
  generateId?: () => string;
  /** @default Date.now */
  now?: () => number;
}

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateDetail {
  /** The user of the connection (state `open`), when known. */
  userid?: string;
  /** Close code and reason of the connection that was lost. */
  code?: number;
  reason?: string;
  /** Why the client gave up (state `closed` without `close()`). */
  error?: Error;
}

export type FinalFrame = ResponseFrame | ErrorFrame;

export interface SendOptions {
  conversation_id?: string;
  /**
   * The message's idempotency key, to send again a message an earlier client (a page before a
   * reload) sent: the gateway answers one `id` once. @default a new one from `generateId`
   */
  id?: string;
}

export interface ResilientClient {
  /** Connects; resolves once the first connection is open, rejects if the client gives up before. */
  start(): Promise<void>;
  /**
   * Queues a message and returns its `request_id` (the message's `id`). It is sent now when
   * connected, and again after every reconnect until the gateway acks it.
   */
  send(content: string, options?: SendOptions): string;
  /** Asks the gateway to stop a generation; its final then says `finish_reason: "cancelled"`. */
  cancel(requestId: string): void;
  /** Every frame, once (duplicates by `event_id` are dropped), in order. */
  onFrame(listener: (frame: ServerFrame) => void): () => void;
  /**
   * The one final frame of a request (`response`, or `error`), with the deltas streamed for it since
   * its last reset. An `error` here is final: the gateway refused the message for good, or the
   * generation failed.
   */
  onFinal(listener: (requestId: string, frame: FinalFrame, streamed: string) => void): () => void;
  onState(listener: (state: ClientState, detail: StateDetail) => void): () => void;
  /**
   * A request waits for a model worker: `position` requests are ahead of it (0: it is next). Only
   * while streaming is on, only before its first delta, throttled by the server and sent on change.
   * Its deltas (or its final) end the wait; nothing more is said about it here then.
   */
  onQueued(listener: (requestId: string, position: number) => void): () => void;
  /** The last position a request waiting for a worker was told; undefined once it streams or ended. */
  queuePosition(requestId: string): number | undefined;
  /** Deltas received for a request that is still streaming, since its last reset. */
  text(requestId: string): string;
  /** Requests sent and not answered by a final yet. */
  pending(): string[];
  readonly state: ClientState;
  /** The highest `event_id` seen: where a reconnect resumes. */
  readonly lastEventId: string | undefined;
  /** The user of the last token, once one was had. */
  readonly userid: string | undefined;
  /** Stops reconnecting and closes the connection. Idempotent. */
  close(): Promise<void>;
}

interface Outgoing {
  id: string;
  content: string;
  conversationId: string | undefined;
  acked: boolean;
  /** Sends the gateway refused with a retryable code. */
  refusals: number;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
}

/** Finals remembered so a late duplicate cannot end a request twice. */
const FINALS_REMEMBERED = 10_000;

function decode(data: unknown): string | undefined {
  if (typeof data === 'string') return data;
  // `ws` with binaryType 'nodebuffer' (a Uint8Array), or a browser with binaryType 'arraybuffer'.
  if (data instanceof ArrayBuffer || data instanceof Uint8Array) return new TextDecoder().decode(data);
  return undefined;
}

/**
 * A gateway client that survives lost connections (SPEC §7 from the client's side): it reconnects
 * with full-jitter backoff, resumes with `last_event_id` (the highest `event_id` seen), drops frames
 * it already has, resends messages the gateway has not acked under the same `id` (so they are
 * published once), and starts a request's text over on `response.reset`. Bounded: it gives up after
 * `maxReconnectAttempts` failed attempts in a row or `maxDisconnectedMs` without a connection.
 */
export function createResilientClient(options: ResilientClientOptions): ResilientClient {
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const generateId = options.generateId ?? (() => crypto.randomUUID());
  const baseMs = options.reconnectBaseMs ?? 250;
  const maxMs = options.reconnectMaxMs ?? 10_000;
  const maxAttempts = options.maxReconnectAttempts ?? 20;
  const maxDisconnectedMs = options.maxDisconnectedMs ?? 120_000;
  const maxSendAttempts = options.maxSendAttempts ?? 10;
  const stream = options.stream ?? true;

  const frameListeners = new Set<(frame: ServerFrame) => void>();
  const finalListeners = new Set<(requestId: string, frame: FinalFrame, streamed: string) => void>();
  const stateListeners = new Set<(state: ClientState, detail: StateDetail) => void>();
  const queuedListeners = new Set<(requestId: string, position: number) => void>();

  const outbox = new Map<string, Outgoing>();
  const streamed = new Map<string, string[]>();
  /** Requests waiting for a worker, with their last position; gone at the first delta or the final. */
  const positions = new Map<string, number>();
  const finals = new Set<string>();
  let state: ClientState = 'idle';
  let lastEventId = options.lastEventId;
  let userid = options.userid;
  let resumedFor: string | undefined = options.lastEventId !== undefined ? options.userid : undefined;
  /** The gateway refused the last token, or the last attempt never opened. */
  let refreshToken = false;
  let socket: WebSocketLike | undefined;
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let disconnectedSince: number | undefined;
  let closing: Promise<void> | undefined;
  let firstOpen: { resolve: () => void; reject: (err: Error) => void } | undefined;
  let started: Promise<void> | undefined;

  function setState(next: ClientState, detail: StateDetail = {}): void {
    state = next;
    for (const l of stateListeners) l(next, detail);
  }

  function write(frame: Record<string, unknown>): boolean {
    if (!socket || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  function sendMessage(out: Outgoing): void {
    write({
      type: 'message',
      content: out.content,
      id: out.id,
      ...(out.conversationId !== undefined ? { conversation_id: out.conversationId } : {}),
    });
  }

  function finish(requestId: string, frame: FinalFrame): void {
    if (finals.has(requestId)) return;
    finals.add(requestId);
    if (finals.size > FINALS_REMEMBERED) finals.delete(finals.values().next().value as string);
    const out = outbox.get(requestId);
    if (out?.retryTimer !== undefined) clearTimeout(out.retryTimer);
    outbox.delete(requestId);
    positions.delete(requestId);
    const text = (streamed.get(requestId) ?? []).join('');
    streamed.delete(requestId);
    for (const l of finalListeners) l(requestId, frame, text);
  }

  /** An error about a message that is not in the log: the gateway did not take it. */
  function refused(out: Outgoing, frame: ErrorFrame): void {
    out.refusals++;
    if (!isRetryable(frame.code) || out.refusals >= maxSendAttempts) {
      finish(out.id, frame);
      return;
    }
    if (out.retryTimer !== undefined) clearTimeout(out.retryTimer);
    out.retryTimer = setTimeout(
      () => {
        out.retryTimer = undefined;
        // Not connected: the next open resends it anyway.
        if (outbox.has(out.id) && !out.acked) sendMessage(out);
      },
      fullJitter(out.refusals, baseMs, maxMs, random),
    );
  }

  function onFrame(frame: ServerFrame): void {
    const eventId = 'event_id' in frame ? frame.event_id : undefined;
    if (eventId !== undefined) {
      // The gateway sends a user's frames in event_id order and a resume starts after the highest
      // one seen, so anything at or below it is a copy.
      if (lastEventId !== undefined && compareStreamIds(eventId, lastEventId) <= 0) return;
      lastEventId = eventId;
    }
    switch (frame.type) {
      case 'ack': {
        const out = outbox.get(frame.request_id);
        if (out) out.acked = true;
        break;
      }
      case 'queued':
        // A hint that can arrive late (it is not in the log, so nothing orders it after a
        // reconnect): once the request streams or ended, it is stale.
        if (finals.has(frame.request_id) || streamed.has(frame.request_id)) return;
        positions.set(frame.request_id, frame.position);
        break;
      case 'response.delta': {
        positions.delete(frame.request_id);
        const parts = streamed.get(frame.request_id) ?? [];
        parts.push(frame.delta);
        streamed.set(frame.request_id, parts);
        break;
      }
      case 'response.reset':
        streamed.delete(frame.request_id);
        break;
      default:
        break;
    }
    for (const l of frameListeners) l(frame);
    if (frame.type === 'queued') for (const l of queuedListeners) l(frame.request_id, frame.position);
    if (frame.type === 'response' && frame.request_id !== undefined) finish(frame.request_id, frame);
    if (frame.type === 'error' && frame.request_id !== undefined) {
      if (frame.event_id !== undefined) {
        finish(frame.request_id, frame);
      } else {
        // Not from the log: the gateway refused a send (rate limit, Kafka down, restarting) or a
        // cancel; only the first is about whether the request exists at all.
        const out = outbox.get(frame.request_id);
        if (out && !out.acked) refused(out, frame);
      }
    }
  }

  function onMessage(data: unknown): void {
    const text = decode(data);
    if (text === undefined) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // The gateway only sends JSON; anything else is not ours to interpret.
      return;
    }
    const parsed = serverFrameSchema.safeParse(value);
    // Frame types this client does not know are skipped (new ones are opt-in and additive).
    if (parsed.success) onFrame(parsed.data);
  }

  /** A new user (or the first one): resume where that user's stream was left, not another's. */
  function meet(next: string): void {
    if (next === resumedFor) return;
    if (resumedFor !== undefined) {
      lastEventId = undefined;
      finals.clear();
      streamed.clear();
      positions.clear();
    }
    resumedFor = next;
    userid = next;
    const kept = options.resumePoint?.(next);
    if (kept !== undefined && (lastEventId === undefined || compareStreamIds(kept, lastEventId) > 0)) {
      lastEventId = kept;
    }
  }

  function giveUp(error: Error): void {
    setState('closed', { error });
    firstOpen?.reject(error);
    firstOpen = undefined;
  }

  function scheduleReconnect(detail: StateDetail): void {
    failures++;
    disconnectedSince ??= now();
    if (failures > maxAttempts) return giveUp(new Error(`gave up after ${maxAttempts} reconnect attempts`));
    if (now() - disconnectedSince > maxDisconnectedMs) {
      return giveUp(new Error(`gave up after ${maxDisconnectedMs} ms without a connection`));
    }
    setState('reconnecting', detail);
    reconnectTimer = setTimeout(
      () => {
        reconnectTimer = undefined;
        void connect();
      },
      fullJitter(failures - 1, baseMs, maxMs, random),
    );
  }

  function urlFor(token: string): string {
    const query = new URLSearchParams({ token });
    if (userid !== undefined) query.set('userid', userid);
    query.set(stream ? 'stream' : 'ack', '1');
    if (lastEventId !== undefined) query.set('last_event_id', lastEventId);
    return `${options.url}?${query.toString()}`;
  }

  async function connect(): Promise<void> {
    if (closing) return;
    if (state === 'idle') setState('connecting');
    let token: string;
    try {
      const grant = await options.getToken({ refresh: refreshToken });
      if (typeof grant === 'string') {
        token = grant;
        if (userid !== undefined) meet(userid);
      } else {
        token = grant.token;
        meet(grant.userid);
      }
    } catch (err) {
      if (closing) return;
      const error = err instanceof Error ? err : new Error(String(err));
      // Retrying cannot fix a refused origin or an unknown site: say so now, not after 20 attempts.
      if ((error as { retryable?: unknown }).retryable === false) return giveUp(error);
      scheduleReconnect({ error });
      return;
    }
    if (closing) return;
    refreshToken = true;
    let ws: WebSocketLike;
    try {
      ws = options.createSocket(urlFor(token));
    } catch (err) {
      // A bad URL will not get better, but the bound on attempts ends it like any other failure.
      scheduleReconnect({ error: err instanceof Error ? err : new Error(String(err)) });
      return;
    }
    socket = ws;
    ws.onopen = () => {
      if (socket !== ws) return;
      failures = 0;
      disconnectedSince = undefined;
      refreshToken = false;
      setState('open', userid !== undefined ? { userid } : {});
      firstOpen?.resolve();
      firstOpen = undefined;
      // In the order they were sent; the gateway keeps a socket's order into Kafka.
      for (const out of outbox.values()) {
        if (out.acked) continue;
        if (out.retryTimer !== undefined) clearTimeout(out.retryTimer);
        out.retryTimer = undefined;
        sendMessage(out);
      }
    };
    ws.onmessage = (event) => {
      if (socket === ws) onMessage(event.data);
    };
    ws.onerror = () => {
      // A close event always follows an error; reconnecting is decided there.
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = undefined;
      if (closing) return;
      if (event.code === 1008 && event.reason === 'invalid_token') refreshToken = true;
      scheduleReconnect({ code: event.code, reason: event.reason });
    };
  }

  return {
    start() {
      started ??= new Promise<void>((resolve, reject) => {
        firstOpen = { resolve, reject };
        void connect();
      });
      return started;
    },
    send(content, sendOptions = {}) {
      const id = sendOptions.id ?? generateId();
      const known = outbox.get(id);
      if (known) return known.id;
      const out: Outgoing = {
        id,
        content,
        conversationId: sendOptions.conversation_id,
        acked: false,
        refusals: 0,
        retryTimer: undefined,
      };
      outbox.set(id, out);
      sendMessage(out);
      return id;
    },
    cancel(requestId) {
      write({ type: 'cancel', request_id: requestId });
    },
    onFrame(listener) {
      frameListeners.add(listener);
      return () => frameListeners.delete(listener);
    },
    onFinal(listener) {
      finalListeners.add(listener);
      return () => finalListeners.delete(listener);
    },
    onState(listener) {
      stateListeners.add(listener);
      return () => stateListeners.delete(listener);
    },
    onQueued(listener) {
      queuedListeners.add(listener);
      return () => queuedListeners.delete(listener);
    },
    queuePosition: (requestId) => positions.get(requestId),
    text: (requestId) => (streamed.get(requestId) ?? []).join(''),
    pending: () => [...outbox.keys()],
    get state() {
      return state;
    },
    get lastEventId() {
      return lastEventId;
    },
    get userid() {
      return userid;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (reconnectTimer !== undefined) clearTimeout(reconnectTimer);
        for (const out of outbox.values()) if (out.retryTimer !== undefined) clearTimeout(out.retryTimer);
        firstOpen?.reject(new Error('client closed'));
        firstOpen = undefined;
        const ws = socket;
        socket = undefined;
        setState('closed');
        if (!ws) return resolve();
        ws.onclose = () => resolve();
        ws.close(1000, 'client_closed');
      });
      return closing;
    },
  };
}
