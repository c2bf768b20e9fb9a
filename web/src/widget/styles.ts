import { MESSAGE_CSS } from '../shared/message-styles.js';

/** Everything the widget shows, scoped to its shadow root: nothing leaks out, host CSS cannot get in. */
export const WIDGET_CSS = `
:host { all: initial; }
.rc {
  --rc-accent: #4f46e5; --rc-accent-fg: #fff;
  --rc-bg: #ffffff; --rc-fg: #18181b; --rc-muted: #71717a; --rc-border: #e4e4e7;
  --rc-bubble: #f4f4f5; --rc-user-bg: var(--rc-accent); --rc-user-fg: var(--rc-accent-fg);
  --rc-code-bg: rgba(127, 127, 127, 0.14); --rc-danger: #dc2626; --rc-ok: #16a34a; --rc-warn: #d97706;
  --rc-shadow: 0 12px 40px rgba(24, 24, 27, 0.18), 0 2px 8px rgba(24, 24, 27, 0.08);
  font: 14.5px/1.45 ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--rc-fg); -webkit-font-smoothing: antialiased; text-align: left;
}
.rc[data-theme="dark"] {
  --rc-bg: #18181b; --rc-fg: #f4f4f5; --rc-muted: #a1a1aa; --rc-border: #3f3f46; --rc-bubble: #27272a;
  --rc-link: color-mix(in srgb, var(--rc-accent) 50%, #fff);
  --rc-shadow: 0 12px 40px rgba(0, 0, 0, 0.5);
}
@media (prefers-color-scheme: dark) {
  .rc[data-theme="auto"] {
    --rc-bg: #18181b; --rc-fg: #f4f4f5; --rc-muted: #a1a1aa; --rc-border: #3f3f46; --rc-bubble: #27272a;
    --rc-link: color-mix(in srgb, var(--rc-accent) 50%, #fff);
    --rc-shadow: 0 12px 40px rgba(0, 0, 0, 0.5);
  }
}
*, *::before, *::after { box-sizing: border-box; }
button { font: inherit; color: inherit; cursor: pointer; }
button:focus-visible, textarea:focus-visible, .messages:focus-visible {
  outline: 2px solid var(--rc-accent); outline-offset: 2px;
}
[hidden] { display: none !important; }

.launcher {
  position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
  width: 56px; height: 56px; border-radius: 50%; border: 0; padding: 0;
  background: var(--rc-accent); color: var(--rc-accent-fg); box-shadow: var(--rc-shadow);
  display: grid; place-items: center; transition: transform 0.15s ease;
}
.launcher:hover { transform: scale(1.06); }
.launcher svg { width: 26px; height: 26px; }

.panel {
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--rc-bg); color: var(--rc-fg);
}
.rc[data-layout="floating"] .panel {
  position: fixed; right: 20px; bottom: 88px; z-index: 2147483000;
  width: 380px; height: min(620px, calc(100vh - 110px)); max-height: calc(100vh - 110px);
  border: 1px solid var(--rc-border); border-radius: 16px; box-shadow: var(--rc-shadow);
}
.rc[data-layout="inline"] .panel { width: 100%; height: 100%; border: 1px solid var(--rc-border); border-radius: 12px; }
.rc[data-layout="inline"] .close { display: none; }

header {
  display: flex; align-items: center; gap: 8px; padding: 12px 12px 12px 16px;
  border-bottom: 1px solid var(--rc-border);
}
.title { flex: 1; min-width: 0; display: flex; flex-direction: column; }
.title strong { font-size: 15px; font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.status { display: inline-flex; align-items: center; gap: 6px; font-size: 12px; color: var(--rc-muted); }
.dot { width: 7px; height: 7px; border-radius: 50%; background: var(--rc-muted); }
.status[data-state="open"] .dot { background: var(--rc-ok); }
.status[data-state="connecting"] .dot, .status[data-state="reconnecting"] .dot { background: var(--rc-warn); }
.status[data-state="closed"] .dot { background: var(--rc-danger); }
.icon {
  width: 34px; height: 34px; border-radius: 8px; border: 0; background: transparent;
  display: grid; place-items: center; color: var(--rc-muted);
}
.icon:hover { background: var(--rc-bubble); color: var(--rc-fg); }
.icon svg { width: 18px; height: 18px; }

.notice {
  margin: 10px 12px 0; padding: 8px 12px; border-radius: 10px; font-size: 13px;
  background: color-mix(in srgb, var(--rc-danger) 12%, transparent); color: var(--rc-fg);
  border: 1px solid color-mix(in srgb, var(--rc-danger) 35%, transparent);
}
.notice[data-code="rate_limited"] {
  background: color-mix(in srgb, var(--rc-warn) 12%, transparent);
  border-color: color-mix(in srgb, var(--rc-warn) 35%, transparent);
}

.messages { flex: 1; overflow-y: auto; padding: 16px 14px 4px; overscroll-behavior: contain; }
.empty { color: var(--rc-muted); text-align: center; margin: 28% 12px 0; font-size: 14px; }
.empty strong { display: block; color: var(--rc-fg); font-size: 16px; margin-bottom: 4px; }

.composer {
  display: flex; align-items: flex-end; gap: 8px; margin: 8px 12px 12px; padding: 6px 6px 6px 12px;
  border: 1px solid var(--rc-border); border-radius: 14px; background: var(--rc-bg);
}
.composer:focus-within { border-color: var(--rc-accent); }
textarea {
  flex: 1; resize: none; border: 0; outline: none; background: transparent; color: var(--rc-fg);
  font: inherit; line-height: 1.4; padding: 6px 0; max-height: 140px; min-height: 22px;
}
textarea::placeholder { color: var(--rc-muted); }
textarea:focus-visible { outline: none; }
.send, .stop {
  flex: none; width: 34px; height: 34px; border-radius: 10px; border: 0; display: grid; place-items: center;
  background: var(--rc-accent); color: var(--rc-accent-fg);
}
.send:disabled { opacity: 0.4; cursor: default; }
.stop { background: var(--rc-fg); color: var(--rc-bg); }
.send svg, .stop svg { width: 16px; height: 16px; }
.footer { text-align: center; font-size: 11px; color: var(--rc-muted); margin: -6px 0 8px; }

@media (max-width: 480px) {
  .rc[data-layout="floating"] .panel {
    inset: 0; width: 100%; height: 100%; max-height: none; border-radius: 0; border: 0;
  }
  .rc[data-layout="floating"][data-open="true"] .launcher { display: none; }
  textarea { font-size: 16px; }
}
${MESSAGE_CSS}
`;
