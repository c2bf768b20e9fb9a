/**
 * Grounded answers and the fallback model on the real local stack: a knowledge folder for the `dev`
 * site (the site of dev tokens), the ai-consumer indexing it through the mock's embeddings, and a
 * client behind nginx whose answer cites the file and whose `response` frame lists it in `sources`;
 * with the primary model forced down, the frame says the fallback answered.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, fetchToken, type TestClient } from '../websocket-server/src/testing/ws-client.js';
import { stackDown, stackUp, stackUrls } from '../scripts/stack/testing.js';

const RETURNS = `# Returns

Zephyr kettles can be returned within 45 days of delivery, unused and in their original box.
`;
const SHIPPING = `# Shipping

Orders ship from our warehouse in Lyon; standard delivery takes 3 to 5 working days.
`;

let dir = '';
let base = '';
const clients: TestClient[] = [];
const run = `k${Date.now().toString(36)}`;

async function open(userid: string): Promise<TestClient> {
  const token = await fetchToken(base, userid);
  const c = await connectClient(`${base.replace('http', 'ws')}/ws?token=${token}&userid=${userid}`);
  clients.push(c);
  return c;
}

describe('grounded answers and the fallback model on the local stack', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relay-stack-knowledge-'));
    await writeFile(join(dir, 'returns.md'), RETURNS);
    await writeFile(join(dir, 'shipping.md'), SHIPPING);
    // Ports: the test stack's, or the process environment's (testStackEnv).
    const up = await stackUp({
      MOCK_OPENAI_TTFT_MS: '0',
      MOCK_OPENAI_TOKEN_MS: '1',
      LOG_LEVEL: 'warn',
      KNOWLEDGE_SOURCES: JSON.stringify({ dev: dir }),
      OPENAI_MODEL: 'mock-primary',
      OPENAI_FALLBACK_MODEL: 'mock-fallback',
      OPENAI_RETRY_BASE_DELAY_MS: '5',
      OPENAI_RETRY_MAX_DELAY_MS: '20',
    });
    expect(up.services.every((s) => s.healthy)).toBe(true);
    base = stackUrls().http;
  }, 240_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await stackDown();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it("answers from the site's knowledge file, cites it, and lists it in the response frame's sources", async () => {
    const userid = `${run}-alice`;
    const c = await open(userid);
    c.send({ type: 'message', content: 'How many days do I have to return my Zephyr kettle?', userid });
    const response = await c.next((f) => f.type === 'response', 30_000);
    expect(response.sources).toEqual([{ name: 'returns.md', score: expect.any(Number) }]);
    expect(String(response.content)).toContain('[returns.md] Zephyr kettles can be returned within 45 days');
    expect(response.model).toBe('mock-primary');
  });

  it('an unrelated question is answered without excerpts: empty sources, no citation', async () => {
    const userid = `${run}-bob`;
    const c = await open(userid);
    c.send({ type: 'message', content: 'What is the capital of France?', userid });
    const response = await c.next((f) => f.type === 'response', 30_000);
    expect(response.sources).toEqual([]);
    expect(String(response.content)).not.toContain('[');
  });

  it('with the primary model down the fallback answers, and the frame says so', async () => {
    const userid = `${run}-carol`;
    const c = await open(userid);
    c.send({ type: 'message', content: 'anyone there? [mock:status=503,model=mock-primary]', userid });
    const response = await c.next((f) => f.type === 'response', 30_000);
    expect(response.model).toBe('mock-fallback');
    expect(String(response.content)).toMatch(/^Echo: anyone there\? — /);
    const metrics = await (
      await fetch(`http://127.0.0.1:${stackUrls().ports['ai-consumer']}/metrics`)
    ).text();
    expect(metrics).toMatch(/ai_consumer_model_fallbacks_total\{reason="upstream_unavailable"[^}]*\} 1/);
    expect(metrics).toMatch(/ai_consumer_knowledge_chunks\{site="dev"[^}]*\} 2/);
  });
});
