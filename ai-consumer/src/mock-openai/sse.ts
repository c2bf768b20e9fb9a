import type { ServerResponse } from 'node:http';

// OpenAI frames its streams as bare `data:` events (no `event:` or `id:` lines) and ends them with a literal
// `[DONE]`; the official client depends on exactly that.

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
} as const;

export const SSE_DONE = 'data: [DONE]\n\n';

export function sseData(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

/**
 * Resolves `true` after `ms`, or `false` as soon as `signal` aborts (never rejects, so a disconnect is an
 * ordinary outcome for the caller). `ms <= 0` resolves without a timer.
 */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Writes SSE frames to a response, honouring backpressure and never writing after the client went away. */
export class SseWriter {
  readonly #res: ServerResponse;
  readonly #signal: AbortSignal;

  constructor(res: ServerResponse, signal: AbortSignal) {
    this.#res = res;
    this.#signal = signal;
  }

  get open(): boolean {
    return !this.#signal.aborted && !this.#res.destroyed && !this.#res.writableEnded;
  }

  /** Resolves `false` when the stream is no longer writable (client gone), so the producer can stop. */
  async write(frame: string): Promise<boolean> {
    if (!this.open) return false;
    if (this.#res.write(frame)) return true;
    return this.#drained();
  }

  end(): void {
    if (this.open) this.#res.end();
  }

  #drained(): Promise<boolean> {
    return new Promise((resolve) => {
      const settle = (ok: boolean): void => {
        this.#res.off('drain', onDrain);
        this.#signal.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onDrain = (): void => settle(this.open);
      const onAbort = (): void => settle(false);
      this.#res.on('drain', onDrain);
      this.#signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
