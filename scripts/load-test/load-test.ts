import { readFile } from 'node:fs/promises';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import type { LoadTestOptions } from './options.js';
import { latencyHistogram, summarize, type LatencySummary } from './stats.js';

export interface LoadTestResult {
  options: Omit<LoadTestOptions, 'json'>;
  durationS: number;
  /** `failures`: connection failures by reason (HTTP status or error code). */
  connections: {
    attempted: number;
    open: number;
    failed: number;
    failures: Record<string, number>;
    /** Sockets the server closed during the run, by close code. */
    closedByServer: Record<string, number>;
  };
  messages: {
    sent: number;
    acked: number;
    answered: number;
    errors: Record<string, number>;
    /** Acked but never answered by the end of the grace period. */
    lost: number;
    /** Sent, neither acked nor refused with an error (no answer of any kind). */
    unanswered: number;
  };
  /** Messages sent per second while sending. */
  achievedRate: number;
  /** `performance.now()` of the first and last send, to line up samples taken meanwhile. */
  sendWindow: { from: number; to: number };
  /**
   * Frames received over the run, and per second of sending: the delivered rate the offered load
   * sustained (every frame belongs to a message sent in the send window; the answers' tail after
   * it only shifts them in time).
   */
  frames: number;
  framesPerSecond: number;
  latencyMs: Record<'connect' | 'ack' | 'firstDelta' | 'deltaGap' | 'final', LatencySummary>;
  /**
   * The pipeline's own cost, with `modelTtftMs`/`modelTokenMs` given: first delta − TTFT, delta gap
   * − token interval, final − (TTFT + (tokens − 1) × interval) of that answer. A negative difference
   * (a gap shorter than the interval after a late delta) counts as 0.
   */
  overheadMs?: Record<'firstDelta' | 'deltaGap' | 'final', LatencySummary>;
}

interface Pending {
  sentAt: number;
  acked: boolean;
  firstDeltaAt?: number;
  lastDeltaAt?: number;
  done: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Tokens from POST /token, or signed locally with the gateways' secret (many users, one IP). */
export async function tokenMaker(
  options: Pick<LoadTestOptions, 'url' | 'tokenSource'>,
): Promise<(userid: string) => Promise<string>> {
  if (options.tokenSource === 'post') {
    return async (userid) => {
      const res = await fetch(`${options.url}/token?userid=${encodeURIComponent(userid)}`, {
        method: 'POST',
      });
      if (!res.ok) throw new Error(`POST /token: HTTP ${res.status}`);
      return ((await res.json()) as { token: string }).token;
    };
  }
  const key = new TextEncoder().encode(
    (await readFile(options.tokenSource.slice('secret:'.length), 'utf8')).trim(),
  );
  return (userid) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(userid)
      .setIssuer('ai-relay')
      .setAudience('ai-relay-ws')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(key);
}

/**
 * Open-loop load: messages are sent on a schedule (the arrival rate), whether or not earlier ones
 * were answered, so a slow server shows up as latency and loss instead of a slower client.
 */
export async function runLoadTest(
  options: LoadTestOptions,
  progress: (line: string) => void = () => {},
  /** `beforeSending`: every connection is open, the first message is about to go (take samples). */
  hooks: { beforeSending?: () => Promise<void> } = {},
): Promise<LoadTestResult> {
  const started = performance.now();
  const deadline = started + options.duration * 1000;
  const h = {
    connect: latencyHistogram(),
    ack: latencyHistogram(),
    firstDelta: latencyHistogram(),
    deltaGap: latencyHistogram(),
    final: latencyHistogram(),
  };
  const model =
    options.modelTtftMs !== undefined && options.modelTokenMs !== undefined
      ? { ttftUs: options.modelTtftMs * 1000, tokenUs: options.modelTokenMs * 1000 }
      : undefined;
  const overhead = {
    firstDelta: latencyHistogram(),
    deltaGap: latencyHistogram(),
    final: latencyHistogram(),
  };
  /** Records `us − modelUs` of the pipeline's own cost (≥ 1 µs: HDR keeps no zero or negative). */
  const recordOverhead = (h: ReturnType<typeof latencyHistogram>, us: number, modelUs: number) =>
    h.recordValue(Math.max(1, Math.round(us - modelUs)));
  const errors: Record<string, number> = {};
  const connectFailures: Record<string, number> = {};
  const closedByServer: Record<string, number> = {};
  let finished = false;
  const pending = new Map<string, Pending>();
  const counts = { sent: 0, acked: 0, answered: 0, frames: 0, open: 0, failed: 0 };
  const makeToken = await tokenMaker(options);
  const run = Date.now().toString(36);
  const wsBase = options.url.replace(/^http/, 'ws');
  const sockets: WebSocket[] = [];
  const us = (from: number) => Math.max(1, Math.round((performance.now() - from) * 1000));

  const report = setInterval(() => {
    const t = ((performance.now() - started) / 1000).toFixed(0);
    progress(
      `[load] ${t}s open ${counts.open}/${options.users} sent ${counts.sent} acked ${counts.acked} answered ${counts.answered} errors ${Object.values(errors).reduce((a, b) => a + b, 0)} in flight ${[...pending.values()].filter((p) => !p.done).length}`,
    );
  }, 1000);

  function onFrame(raw: string): void {
    counts.frames++;
    const frame = JSON.parse(raw) as { type: string; request_id?: string; code?: string; content?: string };
    const p = frame.request_id ? pending.get(frame.request_id) : undefined;
    if (frame.type === 'error') {
      errors[frame.code ?? 'unknown'] = (errors[frame.code ?? 'unknown'] ?? 0) + 1;
      if (p && !p.done) p.done = true;
      return;
    }
    if (!p) return;
    const now = performance.now();
    if (frame.type === 'ack' && !p.acked) {
      p.acked = true;
      counts.acked++;
      h.ack.recordValue(us(p.sentAt));
    } else if (frame.type === 'response.delta') {
      if (p.firstDeltaAt === undefined) {
        p.firstDeltaAt = now;
        const t = us(p.sentAt);
        h.firstDelta.recordValue(t);
        if (model) recordOverhead(overhead.firstDelta, t, model.ttftUs);
      } else if (p.lastDeltaAt !== undefined) {
        const t = us(p.lastDeltaAt);
        h.deltaGap.recordValue(t);
        if (model) recordOverhead(overhead.deltaGap, t, model.tokenUs);
      }
      p.lastDeltaAt = now;
    } else if (frame.type === 'response' && !p.done) {
      p.done = true;
      counts.answered++;
      const t = us(p.sentAt);
      h.final.recordValue(t);
      if (model) {
        // The mock's tokens are `Echo:` and then one per space-led word: its stream took TTFT plus
        // one interval per token after the first.
        const tokens = (frame.content ?? '').split(' ').length;
        recordOverhead(overhead.final, t, model.ttftUs + (tokens - 1) * model.tokenUs);
      }
    }
  }

  // Connect every user, at most connectRate per second, spread over the source addresses.
  const gap = 1000 / options.connectRate;
  const connecting: Array<Promise<void>> = [];
  for (let i = 0; i < options.users && performance.now() < deadline; i++) {
    const userid = `load-${run}-${i}`;
    const localAddress = options.sourceAddresses.length
      ? options.sourceAddresses[i % options.sourceAddresses.length]
      : undefined;
    connecting.push(
      (async () => {
        const t0 = performance.now();
        try {
          const token = await makeToken(userid);
          const query = `token=${encodeURIComponent(token)}&userid=${userid}&ack=1${options.stream ? '&stream=1' : ''}`;
          const ws = new WebSocket(`${wsBase}/ws?${query}`, localAddress ? { localAddress } : {});
          await new Promise<void>((resolve, reject) => {
            ws.once('open', () => resolve());
            ws.once('error', reject);
            ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
          });
          h.connect.recordValue(us(t0));
          counts.open++;
          ws.on('message', (data) => onFrame(String(data)));
          ws.on('close', (code) => {
            if (!finished) closedByServer[code] = (closedByServer[code] ?? 0) + 1;
          });
          sockets[i] = ws;
        } catch (err) {
          counts.failed++;
          const reason =
            err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
          connectFailures[reason] = (connectFailures[reason] ?? 0) + 1;
        }
      })(),
    );
    await sleep(gap);
  }
  await Promise.all(connecting);

  // Open-loop schedule: message k goes out at start + k / rate, to user k % users.
  const total = options.users * options.messages;
  const content = filler(options.contentLength);
  await hooks.beforeSending?.();
  const sendStart = performance.now();
  for (let k = 0; k < total && performance.now() < deadline; k++) {
    const due = options.rate > 0 ? sendStart + (k * 1000) / options.rate : sendStart;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const ws = sockets[k % options.users];
    if (!ws || ws.readyState !== WebSocket.OPEN) continue;
    const id = `m${k}`;
    pending.set(id, { sentAt: performance.now(), acked: false, done: false });
    ws.send(JSON.stringify({ type: 'message', content: `msg ${k} ${content}`, id }));
    counts.sent++;
  }
  const sendEnd = performance.now();
  const sendSeconds = (sendEnd - sendStart) / 1000;

  // Wait for answers, bounded by the grace period and the overall duration.
  const graceEnd = Math.min(deadline, performance.now() + options.grace * 1000);
  while (performance.now() < graceEnd && [...pending.values()].some((p) => !p.done)) await sleep(50);
  clearInterval(report);
  finished = true;
  for (const ws of sockets) ws?.terminate();

  const values = [...pending.values()];
  return {
    options: { ...options, json: undefined } as Omit<LoadTestOptions, 'json'>,
    durationS: (performance.now() - started) / 1000,
    connections: {
      attempted: options.users,
      open: counts.open,
      failed: counts.failed,
      failures: connectFailures,
      closedByServer,
    },
    messages: {
      sent: counts.sent,
      acked: counts.acked,
      answered: counts.answered,
      errors,
      lost: values.filter((p) => p.acked && !p.done).length,
      unanswered: values.filter((p) => !p.acked && !p.done).length,
    },
    achievedRate: counts.sent / Math.max(sendSeconds, 1e-3),
    sendWindow: { from: sendStart, to: sendEnd },
    frames: counts.frames,
    framesPerSecond: counts.frames / Math.max(sendSeconds, 1e-3),
    latencyMs: {
      connect: summarize(h.connect),
      ack: summarize(h.ack),
      firstDelta: summarize(h.firstDelta),
      deltaGap: summarize(h.deltaGap),
      final: summarize(h.final),
    },
    ...(model && {
      overheadMs: {
        firstDelta: summarize(overhead.firstDelta),
        deltaGap: summarize(overhead.deltaGap),
        final: summarize(overhead.final),
      },
    }),
  };
}

const WORDS = 'the relay carries each prompt through kafka and back over redis to the socket'.split(' ');

/**
 * About `length` characters of words: the mock model echoes a prompt's first eight words, so a
 * prompt of words gets a longer, more realistic streamed answer than one long token would.
 */
export function filler(length: number): string {
  const out: string[] = [];
  let size = 0;
  for (let i = 0; size < length; i++) {
    const word = WORDS[i % WORDS.length] ?? 'x';
    out.push(word);
    size += word.length + 1;
  }
  return out.join(' ');
}
