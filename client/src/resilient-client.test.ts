import { describe, expect, it } from 'vitest';
import { waitFor } from '@relay/common/testing';
import { fullJitter } from './backoff.js';
import {
  createResilientClient,
  type ClientState,
  type FinalFrame,
  type ResilientClientOptions,
} from './resilient-client.js';
import { FakeSocket } from './testing/fakes.js';

type Frame = Record<string, unknown>;

function setup(overrides: Partial<ResilientClientOptions> = {}) {
  const sockets: FakeSocket[] = [];
  let tokens = 0;
  const states: ClientState[] = [];
  const finals: Array<{ id: string; frame: FinalFrame; streamed: string }> = [];
  let ids = 0;
  const client = createResilientClient({
    url: 'ws://gateway/ws',
    userid: 'alice',
    getToken: async () => `t${++tokens}`,
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    // No waiting between attempts: the tests drive every step.
    random: () => 0,
    generateId: () => `m${++ids}`,
    ...overrides,
  });
  client.onState((s) => states.push(s));
  client.onFinal((id, frame, streamed) => finals.push({ id, frame, streamed }));
  const socket = async (n: number) => waitFor(() => sockets[n]);
  return { client, sockets, socket, states, finals };
}

const delta = (r: string, seq: number, text: string, id: string) => ({
  type: 'response.delta',
  request_id: r,
  seq,
  delta: text,
  userid: 'alice',
  event_id: id,
});
const final = (r: string, content: string, id: string) => ({
  type: 'response',
  content,
  userid: 'alice',
  timestamp: '2024-01-01T12:00:00Z',
  processing_time_ms: 1,
  request_id: r,
  event_id: id,
});

describe('fullJitter', () => {
  it('is uniform below min(max, base·2^attempt)', () => {
    expect(fullJitter(0, 100, 1000, () => 0.999)).toBe(99);
    expect(fullJitter(3, 100, 1000, () => 0.5)).toBe(400);
    expect(fullJitter(10, 100, 1000, () => 0.5)).toBe(500);
    expect(fullJitter(5, 100, 1000, () => 0)).toBe(0);
  });
});

describe('resilient client', () => {
  it('connects with a token, sends with an id, and reports one final with the streamed text', async () => {
    const { client, socket, finals } = setup();
    const started = client.start();
    const s = await socket(0);
    expect(Object.fromEntries(s.query)).toEqual({ token: 't1', userid: 'alice', stream: '1' });
    s.accept();
    await started;
    const id = client.send('hello', { conversation_id: 'c1' });
    expect(s.sent).toEqual([{ type: 'message', content: 'hello', id, conversation_id: 'c1' }]);
    s.receive({ type: 'ack', request_id: id, userid: 'alice' });
    s.receive(delta(id, 0, 'Hel', '1-0'));
    s.receive(delta(id, 1, 'lo', '1-1'));
    expect(client.text(id)).toBe('Hello');
    expect(client.pending()).toEqual([id]);
    s.receive(final(id, 'Hello', '1-2'));
    expect(finals).toEqual([{ id, frame: expect.objectContaining({ content: 'Hello' }), streamed: 'Hello' }]);
    expect(client.pending()).toEqual([]);
    expect(client.lastEventId).toBe('1-2');
    await client.close();
  });

  it('sends messages queued before the connection opened once it does', async () => {
    const { client, socket } = setup();
    void client.start();
    const id = client.send('early');
    const s = await socket(0);
    s.accept();
    expect(s.sent).toEqual([{ type: 'message', content: 'early', id }]);
    await client.close();
  });

  it('reconnects with a new token, resumes from the highest event_id, resends only un-acked messages', async () => {
    const { client, socket, states } = setup();
    void client.start();
    const first = await socket(0);
    first.accept();
    const acked = client.send('one');
    const unacked = client.send('two');
    first.receive({ type: 'ack', request_id: acked, userid: 'alice' });
    first.receive(delta(acked, 0, 'a', '5-0'));
    first.drop(1001, 'server_shutdown');

    const second = await socket(1);
    expect(second.query.get('token')).toBe('t2');
    expect(second.query.get('last_event_id')).toBe('5-0');
    second.accept();
    expect(second.sent).toEqual([{ type: 'message', content: 'two', id: unacked }]);
    expect(states).toEqual(['connecting', 'open', 'reconnecting', 'open']);
    await client.close();
  });

  it('drops frames it already has (by event_id), so a replay overlap changes nothing', async () => {
    const { client, socket, finals } = setup();
    const frames: Frame[] = [];
    client.onFrame((f) => frames.push(f));
    void client.start();
    const s = await socket(0);
    s.accept();
    const id = client.send('x');
    s.receive(delta(id, 0, 'a', '1-0'));
    s.receive(delta(id, 1, 'b', '1-1'));
    s.receive(delta(id, 0, 'a', '1-0'));
    s.receive(delta(id, 1, 'b', '1-1'));
    s.receive(final(id, 'ab', '1-2'));
    s.receive(final(id, 'ab', '1-2'));
    expect(frames).toHaveLength(3);
    expect(finals).toHaveLength(1);
    expect(finals[0]?.streamed).toBe('ab');
    await client.close();
  });

  it('starts a request’s text over on response.reset', async () => {
    const { client, socket, finals } = setup();
    void client.start();
    const s = await socket(0);
    s.accept();
    const id = client.send('x');
    s.receive(delta(id, 0, 'wrong', '1-0'));
    s.receive({ type: 'response.reset', request_id: id, userid: 'alice', event_id: '1-1' });
    expect(client.text(id)).toBe('');
    s.receive(delta(id, 0, 'right', '1-2'));
    s.receive(final(id, 'right', '1-3'));
    expect(finals[0]?.streamed).toBe('right');
    await client.close();
  });

  it('reports a request’s queue position until its deltas start, and ignores a late one', async () => {
    const { client, socket } = setup();
    void client.start();
    const s = await socket(0);
    s.accept();
    const id = client.send('x');
    const told: Array<[string, number]> = [];
    const frames: string[] = [];
    client.onQueued((requestId, position) => told.push([requestId, position]));
    client.onFrame((f) => frames.push(f.type));
    expect(client.queuePosition(id)).toBeUndefined();
    s.receive({ type: 'queued', request_id: id, userid: 'alice', position: 2 });
    expect(client.queuePosition(id)).toBe(2);
    s.receive({ type: 'queued', request_id: id, userid: 'alice', position: 0 });
    expect(client.queuePosition(id)).toBe(0);
    s.receive(delta(id, 0, 'He', '1-0'));
    expect(client.queuePosition(id)).toBeUndefined();
    // A hint that arrived after the deltas (reordered, or a relay's redelivery) is stale.
    s.receive({ type: 'queued', request_id: id, userid: 'alice', position: 1 });
    expect(client.queuePosition(id)).toBeUndefined();
    s.receive(final(id, 'He', '1-1'));
    s.receive({ type: 'queued', request_id: id, userid: 'alice', position: 1 });
    expect(told).toEqual([
      [id, 2],
      [id, 0],
    ]);
    expect(frames).toEqual(['queued', 'queued', 'response.delta', 'response']);
    // A hint carries no event_id: the resume point is the log's.
    expect(client.lastEventId).toBe('1-1');

    // A request answered without deltas (a cancel before its call) also stops waiting.
    const other = client.send('y');
    s.receive({ type: 'queued', request_id: other, userid: 'alice', position: 0 });
    s.receive(final(other, '', '1-2'));
    expect(client.queuePosition(other)).toBeUndefined();
    await client.close();
  });

  it('resends a message the gateway refused with a retryable code, under the same id', async () => {
    const { client, socket, finals } = setup();
    void client.start();
    const s = await socket(0);
    s.accept();
    const id = client.send('x');
    s.receive({
      type: 'error',
      code: 'upstream_unavailable',
      message: 'later',
      request_id: id,
      userid: 'alice',
    });
    await waitFor(() => s.sent.length === 2);
    expect(s.sent[1]).toEqual(s.sent[0]);
    expect(finals).toEqual([]);
    await client.close();
  });

  it('a refusal that retrying cannot fix, or an error from the generation, is the final', async () => {
    const { client, socket, finals } = setup();
    void client.start();
    const s = await socket(0);
    s.accept();
    const bad = client.send('x');
    s.receive({ type: 'error', code: 'invalid_message', message: 'no', request_id: bad, userid: 'alice' });
    const failed = client.send('y');
    s.receive({ type: 'ack', request_id: failed, userid: 'alice' });
    s.receive({
      type: 'error',
      code: 'upstream_error',
      message: 'model said no',
      request_id: failed,
      userid: 'alice',
      event_id: '2-0',
    });
    expect(finals.map((f) => [f.id, f.frame.type])).toEqual([
      [bad, 'error'],
      [failed, 'error'],
    ]);
    expect(client.pending()).toEqual([]);
    await client.close();
  });

  it('an error that is not from the log about an acked request (a failed cancel) does not end it', async () => {
    const { client, socket, finals } = setup();
    void client.start();
    const s = await socket(0);
    s.accept();
    const id = client.send('x');
    s.receive({ type: 'ack', request_id: id, userid: 'alice' });
    client.cancel(id);
    s.receive({
      type: 'error',
      code: 'upstream_unavailable',
      message: 'redis',
      request_id: id,
      userid: 'alice',
    });
    expect(finals).toEqual([]);
    expect(client.pending()).toEqual([id]);
    await client.close();
  });

  it('gives up after maxReconnectAttempts failed attempts in a row', async () => {
    const { client, sockets, states } = setup({ maxReconnectAttempts: 3 });
    const started = client.start();
    const outcome = started.then(
      () => 'opened',
      (err: Error) => err.message,
    );
    for (let i = 0; i < 4; i++) (await waitFor(() => sockets[i])).refuse();
    expect(await outcome).toMatch(/gave up after 3 reconnect attempts/);
    expect(states.at(-1)).toBe('closed');
    expect(sockets).toHaveLength(4);
  });

  it('gives up after maxDisconnectedMs without a connection', async () => {
    let clock = 0;
    const { client, sockets, states } = setup({ maxDisconnectedMs: 1000, now: () => clock });
    void client.start();
    (await waitFor(() => sockets[0])).accept();
    sockets[0]?.drop();
    clock = 2000;
    (await waitFor(() => sockets[1])).refuse();
    await waitFor(() => states.at(-1) === 'closed');
    expect(sockets).toHaveLength(2);
  });

  it('close() stops reconnecting and is idempotent', async () => {
    const { client, socket, sockets } = setup();
    void client.start();
    const s = await socket(0);
    s.accept();
    await Promise.all([client.close(), client.close()]);
    expect(s.closedBy).toEqual({ code: 1000, reason: 'client_closed' });
    expect(client.state).toBe('closed');
    expect(sockets).toHaveLength(1);
  });

  it('cancel sends a cancel frame', async () => {
    const { client, socket } = setup();
    void client.start();
    const s = await socket(0);
    s.accept();
    client.cancel('m-7');
    expect(s.sent).toEqual([{ type: 'cancel', request_id: 'm-7' }]);
    await client.close();
  });
});

describe('resilient client: tokens and users', () => {
  it('asks for a fresh token after a 1008 invalid_token, and after an attempt that never opened', async () => {
    const requests: boolean[] = [];
    const { client, socket } = setup({
      getToken: async ({ refresh }) => {
        requests.push(refresh);
        return `t${requests.length}`;
      },
    });
    void client.start();
    (await socket(0)).accept();
    (await socket(0)).drop(1008, 'invalid_token');
    (await socket(1)).refuse();
    (await socket(2)).accept();
    (await socket(2)).drop(1001, 'server_shutdown');
    await socket(3);
    expect(requests).toEqual([false, true, true, false]);
    await client.close();
  });

  it('a token error that retrying cannot fix ends the client at once', async () => {
    const refused = Object.assign(new Error('origin not allowed'), { retryable: false });
    const { client, sockets, states } = setup({
      getToken: async () => {
        throw refused;
      },
    });
    await expect(client.start()).rejects.toBe(refused);
    expect(sockets).toEqual([]);
    expect(states).toEqual(['connecting', 'closed']);
  });

  it('resumes a user from resumePoint, and a new user never from the old one’s event_id', async () => {
    let user = 'anon-a';
    const { client, socket } = setup({
      userid: undefined,
      getToken: async () => ({ token: 't', userid: user }),
      resumePoint: (u) => (u === 'anon-a' ? '7-0' : undefined),
    });
    void client.start();
    const first = await socket(0);
    expect(first.query.get('last_event_id')).toBe('7-0');
    expect(first.query.get('userid')).toBe('anon-a');
    first.accept();
    first.receive(delta('r', 0, 'x', '8-0'));
    expect(client.lastEventId).toBe('8-0');
    user = 'anon-b';
    first.drop(1008, 'invalid_token');
    const second = await socket(1);
    expect(second.query.get('userid')).toBe('anon-b');
    expect(second.query.has('last_event_id')).toBe(false);
    expect(client.userid).toBe('anon-b');
    await client.close();
  });

  it('send with an id already queued does not queue it twice', async () => {
    const { client, socket } = setup();
    void client.start();
    expect(client.send('a', { id: 'k1' })).toBe('k1');
    expect(client.send('a', { id: 'k1' })).toBe('k1');
    const s = await socket(0);
    s.accept();
    expect(s.sent).toEqual([{ type: 'message', content: 'a', id: 'k1' }]);
    await client.close();
  });
});
