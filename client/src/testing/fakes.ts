import type { FetchLike } from '../http.js';
import type { WebSocketLike } from '../resilient-client.js';

type Frame = Record<string, unknown>;

/** A socket the test plays the gateway for. */
export class FakeSocket implements WebSocketLike {
  readyState = 0;
  sent: Frame[] = [];
  closedBy: { code?: number; reason?: string } | undefined;
  onopen: WebSocketLike['onopen'] = null;
  onmessage: WebSocketLike['onmessage'] = null;
  onclose: WebSocketLike['onclose'] = null;
  onerror: WebSocketLike['onerror'] = null;

  constructor(readonly url: string) {}

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data) as Frame);
  }

  close(code?: number, reason?: string): void {
    this.closedBy = { code, reason };
    this.drop(code ?? 1000, reason ?? '');
  }

  // ---- the gateway's side ----
  accept(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame: Frame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code = 1006, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  refuse(): void {
    this.onerror?.({});
    this.drop(1006);
  }
}

export interface FetchCall {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A `fetch` the test answers: `respond(call)` returns `[status, body]`. */
export function fakeFetch(respond: (call: FetchCall) => [number, unknown] | Promise<[number, unknown]>) {
  const calls: FetchCall[] = [];
  const fetch: FetchLike = async (url, init) => {
    const call: FetchCall = {
      url,
      method: init.method,
      headers: init.headers ?? {},
      body: init.body === undefined ? undefined : (JSON.parse(init.body) as unknown),
    };
    calls.push(call);
    const [status, body] = await respond(call);
    return {
      status,
      ok: status >= 200 && status < 300,
      json: async () => body,
      headers: { get: () => null },
    };
  };
  return { fetch, calls };
}
