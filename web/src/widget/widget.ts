import {
  createRelayClient,
  memoryStorage,
  type ClientState,
  type RelayClient,
  type StorageLike,
} from '@relay/client';
import { createChatController, type ChatMessageEvent, type ChatNotice } from '../shared/chat-controller.js';
import { createMessageList, plainText, type Renderer } from '../shared/messages.js';
import { RENDERER_EVENT, isRendererDetail } from './renderer-event.js';
import { WIDGET_CSS } from './styles.js';

export type ThemeMode = 'auto' | 'light' | 'dark';

export interface WidgetTheme {
  /** @default 'auto' (follows prefers-color-scheme) */
  mode?: ThemeMode;
  /** Accent colour (launcher, your messages, links), any CSS colour. @default '#4f46e5' */
  accent?: string;
  /** Panel title. @default 'Chat' */
  title?: string;
  /** Shown in an empty conversation. */
  greeting?: string;
}

export interface WidgetOptions {
  site: string;
  /** Signed mode: the host backend's JWT, or a function that fetches a fresh one. */
  identity?: string | (() => Promise<string>);
  /** Place the chat inside this element (an element or a selector) instead of a floating bubble. */
  container?: HTMLElement | string;
  theme?: ThemeMode | WidgetTheme;
  /** The relay's base URL. @default where widget.js was loaded from */
  relay?: string;
}

export interface WidgetEvents {
  open: undefined;
  close: undefined;
  message: ChatMessageEvent;
  state: ClientState;
  error: ChatNotice;
}

const ICONS = {
  chat: '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z"/></svg>',
  close:
    '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>',
  plus: '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" aria-hidden="true"><path d="M12 5v14M5 12h14"/></svg>',
  send: '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d="M12 19V5M5 12l7-7 7 7"/></svg>',
  stop: '<svg viewBox="0 0 24 24" fill="currentColor" aria-hidden="true"><rect x="6" y="6" width="12" height="12" rx="2"/></svg>',
};

const STATE_TEXT: Record<ClientState, string> = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  open: 'Online',
  reconnecting: 'Reconnecting…',
  closed: 'Offline',
};

/** `localStorage` / `sessionStorage`, or memory where the page may not use them (sandboxed frames). */
function webStorage(kind: 'localStorage' | 'sessionStorage'): StorageLike {
  try {
    const storage = window[kind];
    const probe = '__relay_probe__';
    storage.setItem(probe, '1');
    storage.removeItem(probe);
    return storage;
  } catch {
    return memoryStorage();
  }
}

/** The markdown renderer once widget-markdown.js has run (shared by every widget of the page). */
let markdown: Renderer | undefined;
let markdownWaiters: Array<(render: Renderer) => void> | undefined;

/**
 * marked + DOMPurify are most of the widget's weight, and a visitor who never opens the chat does
 * not need them: they come in a second file, loaded on first open, which hands its renderer over
 * with a DOM event (no global). Answers show as plain text until then.
 */
function loadMarkdown(relay: string, onLoaded: (render: Renderer) => void): void {
  if (markdown) return onLoaded(markdown);
  if (markdownWaiters) {
    markdownWaiters.push(onLoaded);
    return;
  }
  markdownWaiters = [onLoaded];
  const onRenderer = (event: Event) => {
    const detail = (event as CustomEvent<unknown>).detail;
    if (!isRendererDetail(detail)) return;
    document.removeEventListener(RENDERER_EVENT, onRenderer);
    markdown = detail.render;
    for (const waiter of markdownWaiters ?? []) waiter(detail.render);
    markdownWaiters = undefined;
  };
  document.addEventListener(RENDERER_EVENT, onRenderer);
  const tag = document.createElement('script');
  tag.src = `${relay}/widget-markdown.js`;
  tag.async = true;
  tag.onload = () => tag.remove();
  tag.onerror = () => {
    // Plain text is still readable; a later open tries again.
    tag.remove();
    document.removeEventListener(RENDERER_EVENT, onRenderer);
    markdownWaiters = undefined;
  };
  document.head.append(tag);
}

export interface Widget {
  open(): void;
  close(): void;
  on<K extends keyof WidgetEvents>(event: K, listener: (payload: WidgetEvents[K]) => void): () => void;
  destroy(): Promise<void>;
}

/**
 * The embeddable chat: a launcher bubble and a panel in a shadow root (or the panel alone inside a
 * host-chosen container). It connects on first open, or at once when it was open before a reload or
 * lives in a container, and shows the conversation kept for the visitor.
 */
export function createWidget(options: WidgetOptions & { relay: string }): Widget {
  const theme: WidgetTheme =
    typeof options.theme === 'string' ? { mode: options.theme } : (options.theme ?? {});
  const container =
    typeof options.container === 'string'
      ? document.querySelector<HTMLElement>(options.container)
      : options.container;
  const inline = !!container;
  const listeners: { [K in keyof WidgetEvents]: Set<(payload: WidgetEvents[K]) => void> } = {
    open: new Set(),
    close: new Set(),
    message: new Set(),
    state: new Set(),
    error: new Set(),
  };
  function emit<K extends keyof WidgetEvents>(event: K, payload: WidgetEvents[K]): void {
    for (const l of listeners[event]) {
      try {
        l(payload);
      } catch (err) {
        // A host listener's bug must not break the chat; the host's console still shows it.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  // An unknown custom-element name: no registry entry needed, and host rules for `div` miss it.
  const host = document.createElement('relay-chat');
  host.setAttribute(
    'style',
    inline
      ? 'all: initial !important; display: block !important; height: 100% !important;'
      : 'all: initial !important;',
  );
  const shadow = host.attachShadow({ mode: 'open' });
  const style = document.createElement('style');
  style.textContent = WIDGET_CSS;
  const root = document.createElement('div');
  root.className = 'rc';
  root.dataset.layout = inline ? 'inline' : 'floating';
  root.dataset.theme = theme.mode ?? 'auto';
  root.dataset.open = 'false';
  if (theme.accent) root.style.setProperty('--rc-accent', theme.accent);
  const title = theme.title ?? 'Chat';
  root.innerHTML = `
    <button class="launcher" type="button" aria-label="Open chat" aria-expanded="false" aria-controls="rc-panel">${ICONS.chat}</button>
    <section class="panel" id="rc-panel" role="dialog" aria-labelledby="rc-title" hidden>
      <header>
        <div class="title">
          <strong id="rc-title"></strong>
          <span class="status" data-state="idle" role="status"><i class="dot" aria-hidden="true"></i><span class="status-text"></span></span>
        </div>
        <button class="icon new" type="button" aria-label="New conversation" title="New conversation">${ICONS.plus}</button>
        <button class="icon close" type="button" aria-label="Close chat" title="Close">${ICONS.close}</button>
      </header>
      <div class="notice" role="alert" hidden></div>
      <div class="messages" role="log" aria-live="off" aria-label="Conversation" tabindex="0"></div>
      <div class="sr-only live" aria-live="polite" aria-atomic="true"></div>
      <form class="composer">
        <label class="sr-only" for="rc-input">Message</label>
        <textarea id="rc-input" rows="1" placeholder="Write a message…" enterkeyhint="send"></textarea>
        <button class="send" type="submit" aria-label="Send message" disabled>${ICONS.send}</button>
        <button class="stop" type="button" aria-label="Stop generating" hidden>${ICONS.stop}</button>
      </form>
    </section>`;
  shadow.append(style, root);
  const $ = <T extends HTMLElement>(selector: string) => root.querySelector(selector) as T;
  const launcher = $<HTMLButtonElement>('.launcher');
  const panel = $<HTMLElement>('.panel');
  const status = $<HTMLElement>('.status');
  const statusText = $<HTMLElement>('.status-text');
  const notice = $<HTMLElement>('.notice');
  const messages = $<HTMLElement>('.messages');
  const live = $<HTMLElement>('.live');
  const form = $<HTMLFormElement>('.composer');
  const input = $<HTMLTextAreaElement>('textarea');
  const send = $<HTMLButtonElement>('.send');
  const stop = $<HTMLButtonElement>('.stop');
  $<HTMLElement>('#rc-title').textContent = title;
  statusText.textContent = STATE_TEXT.idle;
  if (inline) launcher.hidden = true;

  const list = createMessageList(messages, {
    render: plainText,
    empty: () => {
      const box = document.createElement('div');
      box.className = 'empty';
      const strong = document.createElement('strong');
      strong.textContent = theme.greeting ?? 'Hi! How can I help?';
      box.append(strong, document.createTextNode('Ask a question to start the conversation.'));
      return box;
    },
  });

  const session = webStorage('sessionStorage');
  const openKey = `relay:${options.site}:open`;
  const client: RelayClient = createRelayClient({
    url: options.relay,
    site: options.site,
    ...(options.identity !== undefined ? { identity: options.identity } : {}),
    storage: webStorage('localStorage'),
  });

  let busy = false;
  function syncComposer(): void {
    send.hidden = busy;
    stop.hidden = !busy;
    send.disabled = input.value.trim() === '';
  }

  const controller = createChatController({
    client,
    list,
    onBusy: (b) => {
      busy = b;
      syncComposer();
    },
    onMessage: (m) => {
      emit('message', m);
      if (m.error) emit('error', { code: m.error.code, message: m.error.message });
    },
    onAnswer: (text) => {
      // Replacing the text makes the live region read the complete answer once.
      live.textContent = text;
    },
    onNotice: (n) => {
      notice.hidden = !n;
      notice.textContent = n?.message ?? '';
      if (n) notice.dataset.code = n.code;
      else delete notice.dataset.code;
      if (n) emit('error', n);
    },
    onState: (state) => {
      status.dataset.state = state;
      statusText.textContent = STATE_TEXT[state];
      emit('state', state);
    },
  });

  let started = false;
  function start(): void {
    loadMarkdown(options.relay, (render) => list.setRenderer(render));
    if (started) return;
    started = true;
    // Errors reach the visitor as notices (onState/onNotice); the promise is only for callers.
    client.start().catch(() => undefined);
    void controller.show(client.conversationId);
  }

  let isOpen = false;
  function setOpen(next: boolean, focus: boolean): void {
    if (inline || next === isOpen) return;
    isOpen = next;
    panel.hidden = !next;
    root.dataset.open = String(next);
    launcher.setAttribute('aria-expanded', String(next));
    launcher.setAttribute('aria-label', next ? 'Close chat' : 'Open chat');
    launcher.innerHTML = next ? ICONS.close : ICONS.chat;
    try {
      if (next) session.setItem(openKey, '1');
      else session.removeItem(openKey);
    } catch {
      // Remembering the panel across reloads is a nicety.
    }
    if (next) {
      start();
      if (focus) input.focus();
      emit('open', undefined);
    } else {
      if (focus) launcher.focus();
      emit('close', undefined);
    }
  }

  launcher.addEventListener('click', () => setOpen(!isOpen, true));
  $<HTMLButtonElement>('.close').addEventListener('click', () => setOpen(false, true));
  $<HTMLButtonElement>('.new').addEventListener('click', () => {
    void controller.show(client.newConversation());
    input.focus();
  });
  root.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && isOpen) {
      event.stopPropagation();
      setOpen(false, true);
    }
  });
  function autosize(): void {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 140)}px`;
  }
  input.addEventListener('input', () => {
    autosize();
    syncComposer();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (busy) return;
    if (controller.send(input.value) === undefined) return;
    input.value = '';
    autosize();
    syncComposer();
  });
  stop.addEventListener('click', () => {
    controller.stop();
    input.focus();
  });

  (container ?? document.body).append(host);
  if (inline) start();
  else {
    let wasOpen = false;
    try {
      wasOpen = session.getItem(openKey) === '1';
    } catch {
      wasOpen = false;
    }
    if (wasOpen) setOpen(true, false);
  }

  return {
    open: () => setOpen(true, true),
    close: () => setOpen(false, true),
    on(event, listener) {
      listeners[event].add(listener);
      return () => listeners[event].delete(listener);
    },
    async destroy() {
      host.remove();
      await client.close();
    },
  };
}
