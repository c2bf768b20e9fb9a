import { createWidget, type Widget, type WidgetEvents, type WidgetOptions } from './widget.js';

/**
 * widget.js: `<script src="<relay>/widget.js" data-site="demo" async></script>` shows the chat for
 * site `demo`; `RelayChat.init({ site, identity?, container?, theme? })` is for pages that pass a
 * signed identity or place the chat themselves (then leave `data-site` off, or call init again:
 * a second init replaces the first). A page may call RelayChat before the script has loaded by
 * queueing calls: `window.RelayChat = window.RelayChat || []; RelayChat.push(['init', {...}])`.
 *
 * `RelayChat` is the only global this file defines: everything else lives in this closure.
 */
type Listener = (payload: WidgetEvents[keyof WidgetEvents]) => void;

interface RelayChatApi {
  init(options: WidgetOptions): void;
  open(): void;
  close(): void;
  on<K extends keyof WidgetEvents>(event: K, listener: (payload: WidgetEvents[K]) => void): () => void;
  off<K extends keyof WidgetEvents>(event: K, listener: (payload: WidgetEvents[K]) => void): void;
  destroy(): Promise<void>;
  readonly version: string;
}

const script = document.currentScript as HTMLScriptElement | null;
// The relay is wherever this file came from: `/widget.js` of the relay's origin (or a path prefix).
const relayBase = new URL('.', script?.src || location.href).href.replace(/\/+$/, '');

let widget: Widget | undefined;
/** Listeners by event, kept across init() so a host can subscribe before or after it. */
const subscriptions = new Map<keyof WidgetEvents, Map<Listener, () => void>>();

function subscribe(event: keyof WidgetEvents, listener: Listener): () => void {
  let forEvent = subscriptions.get(event);
  if (!forEvent) subscriptions.set(event, (forEvent = new Map()));
  forEvent.get(listener)?.();
  forEvent.set(listener, widget ? widget.on(event, listener) : () => undefined);
  return () => api.off(event, listener as never);
}

const api: RelayChatApi = {
  init(options) {
    if (typeof options?.site !== 'string' || options.site === '')
      throw new TypeError('RelayChat.init needs a site');
    void widget?.destroy();
    widget = createWidget({ ...options, relay: options.relay ?? relayBase });
    for (const [event, forEvent] of subscriptions) {
      for (const listener of forEvent.keys()) forEvent.set(listener, widget.on(event, listener));
    }
  },
  open: () => widget?.open(),
  close: () => widget?.close(),
  on: (event, listener) => subscribe(event, listener as Listener),
  off(event, listener) {
    const forEvent = subscriptions.get(event);
    forEvent?.get(listener as Listener)?.();
    forEvent?.delete(listener as Listener);
  },
  async destroy() {
    const current = widget;
    widget = undefined;
    await current?.destroy();
  },
  version: '1',
};

const queued: unknown = (window as { RelayChat?: unknown }).RelayChat;
(window as { RelayChat?: unknown }).RelayChat = Object.freeze(api);

function replay(call: unknown): void {
  if (!Array.isArray(call) || typeof call[0] !== 'string') return;
  const [method, ...args] = call as [string, ...unknown[]];
  const fn = (api as unknown as Record<string, unknown>)[method];
  if (typeof fn === 'function') (fn as (...a: unknown[]) => unknown).apply(api, args);
}

const queue = Array.isArray(queued) ? (queued as unknown[]) : [];
const queuedInit = queue.some((call) => Array.isArray(call) && call[0] === 'init');
const site = script?.dataset.site;
const start = () => {
  // Listeners first, wherever they were queued: a page that queued `open` before `on('open')`
  // still hears it.
  const listens = (call: unknown) => Array.isArray(call) && (call[0] === 'on' || call[0] === 'off');
  for (const call of queue.filter(listens)) replay(call);
  if (site && !queuedInit) api.init({ site });
  for (const call of queue.filter((c) => !listens(c))) replay(call);
};
// The panel goes into <body>: wait for it when the script runs in <head> without async.
if (document.body) start();
else document.addEventListener('DOMContentLoaded', start, { once: true });
