import {
  createRelayClient,
  memoryStorage,
  type ClientState,
  type ConversationSummary,
  type RelayClient,
  type StorageLike,
} from '@relay/client';
import { createChatController, type ChatController } from '../shared/chat-controller.js';
import { errorText } from '../shared/errors.js';
import { renderMarkdown } from '../shared/markdown.js';
import { MESSAGE_CSS } from '../shared/message-styles.js';
import { createMessageList } from '../shared/messages.js';

/**
 * chat.js, the chat page (websocket-server/public/index.html): the demo site's anonymous visitor by
 * default, dev mode with `?userid=` (when the relay has dev tokens on), another site with `?site=`.
 * Same origin as the relay.
 */
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  status: $<HTMLElement>('status'),
  statusText: $<HTMLElement>('status-text'),
  model: $<HTMLElement>('model'),
  notice: $<HTMLElement>('notice'),
  log: $<HTMLElement>('log'),
  live: $<HTMLElement>('live'),
  form: $<HTMLFormElement>('composer'),
  input: $<HTMLTextAreaElement>('input'),
  send: $<HTMLButtonElement>('send'),
  stop: $<HTMLButtonElement>('stop'),
  newChat: $<HTMLButtonElement>('new-chat'),
  list: $<HTMLUListElement>('conversations'),
  title: $<HTMLElement>('conversation-title'),
  who: $<HTMLElement>('who'),
  menu: $<HTMLButtonElement>('menu'),
  app: $<HTMLElement>('app'),
};

const style = document.createElement('style');
style.textContent = MESSAGE_CSS;
document.head.append(style);

function localStore(): StorageLike {
  try {
    window.localStorage.setItem('__relay_probe__', '1');
    window.localStorage.removeItem('__relay_probe__');
    return window.localStorage;
  } catch {
    return memoryStorage();
  }
}

const STATE_TEXT: Record<ClientState, string> = {
  idle: 'Starting…',
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected',
};

const params = new URLSearchParams(location.search);
const devUserid = params.get('userid') ?? undefined;
const site = params.get('site') ?? 'demo';

const list = createMessageList(ui.log, {
  render: renderMarkdown,
  empty: () => {
    const box = document.createElement('div');
    box.className = 'empty';
    box.innerHTML = '<h2>How can I help?</h2><p>Ask anything. Answers stream in as they are written.</p>';
    return box;
  },
});

let client: RelayClient;
let controller: ChatController;
let busy = false;
let conversations: ConversationSummary[] = [];

function showNotice(notice: { code: string; message: string } | undefined): void {
  ui.notice.hidden = !notice;
  ui.notice.textContent = notice?.message ?? '';
  if (notice) ui.notice.dataset.code = notice.code;
  else delete ui.notice.dataset.code;
}

function syncComposer(): void {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.send.disabled = ui.input.value.trim() === '';
}

function renderConversations(): void {
  const current = client.conversationId;
  const items = [...conversations];
  if (!items.some((c) => c.conversation_id === current)) {
    items.unshift({
      conversation_id: current,
      title: 'New conversation',
      updated_at: new Date().toISOString(),
    });
  }
  ui.list.replaceChildren(
    ...items.map((c) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'conversation';
      button.dataset.conversationId = c.conversation_id;
      if (c.conversation_id === current) button.setAttribute('aria-current', 'true');
      const title = document.createElement('span');
      title.className = 'conversation-title';
      title.textContent = c.title || 'Untitled';
      const when = document.createElement('time');
      when.dateTime = c.updated_at;
      when.textContent = new Date(c.updated_at).toLocaleString([], {
        dateStyle: 'medium',
        timeStyle: 'short',
      });
      button.append(title, when);
      button.addEventListener('click', () => void open(c.conversation_id));
      li.append(button);
      return li;
    }),
  );
  ui.title.textContent = items.find((c) => c.conversation_id === current)?.title || 'New conversation';
}

async function refreshConversations(): Promise<void> {
  try {
    conversations = await client.conversations();
  } catch {
    // The list is a convenience; the open conversation keeps working.
  }
  renderConversations();
}

function setDrawer(open: boolean): void {
  ui.app.dataset.drawer = open ? 'open' : 'closed';
  ui.menu.setAttribute('aria-expanded', String(open));
}

async function open(conversationId: string): Promise<void> {
  setDrawer(false);
  await controller.show(conversationId);
  renderConversations();
  ui.input.focus();
}

function boot(mode: 'dev' | 'anonymous'): void {
  client = createRelayClient({
    url: location.origin + location.pathname.replace(/[^/]*$/, '').replace(/\/$/, ''),
    ...(mode === 'dev' && devUserid ? { userid: devUserid } : { site }),
    storage: localStore(),
  });
  controller = createChatController({
    client,
    list,
    onBusy: (b) => {
      busy = b;
      syncComposer();
    },
    onAnswer: (text) => {
      ui.live.textContent = text;
      void refreshConversations();
    },
    onNotice: showNotice,
    onState: (state) => {
      ui.status.dataset.state = state;
      const session = client.session;
      ui.statusText.textContent = STATE_TEXT[state];
      if (state === 'open' && session) {
        ui.who.textContent =
          session.mode === 'dev'
            ? `dev user ${session.userid}`
            : `${session.mode} visitor on ${session.site ?? site}`;
        ui.who.title = session.userid;
      }
    },
  });
  client.start().then(
    () => refreshConversations(),
    (err: unknown) => {
      const code = (err as { code?: unknown }).code;
      // Dev tokens are off on this relay: the demo site's anonymous visitor instead.
      if (mode === 'dev' && (code === 'dev_tokens_disabled' || code === 'not_found')) {
        void client.close().then(() => {
          showNotice({
            code: 'dev_tokens_disabled',
            message: 'Dev tokens are off on this relay: chatting as an anonymous visitor.',
          });
          boot('anonymous');
        });
        return;
      }
      showNotice({
        code: typeof code === 'string' ? code : 'closed',
        message: errorText(typeof code === 'string' ? code : undefined, "Can't reach the chat service."),
      });
    },
  );
  void controller.show(client.conversationId).then(renderConversations);
}

async function loadModel(): Promise<void> {
  try {
    const response = await fetch('health');
    const health = (await response.json()) as { model?: unknown };
    if (typeof health.model === 'string') {
      ui.model.textContent = health.model;
      ui.model.classList.toggle('mock', /mock/i.test(health.model));
      ui.model.hidden = false;
    }
  } catch {
    ui.model.hidden = true;
  }
}

function autosize(): void {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

ui.input.addEventListener('input', () => {
  autosize();
  syncComposer();
});
ui.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});
ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (busy || controller.send(ui.input.value) === undefined) return;
  ui.input.value = '';
  autosize();
  syncComposer();
  renderConversations();
});
ui.stop.addEventListener('click', () => {
  controller.stop();
  ui.input.focus();
});
ui.newChat.addEventListener('click', () => void open(client.newConversation()));
ui.menu.addEventListener('click', () => {
  const opening = ui.app.dataset.drawer !== 'open';
  setDrawer(opening);
  if (opening) ui.newChat.focus();
});
// A tap on the dimmed page beside the drawer (the app's ::after) closes it.
ui.app.addEventListener('click', (event) => {
  if (event.target === ui.app && ui.app.dataset.drawer === 'open') setDrawer(false);
});
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && ui.app.dataset.drawer === 'open') {
    setDrawer(false);
    ui.menu.focus();
  }
});

boot(devUserid ? 'dev' : 'anonymous');
void loadModel();
syncComposer();
ui.input.focus();
