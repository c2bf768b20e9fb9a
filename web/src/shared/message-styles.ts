/**
 * Message list styles shared by the widget (inside its shadow root) and the chat page. Colours come
 * from custom properties each of them sets: --rc-fg, --rc-muted, --rc-bubble, --rc-user-bg,
 * --rc-user-fg, --rc-code-bg, --rc-border, --rc-accent, --rc-danger, and --rc-link (@default the accent).
 */
export const MESSAGE_CSS = `
.msg { display: flex; flex-direction: column; max-width: 100%; margin: 0 0 14px; }
.msg .body { overflow-wrap: anywhere; line-height: 1.55; }
.msg .body .plain { white-space: pre-wrap; }
.msg.user { align-items: flex-end; }
.msg.user .body {
  background: var(--rc-user-bg); color: var(--rc-user-fg); padding: 9px 14px;
  border-radius: 18px 18px 4px 18px; max-width: 85%; white-space: pre-wrap;
}
.msg.assistant { align-items: flex-start; }
.msg.assistant .body {
  background: var(--rc-bubble); color: var(--rc-fg); padding: 10px 14px;
  border-radius: 18px 18px 18px 4px; max-width: 92%;
}
.msg.assistant .body:empty { display: none; }
.msg.assistant.error .body { border: 1px solid var(--rc-danger); }
.msg .body > :first-child { margin-top: 0; }
.msg .body > :last-child { margin-bottom: 0; }
.msg .body p, .msg .body ul, .msg .body ol, .msg .body pre, .msg .body blockquote, .msg .body table { margin: 0 0 0.6em; }
.msg .body ul, .msg .body ol { padding-left: 1.3em; }
.msg .body li + li { margin-top: 0.2em; }
.msg .body h1, .msg .body h2, .msg .body h3, .msg .body h4 { font-size: 1.02em; margin: 0.8em 0 0.4em; }
.msg .body a { color: var(--rc-link, var(--rc-accent)); text-decoration: underline; text-underline-offset: 2px; }
.msg .body code {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em;
  background: var(--rc-code-bg); padding: 0.1em 0.35em; border-radius: 5px;
}
.msg .body pre {
  background: var(--rc-code-bg); padding: 10px 12px; border-radius: 10px; overflow-x: auto;
  line-height: 1.45;
}
.msg .body pre code { background: none; padding: 0; font-size: 0.85em; }
.msg .body blockquote { border-left: 3px solid var(--rc-border); padding-left: 10px; color: var(--rc-muted); }
.msg .body table { border-collapse: collapse; display: block; overflow-x: auto; }
.msg .body th, .msg .body td { border: 1px solid var(--rc-border); padding: 4px 8px; }
.msg .body hr { border: 0; border-top: 1px solid var(--rc-border); }
.msg .note { font-size: 0.8em; color: var(--rc-muted); margin: 4px 6px 0; }
.msg.error .note {
  color: var(--rc-fg); font-size: 0.9em; margin: 6px 0 0; padding: 8px 12px; border-radius: 12px;
  background: color-mix(in srgb, var(--rc-danger) 9%, transparent);
  border: 1px solid color-mix(in srgb, var(--rc-danger) 30%, transparent);
}
.msg.error .body:empty + .note { margin-top: 0; }
.typing { display: inline-flex; gap: 4px; padding: 4px 0; }
.typing i {
  width: 6px; height: 6px; border-radius: 50%; background: var(--rc-muted);
  animation: rc-blink 1.2s infinite ease-in-out;
}
.typing i:nth-child(2) { animation-delay: 0.15s; }
.typing i:nth-child(3) { animation-delay: 0.3s; }
@keyframes rc-blink { 0%, 80%, 100% { opacity: 0.25; transform: translateY(0); } 40% { opacity: 1; transform: translateY(-2px); } }
@media (prefers-reduced-motion: reduce) { .typing i { animation: none; opacity: 0.6; } }
.waiting { color: var(--rc-muted); font-size: 0.88em; margin-left: 8px; }
.waiting:empty { display: none; }
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
`;
