/** What a visitor reads for an error code (the server's `message` is for developers). */
const TEXTS: Record<string, string> = {
  budget_exceeded: "You've reached today's usage limit. Please come back tomorrow.",
  rate_limited: "You're sending messages quickly. Retrying in a moment…",
  upstream_unavailable: 'The assistant is temporarily unavailable. Please try again shortly.',
  upstream_error: 'The assistant could not answer this one.',
  timeout: 'The assistant took too long to answer. Please try again.',
  message_too_large: 'That message is too long.',
  origin_not_allowed: "This website isn't allowed to use this chat.",
  mode_not_allowed: "This website isn't set up for this kind of chat.",
  unknown_site: "This chat isn't configured.",
  invalid_identity: 'Your sign-in could not be verified. Reload the page to try again.',
  captcha_failed: 'The verification failed. Reload the page to try again.',
  network_error: "Can't reach the chat service.",
  too_many_connections: 'Too many open chats. Close another tab and try again.',
  internal_error: 'Something went wrong on our side.',
};

export function errorText(code: string | undefined, fallback: string): string {
  return (code !== undefined ? TEXTS[code] : undefined) ?? fallback;
}
