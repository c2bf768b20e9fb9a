import WebSocket from 'ws';
import { waitFor } from '@relay/common/testing';

/** A test client on `ws`: collects every frame and the close code, with helpers to wait for them. */
export interface TestClient {
  socket: WebSocket;
  frames: Array<Record<string, unknown>>;
  closed: { code: number; reason: string } | null;
  send(frame: unknown): void;
  sendRaw(text: string): void;
  next(
    predicate: (f: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function connectClient(url: string): Promise<TestClient> {
  const socket = new WebSocket(url);
  const client: TestClient = {
    socket,
    frames: [],
    closed: null,
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
  socket.on('message', (data) => client.frames.push(JSON.parse(String(data)) as Record<string, unknown>));
  socket.on('close', (code, reason) => (client.closed = { code, reason: reason.toString() }));
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
