/** Markdown → what to show; the widget starts with plain text until its renderer has loaded. */
export type Renderer = (markdown: string) => Node;

/** Plain text, line breaks kept: what an answer looks like before markdown is available. */
export const plainText: Renderer = (text) => {
  const p = document.createElement('p');
  p.className = 'plain';
  p.textContent = text;
  return p;
};

/** What a request waiting for a model worker shows; 0 ahead reads better as "next in line". */
export function waitingText(position: number): string {
  return position === 0 ? 'Waiting (next in line)' : `Waiting (${position} ahead)`;
}

export interface FinishDetail {
  finishReason?: string | undefined;
  error?: { code?: string | undefined; text: string } | undefined;
}

/**
 * The message list of a chat, shared by the widget and the chat page. User text is shown as text;
 * assistant text as sanitised markdown, re-rendered at most once per frame while it streams.
 */
export interface MessageList {
  addUser(text: string, requestId?: string): void;
  /** An assistant message that waits for its first delta (a typing indicator until then). */
  startAssistant(requestId: string): void;
  /**
   * The request waits for a model worker, `position` ahead of it: "Waiting (n ahead)" beside the
   * typing indicator, announced politely, until the first text replaces both.
   */
  queued(requestId: string, position: number): void;
  update(requestId: string, text: string): void;
  finish(requestId: string, text: string, detail?: FinishDetail): void;
  /** An assistant message from history: already final. */
  addAssistant(text: string, requestId?: string): void;
  has(requestId: string): boolean;
  clear(): void;
  readonly empty: boolean;
  /** Renders every assistant message again with `render` from now on (markdown has loaded). */
  setRenderer(render: Renderer): void;
}

export function createMessageList(
  root: HTMLElement,
  options: { empty?: () => Node; render: Renderer },
): MessageList {
  let renderer = options.render;
  /** Every assistant message shown, for a re-render with a new renderer. */
  const shown: Array<{ body: HTMLElement; text: string }> = [];
  const doc = root.ownerDocument;
  const assistants = new Map<string, { el: HTMLElement; body: HTMLElement; text: string; frame: number }>();
  let emptyNode: Node | undefined;

  function el(tag: string, className: string): HTMLElement {
    const node = doc.createElement(tag);
    node.className = className;
    return node;
  }

  function showEmpty(): void {
    if (!options.empty || emptyNode || root.querySelector('.msg')) return;
    emptyNode = options.empty();
    root.append(emptyNode);
  }
  function hideEmpty(): void {
    emptyNode?.parentNode?.removeChild(emptyNode);
    emptyNode = undefined;
  }

  /** Keeps the newest message in view unless the reader scrolled up to read. */
  function append(node: HTMLElement): void {
    hideEmpty();
    const atBottom = root.scrollHeight - root.scrollTop - root.clientHeight < 40;
    root.append(node);
    if (atBottom) root.scrollTop = root.scrollHeight;
  }
  function follow(): void {
    if (root.scrollHeight - root.scrollTop - root.clientHeight < 120) root.scrollTop = root.scrollHeight;
  }

  function render(entry: { body: HTMLElement; text: string }): void {
    entry.body.replaceChildren(renderer(entry.text));
    follow();
  }

  function assistant(requestId: string | undefined): { el: HTMLElement; body: HTMLElement } {
    const node = el('div', 'msg assistant');
    if (requestId) node.dataset.requestId = requestId;
    const body = el('div', 'body');
    node.append(body);
    return { el: node, body };
  }

  showEmpty();

  return {
    addUser(text, requestId) {
      const node = el('div', 'msg user');
      if (requestId) node.dataset.requestId = requestId;
      const body = el('div', 'body');
      body.textContent = text;
      node.append(body);
      append(node);
    },
    startAssistant(requestId) {
      if (assistants.has(requestId)) return;
      const { el: node, body } = assistant(requestId);
      node.dataset.final = 'false';
      const typing = el('span', 'typing');
      typing.setAttribute('aria-hidden', 'true');
      typing.append(el('i', ''), el('i', ''), el('i', ''));
      // In the page from the start and empty: a live region that appears with its text in it is
      // not read by every screen reader. The log itself is aria-live="off" (no token-by-token).
      const waiting = el('span', 'waiting');
      waiting.setAttribute('role', 'status');
      waiting.setAttribute('aria-live', 'polite');
      waiting.setAttribute('aria-atomic', 'true');
      body.append(typing, waiting);
      const entry = { el: node, body, text: '', frame: 0 };
      assistants.set(requestId, entry);
      shown.push(entry);
      append(node);
    },
    queued(requestId, position) {
      const entry = assistants.get(requestId);
      // Text on screen, or final: it is not waiting any more (a late hint).
      if (!entry || entry.el.dataset.final === 'true' || entry.text !== '') return;
      const waiting = entry.body.querySelector<HTMLElement>('.waiting');
      if (!waiting) return;
      entry.el.dataset.queued = String(position);
      waiting.textContent = waitingText(position);
      follow();
    },
    update(requestId, text) {
      const entry = assistants.get(requestId);
      if (!entry || entry.el.dataset.final === 'true' || text === entry.text) return;
      entry.text = text;
      entry.el.dataset.streaming = 'true';
      delete entry.el.dataset.queued;
      if (entry.frame) return;
      entry.frame = requestAnimationFrame(() => {
        entry.frame = 0;
        render(entry);
      });
    },
    finish(requestId, text, detail = {}) {
      let entry = assistants.get(requestId);
      if (!entry) {
        const made = assistant(requestId);
        entry = { ...made, text: '', frame: 0 };
        assistants.set(requestId, entry);
        shown.push(entry);
        append(made.el);
      }
      if (entry.frame) cancelAnimationFrame(entry.frame);
      entry.frame = 0;
      entry.text = text;
      delete entry.el.dataset.streaming;
      delete entry.el.dataset.queued;
      entry.el.dataset.final = 'true';
      if (text) render(entry);
      else entry.body.replaceChildren();
      if (detail.finishReason) entry.el.dataset.finishReason = detail.finishReason;
      if (detail.finishReason === 'cancelled') {
        const note = el('div', 'note');
        note.textContent = 'Stopped';
        entry.el.append(note);
      }
      if (detail.error) {
        entry.el.classList.add('error');
        if (detail.error.code) entry.el.dataset.code = detail.error.code;
        const note = el('div', 'note');
        note.setAttribute('role', 'alert');
        note.textContent = detail.error.text;
        entry.el.append(note);
      }
      follow();
    },
    addAssistant(text, requestId) {
      const { el: node, body } = assistant(requestId);
      node.dataset.final = 'true';
      body.append(renderer(text));
      const entry = { el: node, body, text, frame: 0 };
      if (requestId) assistants.set(requestId, entry);
      shown.push(entry);
      append(node);
    },
    has: (requestId) => assistants.has(requestId),
    clear() {
      for (const entry of assistants.values()) if (entry.frame) cancelAnimationFrame(entry.frame);
      assistants.clear();
      shown.length = 0;
      root.replaceChildren();
      emptyNode = undefined;
      showEmpty();
    },
    get empty() {
      return !root.querySelector('.msg');
    },
    setRenderer(render) {
      renderer = render;
      // A message still waiting for its first delta keeps its typing indicator.
      for (const entry of shown) if (entry.text) entry.body.replaceChildren(renderer(entry.text));
    },
  };
}
