import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnEntry, waitForLog, type SpawnedService } from '../../test/support/spawn-service.js';
import { runLoadTest } from './load-test.js';
import { loadTestOptionsSchema } from './options.js';

const TTFT_MS = 150;
const TOKEN_MS = 30;
// Above the natural length of these prompts' answers (~18), so every answer is exactly this long.
const TOKENS = 25;

describe('npm run load-test against npm start', () => {
  let app: SpawnedService;
  let url: string;

  beforeAll(async () => {
    app = spawnEntry('app/main.ts', {
      PORT: '0',
      MOCK_OPENAI_TTFT_MS: String(TTFT_MS),
      MOCK_OPENAI_TOKEN_MS: String(TOKEN_MS),
      MOCK_OPENAI_MIN_TOKENS: String(TOKENS),
    });
    const line = await waitForLog(app, /ai-relay \(embedded\) on http/);
    url = `http://127.0.0.1:${Number(line.port)}`;
  });
  afterAll(async () => {
    expect(await app.stop()).toBe(0);
  });

  it('answers every message and reports the pipeline cost with the model time subtracted', async () => {
    const result = await runLoadTest(
      loadTestOptionsSchema.parse({
        url,
        users: 5,
        messages: 2,
        rate: 20,
        duration: 60,
        grace: 20,
        modelTtftMs: TTFT_MS,
        modelTokenMs: TOKEN_MS,
      }),
    );
    expect(result.connections).toMatchObject({ open: 5, failed: 0 });
    expect(result.messages).toMatchObject({ sent: 10, acked: 10, answered: 10, lost: 0, unanswered: 0 });
    // Every answer is TOKENS tokens long: the model alone takes TTFT + (TOKENS − 1) × interval.
    const modelMs = TTFT_MS + (TOKENS - 1) * TOKEN_MS;
    expect(result.latencyMs.firstDelta.p50).toBeGreaterThanOrEqual(TTFT_MS);
    expect(result.latencyMs.final.p50).toBeGreaterThanOrEqual(modelMs);
    const overhead = result.overheadMs;
    if (!overhead) throw new Error('no overhead reported although the model timing was given');
    // Both are HDR percentiles (3 significant digits): equal to within that precision, not to the µs.
    const expected = result.latencyMs.firstDelta.p50 - TTFT_MS;
    expect(Math.abs(overhead.firstDelta.p50 - expected)).toBeLessThanOrEqual(Math.max(0.5, expected * 0.002));
    expect(overhead.final.count).toBe(10);
    expect(overhead.final.p50).toBeLessThan(result.latencyMs.final.p50 - modelMs + 1);
    // ack + up to TOKENS deltas (30 ms apart, so rarely merged by the 25 ms flush) + final.
    expect(result.frames).toBeLessThanOrEqual(10 * (TOKENS + 2));
    expect(result.frames).toBeGreaterThan(10 * (TOKENS - 2));
    // Each user's second message waits behind its first (one request per user at a time), so it
    // hears its queue position; those frames are counted apart from the answers' frames.
    expect(result.queuedFrames).toBeGreaterThan(0);
  });
});
