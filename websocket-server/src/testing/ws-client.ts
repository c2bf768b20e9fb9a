import WebSocket from 'ws';
import { waitFor } from '@relay/common/testing';

/** A test client on `ws`: collects every frame and the close code, with helpers to wait for them. */
export interface TestClient {
  socket: WebSocket;
  frames: Array<Record<string, unknown>>;
  closed: { code: number; reason: string } | null;
  /** Socket errors after the open (e.g. the client refusing a frame it cannot parse). */
  errors: string[];
  send(frame: unknown): void;
  sendRaw(text: string): void;
  next(
    predicate: (f: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function connectClient(url: string, options?: WebSocket.ClientOptions): Promise<TestClient> {
  const socket = new WebSocket(url, options);
  const client: TestClient = {
    socket,
    frames: [],
    closed: null,
    errors: [],
    send: (frame) => socket.send(JSON.stringify(frame)),
    sendRaw: (text) => socket.send(text),
    next: (predicate, timeoutMs = 10_000) =>
      waitFor(() => client.frames.find(predicate), { timeoutMs, message: 'expected frame' }),
    close: async () => {
      if (socket.readyState === WebSocket.CLOSED) return;
      socket.close();
      await waitFor(() => socket.readyState === WebSocket.CLOSED, { timeoutMs: 5000 });
    },
  };
  // A frame that is not JSON is kept as such (the test then fails on it), not thrown out of the listener.
  socket.on('message', (data) => {
    const text = String(data);
    try {
      client.frames.push(JSON.parse(text) as Record<string, unknown>);
    } catch {
      client.frames.push({ type: '(not json)', raw: text });
    }
  });
  socket.on('close', (code, reason) => (client.closed = { code, reason: reason.toString() }));
  socket.on('error', (err) => client.errors.push(err.message));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
    socket.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return client;
}

/** POST /token?userid=… → the token. */
export async function fetchToken(baseUrl: string, userid: string): Promise<string> {
  const res = await fetch(`${baseUrl}/token?userid=${encodeURIComponent(userid)}`, { method: 'POST' });
  if (res.status !== 200) throw new Error(`token: HTTP ${res.status}`);
  const body = (await res.json()) as { token: string };
  return body.token;
}
