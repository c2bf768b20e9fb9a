import type { ClientState, RelayClient, ServerFrame } from '@relay/client';
import { errorText } from './errors.js';
import type { MessageList } from './messages.js';

export interface ChatMessageEvent {
  role: 'user' | 'assistant';
  content: string;
  request_id: string;
  conversation_id: string;
  finish_reason?: string;
  error?: { code: string; message: string };
}

export interface ChatNotice {
  code: string;
  message: string;
}

export interface ChatControllerOptions {
  client: RelayClient;
  list: MessageList;
  /** A request of the shown conversation is in flight (show Stop instead of Send). */
  onBusy?: (busy: boolean) => void;
  onMessage?: (message: ChatMessageEvent) => void;
  /** A complete answer, for the screen reader's live region. */
  onAnswer?: (text: string) => void;
  /** A problem that is not one answer's (a refused origin, a rate limit being retried). */
  onNotice?: (notice: ChatNotice | undefined) => void;
  onState?: (state: ClientState) => void;
}

export interface ChatController {
  send(text: string): string | undefined;
  /** Cancels what is streaming in the shown conversation. */
  stop(): void;
  /** Shows a conversation: its history, then what is still in flight in it. */
  show(conversationId: string): Promise<void>;
  readonly busy: boolean;
}

/** The conversation logic both the widget and the chat page run on a {@link RelayClient}. */
export function createChatController(options: ChatControllerOptions): ChatController {
  const { client, list } = options;
  /** Requests in flight, by id → their conversation. */
  const inFlight = new Map<string, string>();
  let shown = client.conversationId;
  let loading = 0;
  /** The notice on screen, if any: a retry notice ends with the request it was about. */
  let noticeCode: string | undefined;
  function notice(next: ChatNotice | undefined): void {
    noticeCode = next?.code;
    options.onNotice?.(next);
  }

  for (const p of client.pending()) inFlight.set(p.id, p.conversation_id);

  function busyHere(): boolean {
    for (const conversation of inFlight.values()) if (conversation === shown) return true;
    return false;
  }
  const notifyBusy = () => options.onBusy?.(busyHere());

  client.onFrame((frame: ServerFrame) => {
    if (frame.type === 'response.delta' || frame.type === 'response.reset') {
      if (list.has(frame.request_id)) list.update(frame.request_id, client.text(frame.request_id));
      return;
    }
    if (frame.type === 'ack') {
      notice(undefined);
      return;
    }
    if (frame.type === 'error' && frame.event_id === undefined && frame.code === 'rate_limited') {
      // Not final: the client sends it again after a backoff.
      notice({ code: frame.code, message: errorText(frame.code, frame.message) });
    }
  });

  client.onQueued((requestId, position) => {
    if (list.has(requestId)) list.queued(requestId, position);
  });

  client.onFinal((requestId, frame, streamed) => {
    const conversation = inFlight.get(requestId) ?? frame.conversation_id ?? shown;
    inFlight.delete(requestId);
    notifyBusy();
    if (noticeCode === 'rate_limited') notice(undefined);
    if (frame.type === 'response') {
      const finishReason = frame.finish_reason;
      if (conversation === shown || list.has(requestId)) {
        list.finish(requestId, frame.content, { finishReason });
      }
      options.onAnswer?.(frame.finish_reason === 'cancelled' ? `Stopped. ${frame.content}` : frame.content);
      options.onMessage?.({
        role: 'assistant',
        content: frame.content,
        request_id: requestId,
        conversation_id: conversation,
        ...(finishReason !== undefined ? { finish_reason: finishReason } : {}),
      });
    } else {
      const text = errorText(frame.code, frame.message);
      if (conversation === shown || list.has(requestId)) {
        list.finish(requestId, streamed, { error: { code: frame.code, text } });
      }
      options.onAnswer?.(text);
      options.onMessage?.({
        role: 'assistant',
        content: streamed,
        request_id: requestId,
        conversation_id: conversation,
        error: { code: frame.code, message: frame.message },
      });
    }
  });

  client.onState((state, detail) => {
    options.onState?.(state);
    if (state === 'reconnecting' && detail.error) {
      // No token (the relay unreachable, or a CORS refusal, which a page cannot tell apart).
      const code = (detail.error as { code?: unknown }).code;
      const text = errorText(typeof code === 'string' ? code : undefined, "Can't reach the chat service.");
      notice({
        code: typeof code === 'string' ? code : 'network_error',
        message: text.endsWith('…') ? text : `${text} Retrying…`,
      });
    } else if (state === 'closed' && detail.error) {
      const code = (detail.error as { code?: unknown }).code;
      notice({
        code: typeof code === 'string' ? code : 'closed',
        message: errorText(typeof code === 'string' ? code : undefined, "Can't reach the chat service."),
      });
    } else if (state === 'open') {
      notice(undefined);
    }
  });

  return {
    send(text) {
      const content = text.trim();
      if (!content) return undefined;
      const id = client.send(content);
      inFlight.set(id, client.conversationId);
      list.addUser(content, id);
      list.startAssistant(id);
      options.onMessage?.({ role: 'user', content, request_id: id, conversation_id: client.conversationId });
      notifyBusy();
      return id;
    },
    stop() {
      for (const [id, conversation] of inFlight) if (conversation === shown) client.cancel(id);
    },
    async show(conversationId) {
      const ticket = ++loading;
      if (client.conversationId !== conversationId) client.switchConversation(conversationId);
      shown = conversationId;
      notifyBusy();
      let history: Awaited<ReturnType<RelayClient['history']>> | undefined;
      try {
        history = await client.history(conversationId);
      } catch (err) {
        if (ticket !== loading) return;
        const code = (err as { code?: unknown }).code;
        notice({
          code: typeof code === 'string' ? code : 'history_failed',
          message: errorText(typeof code === 'string' ? code : undefined, "Couldn't load this conversation."),
        });
      }
      // A later show() won: its conversation is the one on screen.
      if (ticket !== loading) return;
      list.clear();
      const answered = new Set<string>();
      for (const m of history?.messages ?? []) {
        if (m.role === 'user') list.addUser(m.content, m.request_id ?? undefined);
        else {
          list.addAssistant(m.content, m.request_id ?? undefined);
          if (m.request_id) answered.add(m.request_id);
        }
      }
      for (const p of client.pending()) {
        if (p.conversation_id !== conversationId || answered.has(p.id)) continue;
        list.addUser(p.content, p.id);
        list.startAssistant(p.id);
        const sofar = client.text(p.id);
        if (sofar) list.update(p.id, sofar);
        else {
          const position = client.queuePosition(p.id);
          if (position !== undefined) list.queued(p.id, position);
        }
      }
    },
    get busy() {
      return busyHere();
    },
  };
}
