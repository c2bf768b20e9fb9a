/**
 * The pieces of the load generator that other drivers reuse: tokens, a tracker that turns frames
 * into counts and latencies, and the open-loop schedule. The load test's users are `@relay/client`
 * clients (load-test.ts); the soak (scripts/soak) still drives raw sockets (`openUserSocket`,
 * `tracker.send`/`onFrame`) and counts its own reconnects.
 */
import { readFile } from 'node:fs/promises';
import type { RelayClientOptions, TokenResponse } from '@relay/client';
import { createTokenService } from '../../websocket-server/src/token-service.js';
import WebSocket from 'ws';
import type { LoadTestOptions } from './options.js';
import { latencyHistogram, summarize, type LatencySummary } from './stats.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Session tokens signed with the gateways' secret, like their own dev tokens (site `dev`, mode
 * `dev`): the target must have DEV_TOKENS=true. Thousands of users from one address would hit the
 * per-IP limit of POST /token.
 */
async function signedTokens(file: string): Promise<(userid: string) => Promise<TokenResponse>> {
  const tokens = createTokenService({ secret: (await readFile(file, 'utf8')).trim(), ttlSeconds: 3600 });
  return async (userid) => {
    const { token, expiresIn } = await tokens.issue(userid);
    return { token, userid, expires_in: expiresIn, site: 'dev', mode: 'dev' };
  };
}

/**
 * How a load-test user's SDK client gets its tokens: `post`, dev mode (POST /token?userid=);
 * `secret:<file>`, tokens signed locally and handed to the client (`issue`).
 */
export async function identityMaker(
  options: Pick<LoadTestOptions, 'tokenSource'>,
): Promise<(userid: string) => Pick<RelayClientOptions, 'userid' | 'issue'>> {
  if (options.tokenSource === 'post') return (userid) => ({ userid });
  const sign = await signedTokens(options.tokenSource.slice('secret:'.length));
  return (userid) => ({ issue: () => sign(userid) });
}

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
  const sign = await signedTokens(options.tokenSource.slice('secret:'.length));
  return async (userid) => (await sign(userid)).token;
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

/**
 * A connection failure as a short reason: the errno code, `HTTP <status>` for a refused upgrade,
 * `POST /token: HTTP <status>` for a refused token, else the message.
 */
export function failureReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // `ws` without an 'unexpected-response' listener (the SDK's sockets) reports a refused upgrade so.
  const refused = /^Unexpected server response: (\d+)$/.exec(err.message);
  if (refused) return `HTTP ${refused[1]}`;
  // The SDK's RelayHttpError from /token: its HTTP status (0: the request never got there).
  const status = (err as { status?: unknown }).status;
  if (err.name === 'RelayHttpError' && typeof status === 'number') {
    return status === 0 ? 'POST /token: network error' : `POST /token: HTTP ${status}`;
  }
  return (err as NodeJS.ErrnoException).code ?? err.message;
}

/** The fields of a server frame the tracker reads (an SDK `ServerFrame` is one). */
export interface TrackedFrame {
  type: string;
  request_id?: string | undefined;
  event_id?: string | undefined;
  code?: string | undefined;
  content?: string | undefined;
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
  /** Frames of the answers: acks, deltas, finals and errors. */
  frames: number;
  /**
   * `queued` frames (a streaming prompt waiting for a worker, docs/delivery.md): progress, not part
   * of an answer, so not in `frames` (frames/s and frames per answer stay comparable).
   */
  queued: number;
}

/**
 * Follows every message sent from send to its final frame. A message is forgotten once it got its
 * final `response` or an `error`, so a run of hours keeps only what is in flight.
 */
export interface MessageTracker {
  readonly counts: Readonly<TrackerCounts>;
  readonly errors: Readonly<Record<string, number>>;
  /** Starts following message `id`, sent just now. */
  track(id: string): void;
  /**
   * Feeds one frame received for any user. An `error` is counted; it ends its message when it comes
   * from the log (`event_id`): a refusal without one may still be sent again (see `finished`).
   */
  frame(frame: TrackedFrame): void;
  /** The message ended without an answer (the SDK gave up on a refused send). */
  finished(id: string): void;
  /** Raw sockets (the soak): sends a message with idempotency key `id` and starts following it. */
  send(ws: WebSocket, id: string, content: string): void;
  /** Raw sockets (the soak): one frame as received; every error ends its message (no resend). */
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
  const counts: TrackerCounts = { sent: 0, acked: 0, answered: 0, errored: 0, frames: 0, queued: 0 };
  const errors: Record<string, number> = {};

  function frame(f: TrackedFrame): void {
    if (f.type === 'queued') {
      counts.queued++;
      return;
    }
    counts.frames++;
    const p = f.request_id ? pending.get(f.request_id) : undefined;
    if (f.type === 'error') {
      counts.errored++;
      errors[f.code ?? 'unknown'] = (errors[f.code ?? 'unknown'] ?? 0) + 1;
      if (f.request_id && f.event_id !== undefined) pending.delete(f.request_id);
      return;
    }
    if (!p || !f.request_id) return;
    const now = performance.now();
    if (f.type === 'ack' && !p.acked) {
      p.acked = true;
      counts.acked++;
      h.ack.recordValue(us(p.sentAt));
    } else if (f.type === 'response.delta') {
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
    } else if (f.type === 'response') {
      pending.delete(f.request_id);
      counts.answered++;
      const t = us(p.sentAt);
      h.final.recordValue(t);
      if (modelUs) {
        // The mock's tokens are `Echo:` and then one per space-led word: its stream took TTFT plus
        // one interval per token after the first.
        const tokens = (f.content ?? '').split(' ').length;
        recordOverhead(overhead.final, t, modelUs.ttft + (tokens - 1) * modelUs.token);
      }
    }
  }

  function track(id: string): void {
    pending.set(id, { sentAt: performance.now(), acked: false });
    counts.sent++;
  }

  return {
    counts,
    errors,
    track,
    frame,
    finished(id) {
      pending.delete(id);
    },
    send(ws, id, content) {
      track(id);
      ws.send(JSON.stringify({ type: 'message', content, id }));
    },
    onFrame(raw) {
      const f = JSON.parse(raw) as TrackedFrame;
      frame(f);
      if (f.type === 'error' && f.request_id) pending.delete(f.request_id);
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
