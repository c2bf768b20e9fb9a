/**
 * The relay pipeline end to end on the real local stack: nginx (least_conn) → two uWS gateways →
 * Kafka → ai-consumer (mock model over HTTP with the real openai client) → Kafka → message-relay →
 * Redis pub/sub → the gateway that holds the socket.
 */
import { compareStreamIds } from '@relay/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connectClient, fetchToken, type TestClient } from '../websocket-server/src/testing/ws-client.js';
import { waitFor } from '@relay/common/testing';
import { stackDown, stackUp, stackUrls } from '../scripts/stack/testing.js';

// On top of the test stack's ports (away from the defaults) and its high per-IP token budget.
const env = {
  MOCK_OPENAI_TTFT_MS: '30',
  MOCK_OPENAI_TOKEN_MS: '3',
  RATE_LIMIT_MESSAGES: '6',
  RATE_LIMIT_WINDOW_MS: '60000',
  MAX_PAYLOAD_BYTES: '4096',
  LOG_LEVEL: 'warn',
};
let base = '';
let wsBase = '';

const clients: TestClient[] = [];
async function open(userid: string, query = ''): Promise<TestClient> {
  const token = await fetchToken(base, userid);
  const c = await connectClient(`${wsBase}/ws?token=${token}&userid=${userid}${query}`);
  clients.push(c);
  return c;
}
const run = `p${Date.now().toString(36)}`;

describe('pipeline on the local stack (through nginx)', () => {
  beforeAll(async () => {
    const up = await stackUp(env);
    expect(up.services.every((s) => s.healthy)).toBe(true);
    base = stackUrls().http;
    wsBase = base.replace('http', 'ws');
  }, 240_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    // Kafka and Redis belong to the integration setup; the rest of the stack goes.
    await stackDown();
  }, 120_000);

  it('an original-protocol client gets exactly one response frame for its message', async () => {
    const userid = `${run}-user123`;
    const c = await open(userid);
    c.send({ type: 'message', content: 'Hello, how are you?', userid });
    const response = await c.next((f) => f.type === 'response', 30_000);
    expect(response).toMatchObject({ type: 'response', userid });
    expect(String(response.content)).toMatch(/^Echo: Hello, how are you\?/);
    expect(typeof response.timestamp).toBe('string');
    expect(response.processing_time_ms).toBeGreaterThanOrEqual(0);
    expect(c.frames.map((f) => f.type)).toEqual(['response']);
  });

  it('streams deltas that add up to the final content, acked first, all tied by request_id', async () => {
    const userid = `${run}-streamer`;
    const c = await open(userid, '&stream=1');
    c.send({ type: 'message', content: 'stream this answer please', id: 'stream-1' });
    const final = await c.next((f) => f.type === 'response', 30_000);
    const deltas = c.frames.filter((f) => f.type === 'response.delta');
    expect(c.frames[0]).toMatchObject({ type: 'ack', request_id: 'stream-1' });
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.every((d) => d.request_id === 'stream-1')).toBe(true);
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
    expect(deltas.map((d) => d.delta).join('')).toBe(final.content);
    // event_ids increase in the order frames arrive (they are the replay log's ids).
    const ids = c.frames.filter((f) => f.event_id).map((f) => String(f.event_id));
    expect(ids).toEqual([...ids].sort(compareStreamIds));
  });

  it('both gateways receive connections (least_conn)', async () => {
    for (let i = 0; i < 8; i++) await open(`${run}-spread-${i}`);
    const health = await Promise.all(
      Object.values(stackUrls().gateways).map(
        async (url) => (await (await fetch(`${url}/health`)).json()) as { total_connections: number },
      ),
    );
    for (const h of health) expect(h.total_connections).toBeGreaterThan(0);
  });

  it('many users at once: every answer reaches its own user and no one else', async () => {
    const users = Array.from({ length: 16 }, (_, i) => `${run}-iso-${i}`);
    const sockets = await Promise.all(users.map((u) => open(u, '&stream=1')));
    sockets.forEach((c, i) => {
      for (let k = 0; k < 3; k++)
        c.send({ type: 'message', content: `from ${users[i]} number ${k}`, id: `m${k}` });
    });
    // Seen twice in ~15 runs: one socket got its 101 and no frame at all, closed within a second
    // (nginx logged 0 bytes). The message says which socket and how it closed, for the next time.
    await Promise.all(
      sockets.map((c, i) =>
        waitFor(() => c.frames.filter((f) => f.type === 'response').length === 3, {
          timeoutMs: 50_000,
          message: () =>
            `${users[i]}: ${c.frames.length} frames (${c.frames.map((f) => String(f.type)).join(',')}), socket ${c.closed ? `closed ${c.closed.code} ${c.closed.reason}` : 'open'}`,
        }),
      ),
    );
    sockets.forEach((c, i) => {
      const me = users[i] as string;
      for (const f of c.frames) expect(f.userid).toBe(me);
      const answers = c.frames.filter((f) => f.type === 'response').map((f) => String(f.content));
      expect(answers).toHaveLength(3);
      for (const a of answers) expect(a).toContain(`from ${me} number`);
      // One user's messages are answered in the order they were sent.
      expect(answers.map((a) => Number(/number (\d)/.exec(a)?.[1]))).toEqual([0, 1, 2]);
    });
  });

  it('a token for one user cannot open another user’s socket (401 through nginx)', async () => {
    const token = await fetchToken(base, `${run}-alice`);
    const status = await new Promise<number>((resolve, reject) => {
      const s = new WebSocket(`${wsBase}/ws?token=${token}&userid=${run}-bob`);
      s.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      s.once('open', () => reject(new Error('upgrade should have been refused')));
    });
    expect(status).toBe(401);
  });

  it('every bad frame gets an error code and the socket stays usable', async () => {
    const userid = `${run}-bad`;
    const c = await open(userid);
    const cases: Array<[string, string]> = [
      ['not json', 'invalid_json'],
      ['{"type":"sing"}', 'unknown_type'],
      ['{"type":"message"}', 'invalid_message'],
      [JSON.stringify({ type: 'message', content: 'x'.repeat(4001) }), 'message_too_large'],
      [JSON.stringify({ type: 'message', content: 'hi', userid: 'someone-else' }), 'userid_mismatch'],
    ];
    for (const [raw] of cases) c.sendRaw(raw);
    await waitFor(() => c.frames.length === cases.length);
    expect(c.frames.map((f) => f.code)).toEqual(cases.map(([, code]) => code));
    c.send({ type: 'message', content: 'and now a good one', userid });
    const response = await c.next((f) => f.type === 'response', 30_000);
    expect(String(response.content)).toMatch(/^Echo: and now a good one/);
  });

  it('a frame above MAX_PAYLOAD_BYTES closes the socket with 1009', async () => {
    const c = await open(`${run}-big`);
    c.sendRaw(JSON.stringify({ type: 'message', content: 'y'.repeat(5000) }));
    await waitFor(() => c.closed);
    expect(c.closed).toEqual({ code: 1009, reason: 'message_too_large' });
  });

  it('rate-limits a user past RATE_LIMIT_MESSAGES with rate_limited (no ack)', async () => {
    const c = await open(`${run}-flood`, '&ack=1');
    for (let i = 0; i < 8; i++) c.send({ type: 'message', content: `flood ${i}`, id: `f${i}` });
    await waitFor(() => c.frames.filter((f) => f.type === 'ack' || f.type === 'error').length === 8, {
      timeoutMs: 30_000,
    });
    const errors = c.frames.filter((f) => f.type === 'error');
    expect(c.frames.filter((f) => f.type === 'ack')).toHaveLength(6);
    expect(errors.map((f) => [f.code, f.request_id])).toEqual([
      ['rate_limited', 'f6'],
      ['rate_limited', 'f7'],
    ]);
  });
});
