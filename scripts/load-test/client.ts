/**
 * The pieces of the load generator that other drivers reuse (the soak runs them for half an hour):
 * tokens, one socket per user, a tracker that turns frames into counts and latencies, and the
 * open-loop schedule.
 */
import { readFile } from 'node:fs/promises';
import { createTokenService } from '../../websocket-server/src/token-service.js';
import WebSocket from 'ws';
import type { LoadTestOptions } from './options.js';
import { latencyHistogram, summarize, type LatencySummary } from './stats.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  // Signed like the gateways' own dev tokens (site `dev`): the target must have DEV_TOKENS=true.
  const tokens = createTokenService({
    secret: (await readFile(options.tokenSource.slice('secret:'.length), 'utf8')).trim(),
    ttlSeconds: 3600,
  });
  return async (userid) => (await tokens.issue(userid)).token;
}

/** Opens one user's socket with acks on (and deltas when `stream`); rejects with the reason it failed. */
export async function openUserSocket(opts: {
  url: string;
  userid: string;
  token: string;
  stream: boolean;
  localAddress?: string;
}): Promise<WebSocket> {
  const query = `token=${encodeURIComponent(opts.token)}&userid=${encodeURIComponent(opts.userid)}&ack=1${opts.stream ? '&stream=1' : ''}`;
  const ws = new WebSocket(
    `${opts.url.replace(/^http/, 'ws')}/ws?${query}`,
    opts.localAddress ? { localAddress: opts.localAddress } : {},
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return ws;
}

/** A connection failure as a short reason: the errno code, or the message (`HTTP 429`). */
export function failureReason(err: unknown): string {
  return err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
}

interface Pending {
  sentAt: number;
  acked: boolean;
  firstDeltaAt?: number;
  lastDeltaAt?: number;
}

export type LatencyName = 'connect' | 'ack' | 'firstDelta' | 'deltaGap' | 'final';

export interface TrackerCounts {
  sent: number;
  acked: number;
  answered: number;
  /** Error frames (any code), including those about no message of ours. */
  errored: number;
  frames: number;
}

/**
 * Follows every message sent from send to its final frame. A message is forgotten once it got its
 * final `response` or an `error`, so a run of hours keeps only what is in flight.
 */
export interface MessageTracker {
  readonly counts: Readonly<TrackerCounts>;
  readonly errors: Readonly<Record<string, number>>;
  /** Sends a message with idempotency key `id` and starts following it. */
  send(ws: WebSocket, id: string, content: string): void;
  /** Feeds one frame received on any socket. */
  onFrame(raw: string): void;
  recordConnect(us: number): void;
  /** Sent and not finished yet. */
  inFlight(): number;
  /** Sent and not finished: `acked` got an ack (lost if it never ends), the rest got nothing. */
  unfinished(): { acked: number; unacked: number };
  latencyMs(): Record<LatencyName, LatencySummary>;
  /** With model timing given: the pipeline's own cost (see `LoadTestResult.overheadMs`). */
  overheadMs(): Record<'firstDelta' | 'deltaGap' | 'final', LatencySummary> | undefined;
}

export function createMessageTracker(
  model: { ttftMs: number; tokenMs: number } | undefined = undefined,
): MessageTracker {
  const h = {
    connect: latencyHistogram(),
    ack: latencyHistogram(),
    firstDelta: latencyHistogram(),
    deltaGap: latencyHistogram(),
    final: latencyHistogram(),
  };
  const overhead = {
    firstDelta: latencyHistogram(),
    deltaGap: latencyHistogram(),
    final: latencyHistogram(),
  };
  const modelUs = model && { ttft: model.ttftMs * 1000, token: model.tokenMs * 1000 };
  /** Records `us − modelUs` of the pipeline's own cost (≥ 1 µs: HDR keeps no zero or negative). */
  const recordOverhead = (hist: ReturnType<typeof latencyHistogram>, us: number, minus: number) =>
    hist.recordValue(Math.max(1, Math.round(us - minus)));
  const us = (from: number) => Math.max(1, Math.round((performance.now() - from) * 1000));
  const pending = new Map<string, Pending>();
  const counts: TrackerCounts = { sent: 0, acked: 0, answered: 0, errored: 0, frames: 0 };
  const errors: Record<string, number> = {};

  return {
    counts,
    errors,
    send(ws, id, content) {
      pending.set(id, { sentAt: performance.now(), acked: false });
      ws.send(JSON.stringify({ type: 'message', content, id }));
      counts.sent++;
    },
    onFrame(raw) {
      counts.frames++;
      const frame = JSON.parse(raw) as { type: string; request_id?: string; code?: string; content?: string };
      const p = frame.request_id ? pending.get(frame.request_id) : undefined;
      if (frame.type === 'error') {
        counts.errored++;
        errors[frame.code ?? 'unknown'] = (errors[frame.code ?? 'unknown'] ?? 0) + 1;
        if (frame.request_id) pending.delete(frame.request_id);
        return;
      }
      if (!p || !frame.request_id) return;
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
          if (modelUs) recordOverhead(overhead.firstDelta, t, modelUs.ttft);
        } else if (p.lastDeltaAt !== undefined) {
          const t = us(p.lastDeltaAt);
          h.deltaGap.recordValue(t);
          if (modelUs) recordOverhead(overhead.deltaGap, t, modelUs.token);
        }
        p.lastDeltaAt = now;
      } else if (frame.type === 'response') {
        pending.delete(frame.request_id);
        counts.answered++;
        const t = us(p.sentAt);
        h.final.recordValue(t);
        if (modelUs) {
          // The mock's tokens are `Echo:` and then one per space-led word: its stream took TTFT plus
          // one interval per token after the first.
          const tokens = (frame.content ?? '').split(' ').length;
          recordOverhead(overhead.final, t, modelUs.ttft + (tokens - 1) * modelUs.token);
        }
      }
    },
    recordConnect(t) {
      h.connect.recordValue(t);
    },
    inFlight: () => pending.size,
    unfinished() {
      let acked = 0;
      for (const p of pending.values()) if (p.acked) acked++;
      return { acked, unacked: pending.size - acked };
    },
    latencyMs: () => ({
      connect: summarize(h.connect),
      ack: summarize(h.ack),
      firstDelta: summarize(h.firstDelta),
      deltaGap: summarize(h.deltaGap),
      final: summarize(h.final),
    }),
    overheadMs: () =>
      modelUs && {
        firstDelta: summarize(overhead.firstDelta),
        deltaGap: summarize(overhead.deltaGap),
        final: summarize(overhead.final),
      },
  };
}

/**
 * Open-loop schedule: call k is due at start + k / rate (all at once for rate 0), whether or not
 * earlier messages were answered, so a slow server shows up as latency and loss instead of a slower
 * client. Stops after `count` calls or once `stopAt` (performance.now()) has passed. Returns the
 * window it sent in.
 */
export async function runOpenLoop(opts: {
  rate: number;
  count: number;
  stopAt: number;
  send: (k: number) => void;
  /** Checked before each call: true ends the loop early (Ctrl-C). */
  stopped?: () => boolean;
}): Promise<{ from: number; to: number; calls: number }> {
  const from = performance.now();
  let k = 0;
  for (; k < opts.count && performance.now() < opts.stopAt && !opts.stopped?.(); k++) {
    const due = opts.rate > 0 ? from + (k * 1000) / opts.rate : from;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    if (opts.stopped?.()) break;
    opts.send(k);
  }
  return { from, to: performance.now(), calls: k };
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
