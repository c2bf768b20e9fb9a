import type { Guard } from '@relay/common';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

/**
 * Status lines, header names and values every answer repeats, encoded once: uWS converts each JS
 * string it is handed to UTF-8 on every call, and that was the largest single cost of a cached
 * presence read. Fixed at load: nothing a client sends (an origin) gets in.
 */
const ENCODED = new Map(
  [
    '200 OK',
    '400 Bad Request',
    '401 Unauthorized',
    '403 Forbidden',
    '404 Not Found',
    '429 Too Many Requests',
    'content-type',
    'application/json',
    'cache-control',
    'no-store',
    'access-control-allow-origin',
    'vary',
    'Origin',
  ].map((text) => [text, Buffer.from(text, 'latin1')] as const),
);
const encoded = (text: string): string | Buffer => ENCODED.get(text) ?? text;

/**
 * One uWS request/response pair. uWS forbids touching a response after it was aborted or ended,
 * and a handler that answers later must say so at once (`onAborted`); this keeps both facts, so
 * every answer (including the guard's 500) goes out at most once and never on a dead response.
 */
export class HttpExchange {
  readonly res: HttpResponse;
  private abortedFlag = false;
  private answeredFlag = false;

  constructor(res: HttpResponse) {
    this.res = res;
    res.onAborted(() => {
      this.abortedFlag = true;
    });
  }

  get aborted(): boolean {
    return this.abortedFlag;
  }

  /** Nothing can be sent any more: answered already, or the client went away. */
  get done(): boolean {
    return this.abortedFlag || this.answeredFlag;
  }

  json(status: string, body: unknown, headers: Record<string, string> = {}): void {
    this.end(status, 'application/json', JSON.stringify(body), headers);
  }

  end(
    status: string,
    contentType: string,
    body: string | Buffer,
    headers: Record<string, string> = {},
  ): void {
    if (this.done) return;
    this.answeredFlag = true;
    this.res.cork(() => {
      this.res.writeStatus(encoded(status)).writeHeader(encoded('content-type'), encoded(contentType));
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(encoded(k), encoded(v));
      this.res.end(body);
    });
  }

  /**
   * Reads the request body, which uWS hands over in chunks (copied: each chunk is only valid during
   * its callback). Resolves null once it grows past `limit` bytes, or when the client went away.
   * Must be called before the handler first awaits anything.
   */
  readBody(limit: number): Promise<Buffer | null> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      this.res.onData((chunk, isLast) => {
        if (!over) {
          size += chunk.byteLength;
          if (size > limit) over = true;
          else chunks.push(Buffer.from(chunk.slice(0)));
        }
        if (isLast) resolve(over || this.abortedFlag ? null : Buffer.concat(chunks));
      });
      this.res.onAborted(() => {
        this.abortedFlag = true;
        resolve(null);
      });
    });
  }

  /** Marks the response used by something else (the WebSocket upgrade). False when it cannot be. */
  take(): boolean {
    if (this.done) return false;
    this.answeredFlag = true;
    return true;
  }
}

export type RouteHandler = (exchange: HttpExchange, req: HttpRequest) => unknown;

/**
 * A uWS route inside the guard: a throw or a rejection of the handler is logged and counted, and
 * answered 500 `internal_error` unless the handler already answered; the process keeps serving.
 */
export function guardedRoute(
  guard: Guard,
  name: string,
  handler: RouteHandler,
): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const exchange = new HttpExchange(res);
    guard.run(
      `http ${name}`,
      () => handler(exchange, req),
      () => exchange.json('500 Internal Server Error', { error: 'internal_error' }),
      () => ({ route: name }),
    );
  };
}
