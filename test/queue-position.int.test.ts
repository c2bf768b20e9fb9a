/**
 * Queue positions on the real local stack (issue 12, item 4): nginx → gateways → Kafka →
 * ai-consumer with MAX_WORKERS=1 and a slow mock model → Kafka → message-relay → Redis pub/sub →
 * the gateway holding the socket. While one answer runs, the prompts behind it wait in the
 * consumer's line; a streaming client is told how many are ahead, then gets its deltas and final.
 * A client of the original protocol waiting in the same line sees nothing new.
 */
import { serverFrameSchema } from '@relay/common';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, fetchToken, type TestClient } from '../websocket-server/src/testing/ws-client.js';
import { stackDown, stackUp, stackUrls } from '../scripts/stack/testing.js';

const env = {
  MAX_WORKERS: '1',
  // About 2.5 s per answer: long enough for the line to form and a position to be told.
  MOCK_OPENAI_TTFT_MS: '300',
  MOCK_OPENAI_TOKEN_MS: '60',
  MOCK_OPENAI_MIN_TOKENS: '35',
  QUEUE_UPDATE_MS: '200',
  LOG_LEVEL: 'warn',
};
const run = `q${Date.now().toString(36)}`;
let base = '';
const clients: TestClient[] = [];

async function open(userid: string, query = ''): Promise<TestClient> {
  const token = await fetchToken(base, userid);
  const c = await connectClient(`${base.replace('http', 'ws')}/ws?token=${token}&userid=${userid}${query}`);
  clients.push(c);
  return c;
}

const ofType = (c: TestClient, type: string) => c.frames.filter((f) => f.type === type);

describe('queue position on the local stack (MAX_WORKERS=1)', () => {
  beforeAll(async () => {
    // Services another test left running would keep their MAX_WORKERS: start them with ours.
    await stackDown();
    const up = await stackUp(env);
    expect(up.services.every((s) => s.healthy)).toBe(true);
    base = stackUrls().http;
  }, 240_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await stackDown();
  }, 120_000);

  it('tells a waiting streaming prompt its position (≥ 1), then streams it; the original protocol sees no queued frame', async () => {
    const first = await open(`${run}-first`, '&stream=1');
    const plain = await open(`${run}-plain`);
    const waiting = await open(`${run}-waiting`, '&stream=1');

    // The one worker is busy with this answer from its first delta on.
    first.send({ type: 'message', content: 'occupy the only worker', id: 'first-1' });
    await first.next((f) => f.type === 'response.delta', 30_000);
    // Next in line: an original-protocol client (the gateway publishes its prompt with stream=false).
    plain.send({ type: 'message', content: 'an original protocol question', userid: `${run}-plain` });
    // Let its prompt reach the consumer before the next one, so it is the one ahead.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    waiting.send({ type: 'message', content: 'who is ahead of me', id: 'waiting-1' });

    const told = await waiting.next((f) => f.type === 'queued', 30_000);
    expect(told).toMatchObject({ type: 'queued', request_id: 'waiting-1', userid: `${run}-waiting` });
    expect(told.position).toBeGreaterThanOrEqual(1);
    expect(told).not.toHaveProperty('event_id');

    const final = await waiting.next((f) => f.type === 'response', 60_000);
    expect(final.request_id).toBe('waiting-1');
    const types = waiting.frames.map((f) => String(f.type));
    expect(types[0]).toBe('ack');
    const firstDelta = types.indexOf('response.delta');
    expect(firstDelta).toBeGreaterThan(types.indexOf('queued'));
    // Positions only before the first delta, never increasing while it waits.
    expect(types.slice(firstDelta)).not.toContain('queued');
    const positions = ofType(waiting, 'queued').map((f) => Number(f.position));
    expect(positions).toEqual([...positions].sort((a, b) => b - a));
    const deltas = ofType(waiting, 'response.delta');
    expect(deltas.map((d) => String(d.delta)).join('')).toBe(final.content);
    for (const f of waiting.frames) expect(serverFrameSchema.safeParse(f).success).toBe(true);

    // The original protocol: its one response frame, nothing else, although it waited too.
    const answer = await plain.next((f) => f.type === 'response', 60_000);
    expect(String(answer.content)).toMatch(/^Echo: an original protocol question/);
    expect(plain.frames.map((f) => f.type)).toEqual(['response']);

    // The first prompt found the worker free: never queued.
    await first.next((f) => f.type === 'response', 60_000);
    expect(ofType(first, 'queued')).toEqual([]);
  });

  it('a resume replays the answer of the prompt that waited, but no position: they are not in the log', async () => {
    // From the start of the user's log: every frame retained about `waiting-1` comes again.
    const resumed = await open(`${run}-waiting`, '&stream=1&last_event_id=0-0');
    await waitFor(() => resumed.frames.some((f) => f.type === 'response' && f.request_id === 'waiting-1'), {
      timeoutMs: 10_000,
      message: 'the replayed answer',
    });
    const replayed = resumed.frames.filter((f) => f.request_id === 'waiting-1').map((f) => f.type);
    expect(replayed).toContain('response.delta');
    expect(replayed).not.toContain('queued');
  });
});
