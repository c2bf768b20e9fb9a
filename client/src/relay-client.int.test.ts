/**
 * @relay/client against a real gateway: `npm start` (app/main.ts, in-process transports, the
 * bundled mock) with the demo site, a signed site and dev tokens, from Node (`ws`, global fetch).
 */
import { createServer } from 'node:http';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { spawnEntry, waitForLog, type SpawnedService } from '../../test/support/spawn-service.js';
import type { FetchLike } from './http.js';
import { createRelayClient, type RelayClient, type RelayClientOptions } from './relay-client.js';
import type { WebSocketLike } from './resilient-client.js';
import { memoryStorage } from './storage.js';

const ORIGIN = 'http://localhost:3000';
const SECRET = 'acme-test-secret-of-at-least-32-characters!';

async function freePort(): Promise<number> {
  for (;;) {
    const port = 47_000 + Math.floor(Math.random() * 1000);
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/** A browser's requests carry its page's Origin; a Node client says which one it stands for. */
const fetchAs =
  (origin: string): FetchLike =>
  (url, init) =>
    fetch(url, { ...init, headers: { ...init.headers, Origin: origin } });
const socketAs =
  (origin: string) =>
  (url: string): WebSocketLike =>
    new WebSocket(url, { origin }) as unknown as WebSocketLike;

describe('relay client against a real gateway', () => {
  let app: SpawnedService;
  let base: string;
  const clients: RelayClient[] = [];

  beforeAll(async () => {
    const port = await freePort();
    app = spawnEntry('app/main.ts', {
      PORT: String(port),
      MOCK_OPENAI_TTFT_MS: '10',
      MOCK_OPENAI_TOKEN_MS: '2',
      SITES: JSON.stringify({
        sites: [{ id: 'acme', origins: [ORIGIN], identity: ['signed'], secret: SECRET }],
      }),
    });
    await waitForLog(app, /ai-relay \(embedded\) on http/);
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    expect(await app.stop()).toBe(0);
  });

  function client(options: Partial<RelayClientOptions>): RelayClient {
    const c = createRelayClient({
      url: base,
      fetch: fetchAs(ORIGIN),
      createSocket: socketAs(ORIGIN),
      ...options,
    });
    clients.push(c);
    return c;
  }

  function answer(c: RelayClient, content: string) {
    return new Promise<{ id: string; content: string; streamed: string }>((resolve, reject) => {
      let id = '';
      const off = c.onFinal((requestId, frame, streamed) => {
        if (requestId !== id) return;
        off();
        if (frame.type === 'response') resolve({ id, content: frame.content, streamed });
        else reject(new Error(`${frame.code}: ${frame.message}`));
      });
      id = c.send(content);
    });
  }

  it('anonymous: streams an answer; a later client with the same storage is the same visitor with the history', async () => {
    const storage = memoryStorage();
    const first = client({ site: 'demo', storage });
    await first.start();
    const userid = first.session?.userid;
    expect(userid).toMatch(/^demo:anon-[\w-]{22}$/);
    const one = await answer(first, 'Hello from Node');
    expect(one.content).toMatch(/^Echo: Hello from Node/);
    expect(one.streamed).toBe(one.content);
    const conversation = first.conversationId;
    await first.close();

    const tokenRequests: string[] = [];
    const again = client({
      site: 'demo',
      storage,
      fetch: (url, init) => {
        if (url.endsWith('/token')) tokenRequests.push(url);
        return fetchAs(ORIGIN)(url, init);
      },
    });
    await again.start();
    expect(again.session?.userid).toBe(userid);
    expect(tokenRequests).toEqual([]);
    expect(again.conversationId).toBe(conversation);
    await answer(again, 'And again');
    const history = await again.history();
    expect(history.messages.map((m) => [m.role, m.content.slice(0, 15)])).toEqual([
      ['user', 'Hello from Node'],
      ['assistant', 'Echo: Hello fro'],
      ['user', 'And again'],
      ['assistant', 'Echo: And again'],
    ]);
    expect(history.messages[0]?.request_id).toBe(one.id);
    const list = await again.conversations();
    expect(list.map((c) => [c.conversation_id, c.title])).toEqual([[conversation, 'Hello from Node']]);
  });

  it('a kept token the gateway refuses (another deployment’s) is replaced by a working one', async () => {
    const storage = memoryStorage();
    storage.setItem(
      'relay:demo:session',
      JSON.stringify({
        token: 'not.a.token',
        userid: 'demo:anon-old',
        expiresAt: Date.now() + 3_600_000,
        site: 'demo',
      }),
    );
    const c = client({ site: 'demo', storage, reconnect: { baseMs: 10, maxMs: 50 } });
    await c.start();
    expect(c.session?.userid).toMatch(/^demo:anon-/);
    expect(c.session?.userid).not.toBe('demo:anon-old');
    expect((await answer(c, 'works')).content).toMatch(/^Echo: works/);
  });

  it('signed: the host backend’s JWT makes the visitor acme:<sub>', async () => {
    let asked = 0;
    const c = client({
      site: 'acme',
      identity: async () => {
        asked++;
        return new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject('bob')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode(SECRET));
      },
    });
    await c.start();
    expect(c.session).toMatchObject({ userid: 'acme:bob', mode: 'signed', site: 'acme' });
    expect(asked).toBe(1);
    expect((await answer(c, 'hi, I am bob')).content).toMatch(/^Echo: hi, I am bob/);
  });

  it('a page origin the site does not list gets no token, and the client gives up at once', async () => {
    const c = client({
      site: 'demo',
      fetch: fetchAs('https://evil.example'),
      createSocket: socketAs('https://evil.example'),
    });
    await expect(c.start()).rejects.toMatchObject({
      status: 403,
      code: 'origin_not_allowed',
      retryable: false,
    });
  });

  it('dev mode: the original POST /token?userid= (npm start has dev tokens on)', async () => {
    const c = client({ userid: 'dev-carol' });
    await c.start();
    expect(c.session).toMatchObject({ userid: 'dev-carol', mode: 'dev' });
    expect((await answer(c, 'dev hello')).content).toMatch(/^Echo: dev hello/);
  });
});
