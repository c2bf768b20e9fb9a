import { waitFor } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { createRelayClient, type RelayClientOptions } from './relay-client.js';
import { memoryStorage, type StorageLike } from './storage.js';
import { FakeSocket, fakeFetch, type FetchCall } from './testing/fakes.js';

type Answer = [number, unknown];

/** A relay the test plays: `/token` gives anonymous visitors, the rest is up to `respond`. */
function setup(
  overrides: Partial<RelayClientOptions> = {},
  respond: (call: FetchCall) => Answer | undefined = () => undefined,
  storage: StorageLike = memoryStorage(),
) {
  const sockets: FakeSocket[] = [];
  let tokens = 0;
  let ids = 0;
  const { fetch, calls } = fakeFetch((call) => {
    const answer = respond(call);
    if (answer) return answer;
    if (new URL(call.url).pathname === '/token') {
      return [
        200,
        { token: `T${++tokens}`, userid: 'demo:anon-a', expires_in: 900, site: 'demo', mode: 'anonymous' },
      ];
    }
    return [404, { error: 'not_found', message: 'no' }];
  });
  const client = createRelayClient({
    url: 'http://relay:8080',
    site: 'demo',
    storage,
    fetch,
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    random: () => 0,
    generateId: () => `m${++ids}`,
    ...overrides,
  });
  return { client, calls, sockets, storage, socket: (n: number) => waitFor(() => sockets[n]) };
}

const final = (r: string, content: string, id: string) => ({
  type: 'response',
  content,
  userid: 'demo:anon-a',
  timestamp: '2024-01-01T12:00:00Z',
  processing_time_ms: 1,
  request_id: r,
  event_id: id,
});

describe('relay client', () => {
  it('an anonymous visitor gets a token, connects to <url>/ws, and sends in the current conversation', async () => {
    const { client, calls, socket } = setup();
    const started = client.start();
    const s = await socket(0);
    expect(s.url.startsWith('ws://relay:8080/ws?')).toBe(true);
    expect(Object.fromEntries(s.query)).toEqual({ token: 'T1', userid: 'demo:anon-a', stream: '1' });
    expect(calls[0]?.body).toEqual({ site: 'demo' });
    s.accept();
    await started;
    const id = client.send('hi');
    expect(s.sent).toEqual([{ type: 'message', content: 'hi', id, conversation_id: client.conversationId }]);
    expect(client.session?.userid).toBe('demo:anon-a');
    await client.close();
  });

  it('after a reload: same visitor without /token, resumes from the kept event_id, resends the un-answered', async () => {
    const storage = memoryStorage();
    const first = setup({}, undefined, storage);
    void first.client.start();
    const s = await first.socket(0);
    s.accept();
    const answered = first.client.send('one');
    s.receive({ type: 'ack', request_id: answered, userid: 'demo:anon-a', event_id: '3-0' });
    s.receive(final(answered, 'ONE', '3-1'));
    const unanswered = first.client.send('two');
    s.receive({ type: 'ack', request_id: unanswered, userid: 'demo:anon-a', event_id: '3-2' });
    const conversation = first.client.conversationId;
    await first.client.close();

    const second = setup({ generateId: () => 'other' }, undefined, storage);
    expect(second.client.conversationId).toBe(conversation);
    expect(second.client.pending().map((p) => [p.id, p.content])).toEqual([[unanswered, 'two']]);
    void second.client.start();
    const again = await second.socket(0);
    expect(second.calls).toEqual([]);
    expect(again.query.get('token')).toBe('T1');
    expect(again.query.get('last_event_id')).toBe('3-2');
    again.accept();
    expect(again.sent).toEqual([
      { type: 'message', content: 'two', id: unanswered, conversation_id: conversation },
    ]);
    again.receive(final(unanswered, 'TWO', '3-3'));
    expect(second.client.pending()).toEqual([]);
    await second.client.close();
  });

  it('renews the token after the gateway closes 1008 invalid_token', async () => {
    const { client, calls, socket } = setup();
    void client.start();
    (await socket(0)).accept();
    (await socket(0)).drop(1008, 'invalid_token');
    const s = await socket(1);
    expect(calls.map((c) => c.body)).toEqual([{ site: 'demo' }, { site: 'demo', renew: 'T1' }]);
    expect(s.query.get('token')).toBe('T2');
    await client.close();
  });

  it('a page on an origin the site does not allow gets no token and opens no socket', async () => {
    const { client, sockets } = setup({}, (call) =>
      call.url.endsWith('/token')
        ? [403, { error: 'origin_not_allowed', message: 'Origin not allowed' }]
        : undefined,
    );
    await expect(client.start()).rejects.toMatchObject({ code: 'origin_not_allowed' });
    expect(sockets).toEqual([]);
    expect(client.state).toBe('closed');
  });

  it('history: the list and one conversation with the bearer token; 404 is an empty conversation', async () => {
    const { client, calls } = setup({}, (call) => {
      if (call.url.endsWith('/api/v1/conversations'))
        return [
          200,
          { conversations: [{ conversation_id: 'c1', title: 'Hi', updated_at: '2024-01-01T00:00:00Z' }] },
        ];
      if (call.url.endsWith('/api/v1/conversations/c1'))
        return [
          200,
          {
            conversation_id: 'c1',
            messages: [
              { role: 'user', content: 'Hi', request_id: 'r1', time: '2024-01-01T00:00:00Z' },
              { role: 'assistant', content: 'Hello', request_id: null, time: null },
            ],
          },
        ];
      return undefined;
    });
    expect(await client.conversations()).toEqual([
      { conversation_id: 'c1', title: 'Hi', updated_at: '2024-01-01T00:00:00Z' },
    ]);
    expect((await client.history('c1')).messages.map((m) => m.content)).toEqual(['Hi', 'Hello']);
    expect(await client.history('c2')).toEqual({ conversation_id: 'c2', messages: [] });
    // A conversation this client just started is not asked for.
    const asked = calls.length;
    expect(await client.history(client.newConversation())).toMatchObject({ messages: [] });
    expect(calls).toHaveLength(asked);
    const history = calls.filter((c) => c.url.includes('/api/'));
    expect(history.every((c) => c.headers.Authorization === 'Bearer T1')).toBe(true);
    await client.close();
  });

  it('history retries a 401 once with a renewed token', async () => {
    let refused = false;
    const { client, calls } = setup({}, (call) => {
      if (!call.url.includes('/api/')) return undefined;
      if (!refused) {
        refused = true;
        return [401, { error: 'invalid_token', message: 'expired' }];
      }
      return [200, { conversations: [] }];
    });
    expect(await client.conversations()).toEqual([]);
    expect(calls.map((c) => c.body ?? c.headers.Authorization)).toEqual([
      { site: 'demo' },
      'Bearer T1',
      { site: 'demo', renew: 'T1' },
      'Bearer T2',
    ]);
    await client.close();
  });

  it('new and switched conversations are kept; a bad id is refused', async () => {
    const storage = memoryStorage();
    const { client } = setup({}, undefined, storage);
    const first = client.conversationId;
    const next = client.newConversation();
    expect(next).not.toBe(first);
    expect(setup({}, undefined, storage).client.conversationId).toBe(next);
    client.switchConversation(first);
    expect(setup({}, undefined, storage).client.conversationId).toBe(first);
    expect(() => client.switchConversation('no spaces')).toThrow(TypeError);
    await client.close();
  });

  it('signed mode exchanges the identity; dev mode asks with ?userid=', async () => {
    const signed = setup({ identity: async () => 'jwt' });
    signed.client.start().catch(() => undefined);
    await signed.socket(0);
    expect(signed.calls[0]?.body).toEqual({ site: 'demo', identity: 'jwt' });
    await signed.client.close();

    const dev = setup({ site: undefined, userid: 'alice' });
    dev.client.start().catch(() => undefined);
    await dev.socket(0);
    expect(dev.calls[0]?.url).toBe('http://relay:8080/token?userid=alice');
    await dev.client.close();
    expect(() => setup({ site: undefined })).toThrow(/needs a site/);
  });

  it('storage that throws costs persistence, not the chat', async () => {
    const broken: StorageLike = {
      getItem: () => {
        throw new Error('SecurityError');
      },
      setItem: () => {
        throw new Error('QuotaExceededError');
      },
      removeItem: () => {
        throw new Error('SecurityError');
      },
    };
    const { client, socket } = setup({}, undefined, broken);
    void client.start();
    (await socket(0)).accept();
    client.send('still works');
    expect((await socket(0)).sent).toHaveLength(1);
    await client.close();
  });

  it('with issue(), connects on an issued token without /token, and renews it after invalid_token', async () => {
    let n = 0;
    const { client, calls, socket } = setup({
      site: undefined,
      issue: () =>
        Promise.resolve({ token: `I${++n}`, userid: 'load-7', expires_in: 3600, site: 'dev', mode: 'dev' }),
    });
    const started = client.start();
    const s = await socket(0);
    expect(Object.fromEntries(s.query)).toEqual({ token: 'I1', userid: 'load-7', stream: '1' });
    s.accept();
    await started;
    expect(client.session).toMatchObject({ userid: 'load-7', mode: 'dev' });
    s.drop(1008, 'invalid_token');
    const again = await socket(1);
    expect(again.query.get('token')).toBe('I2');
    expect(calls).toEqual([]);
    await client.close();
  });
});
