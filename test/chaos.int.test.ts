/**
 * Chaos suite (SPEC §7, docs/delivery.md): N users × M messages through nginx on the real local
 * stack while message-relay, ai-consumer and a gateway are SIGKILLed and Redis and Kafka are
 * restarted, one at a time. Every acked request must end in exactly one final frame for its user;
 * the deltas after the last reset must add up to the final content; no frame may reach another user.
 *
 * The clients are the resilient client of @relay/client (reconnect, resend by id, resume). The assertions
 * count the raw frames off the sockets, before the client's own de-duplication, so a double final
 * from the server cannot hide behind it.
 */
import { createResilientClient, type ResilientClient, type WebSocketLike } from '@relay/client';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startService, stopService } from '../scripts/infra/harness.js';
import {
  stackDown,
  stackKill,
  stackStart,
  stackToken,
  stackUp,
  stackUrls,
} from '../scripts/stack/testing.js';

const USERS = 40;
const MESSAGES = 10;
/** Gap between two messages of one user; the run sends for about MESSAGES × this. */
const SEND_EVERY_MS = 2500;

const env = {
  MOCK_OPENAI_TTFT_MS: '300',
  MOCK_OPENAI_TOKEN_MS: '20',
  // The faults, not the limits, are under test.
  RATE_LIMIT_MESSAGES: '1000',
  LOG_LEVEL: 'warn',
  // Short enough that a SIGKILLed consumer's partitions move on quickly.
  KAFKA_SESSION_TIMEOUT_MS: '6000',
};

interface RawFrame {
  type: string;
  userid?: string;
  request_id?: string;
  event_id?: string;
  content?: string;
  code?: string;
}

interface UserRun {
  userid: string;
  client: ResilientClient;
  /** Every frame as it came off a socket, duplicates included. */
  raw: RawFrame[];
  sent: string[];
  /** request_id → the final as the client reports it, with its streamed deltas. */
  finals: Map<string, { frame: RawFrame; streamed: string }>;
}

const runs: UserRun[] = [];
const faults: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function makeUser(i: number): Promise<UserRun> {
  const userid = `chaos-${Date.now().toString(36)}-${i}`;
  const run: UserRun = {
    userid,
    raw: [],
    sent: [],
    finals: new Map(),
    client: undefined as unknown as ResilientClient,
  };
  run.client = createResilientClient({
    url: stackUrls().ws,
    userid,
    getToken: () => stackToken(userid),
    createSocket: (url) => {
      const socket = new WebSocket(url);
      socket.on('message', (data) => run.raw.push(JSON.parse(String(data)) as RawFrame));
      return socket as unknown as WebSocketLike;
    },
    stream: true,
    reconnectBaseMs: 100,
    reconnectMaxMs: 2000,
    maxReconnectAttempts: 200,
    maxDisconnectedMs: 90_000,
    maxSendAttempts: 200,
  });
  run.client.onFinal((requestId, frame, streamed) => {
    run.finals.set(requestId, { frame: frame as RawFrame, streamed });
  });
  await run.client.start();
  return run;
}

async function fault(name: string, action: () => Promise<unknown>): Promise<void> {
  const started = Date.now();
  await action();
  faults.push(`${name} (${Date.now() - started} ms)`);
  process.stderr.write(`[chaos] ${name} at ${started}..${Date.now()}\n`);
}

describe('chaos: exactly one final per acked message through crashes and restarts', () => {
  beforeAll(async () => {
    await stackUp(env);
  }, 240_000);

  afterAll(async () => {
    await Promise.all(runs.map((r) => r.client.close()));
    // Kafka and Redis may have been restarted here: make sure they run for the files after this one.
    await startService('kafka');
    await startService('redis');
    await stackDown();
  }, 240_000);

  it(`${USERS} users × ${MESSAGES} messages while relay, consumer and a gateway crash and Redis and Kafka restart`, async () => {
    for (let i = 0; i < USERS; i++) runs.push(await makeUser(i));

    // Each user sends on its own schedule, staggered, so every fault hits work in flight.
    const sending = runs.map(async (run, u) => {
      await sleep((u * SEND_EVERY_MS) / USERS);
      for (let k = 0; k < MESSAGES; k++) {
        run.sent.push(run.client.send(`chaos ${run.userid} message ${k}`));
        await sleep(SEND_EVERY_MS);
      }
    });

    const chaos = (async () => {
      await sleep(2000);
      await fault('kill message-relay', () => stackKill('message-relay'));
      await sleep(1500);
      await fault('start message-relay', () => stackStart('message-relay'));
      await sleep(2000);
      await fault('kill ai-consumer', () => stackKill('ai-consumer'));
      await sleep(1500);
      await fault('start ai-consumer', () => stackStart('ai-consumer'));
      await sleep(2000);
      await fault('kill gateway-1', () => stackKill('gateway-1'));
      await sleep(1500);
      await fault('start gateway-1', () => stackStart('gateway-1'));
      await sleep(2000);
      await fault('restart redis', async () => {
        await stopService('redis');
        await startService('redis');
      });
      await sleep(2000);
      await fault('restart kafka', async () => {
        await stopService('kafka');
        await startService('kafka');
      });
    })();

    await Promise.all([...sending, chaos]);
    const total = USERS * MESSAGES;
    await waitFor(() => runs.every((r) => r.finals.size === r.sent.length), {
      timeoutMs: 150_000,
      intervalMs: 250,
      message: `finals for all ${total} messages`,
    }).catch((err: unknown) => {
      const missing = runs.flatMap((r) =>
        r.sent.filter((id) => !r.finals.has(id)).map((id) => `${r.userid}/${id}`),
      );
      throw new Error(
        `${String(err)}; ${missing.length} without a final, e.g. ${missing.slice(0, 5).join(', ')}`,
      );
    });

    // Count from the raw frames: distinct finals per request (by event_id), foreign frames.
    let wrongUser = 0;
    let doubleFinals = 0;
    let errorFinals = 0;
    let mismatched = 0;
    const errorCodes: Record<string, number> = {};
    for (const run of runs) {
      wrongUser += run.raw.filter((f) => f.userid !== undefined && f.userid !== run.userid).length;
      for (const id of run.sent) {
        const finals = run.raw.filter(
          (f) => (f.type === 'response' || f.type === 'error') && f.request_id === id && f.event_id,
        );
        if (new Set(finals.map((f) => f.event_id)).size > 1) doubleFinals++;
        const final = run.finals.get(id);
        if (final?.frame.type === 'error') {
          errorFinals++;
          errorCodes[final.frame.code ?? '?'] = (errorCodes[final.frame.code ?? '?'] ?? 0) + 1;
        } else if (final && final.streamed !== final.frame.content) {
          mismatched++;
          // What the socket carried for this request, to tell where the text went wrong.
          if (mismatched <= 3) {
            const trace = run.raw
              .filter((f) => f.request_id === id)
              .map((f) => {
                const d = f as RawFrame & { seq?: number; delta?: string };
                const seq = d.seq !== undefined ? `#${d.seq}` : '';
                const text = d.delta !== undefined ? `(${JSON.stringify(d.delta)})` : '';
                return `${f.type}${seq}@${f.event_id ?? '-'}${text}`;
              });
            process.stderr.write(
              `[chaos] deltas do not add up for ${run.userid}/${id}:\n  streamed ${JSON.stringify(final.streamed)}\n  final    ${JSON.stringify(final.frame.content)}\n  raw ${trace.join(' ')}\n`,
            );
          }
        }
      }
    }
    const answered = runs.reduce(
      (n, r) => n + [...r.finals.values()].filter((f) => f.frame.type === 'response').length,
      0,
    );
    const summary = {
      users: USERS,
      messages: total,
      finals: runs.reduce((n, r) => n + r.finals.size, 0),
      answered,
      errorFinals,
      errorCodes,
      doubleFinals,
      deltasNotAddingUp: mismatched,
      framesToWrongUser: wrongUser,
      faults,
    };
    process.stderr.write(`[chaos] ${JSON.stringify(summary)}\n`);

    expect(wrongUser).toBe(0);
    expect(doubleFinals).toBe(0);
    expect(mismatched).toBe(0);
    expect(summary.finals).toBe(total);
  }, 420_000);
});
