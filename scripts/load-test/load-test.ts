import {
  createRelayClient,
  type RelayClient,
  type RelayClientOptions,
  type WebSocketLike,
} from '@relay/client';
import WebSocket from 'ws';
import {
  createMessageTracker,
  failureReason,
  filler,
  identityMaker,
  runOpenLoop,
  sleep,
  type MessageTracker,
} from './client.js';
import type { LoadTestOptions } from './options.js';
import type { LatencySummary } from './stats.js';

export { filler, tokenMaker } from './client.js';

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
  /** `queued` frames (waiting for a worker), not counted in `frames`. */
  queuedFrames: number;
  /**
   * Bytes the users' TCP sockets read over the run (upgrade responses and WebSocket framing
   * included; compressed when the server negotiated permessage-deflate).
   */
  bytesReceived: number;
  latencyMs: Record<'connect' | 'ack' | 'firstDelta' | 'deltaGap' | 'final', LatencySummary>;
  /**
   * The pipeline's own cost, with `modelTtftMs`/`modelTokenMs` given: first delta − TTFT, delta gap
   * − token interval, final − (TTFT + (tokens − 1) × interval) of that answer. A negative difference
   * (a gap shorter than the interval after a late delta) counts as 0.
   */
  overheadMs?: Record<'firstDelta' | 'deltaGap' | 'final', LatencySummary>;
}

/** One load-test user's connection as the SDK makes it, and why its first attempt failed. */
interface UserConnection {
  url: string;
  stream: boolean;
  identity: Pick<RelayClientOptions, 'userid' | 'issue'>;
  localAddress: string | undefined;
  tracker: MessageTracker;
  /** A connection the server closed after it was open (the client reconnects and resumes). */
  onServerClose: (code: number) => void;
  /** Each TCP socket once upgraded (a reconnect makes another), for the bytes it read. */
  onSocket: (socket: { bytesRead: number }) => void;
}

/**
 * Connects one user through `@relay/client` (token, socket with acks and deltas, reconnect with
 * resume) and resolves once open. A first attempt that fails is not retried, so the statistics
 * count connection failures as before: the client is closed and the promise rejects with the
 * reason (the socket's own error when the upgrade failed, which the SDK does not expose).
 */
async function connectUser(user: UserConnection): Promise<RelayClient> {
  let socketError: Error | undefined;
  const client = createRelayClient({
    url: user.url,
    ...user.identity,
    stream: user.stream,
    createSocket: (url) => {
      const ws = new WebSocket(url, user.localAddress ? { localAddress: user.localAddress } : {});
      ws.on('error', (err) => (socketError = err));
      ws.once('upgrade', (res) => user.onSocket(res.socket));
      return ws as unknown as WebSocketLike;
    },
  });
  client.onFrame((frame) => user.tracker.frame(frame));
  // A refused send the client gave up on (a non-retryable code, or too many refusals).
  client.onFinal((requestId, frame) => {
    if (frame.type === 'error') user.tracker.finished(requestId);
  });
  let opened = false;
  /** Open right now: a `reconnecting` then is a close of a live connection, not a failed retry. */
  let live = false;
  const first = new Promise<void>((resolve, reject) => {
    client.onState((state, detail) => {
      if (state === 'open') {
        opened = true;
        live = true;
        resolve();
        return;
      }
      if (live && detail.code !== undefined) user.onServerClose(detail.code);
      live = false;
      if (!opened && (state === 'reconnecting' || state === 'closed')) {
        reject(detail.error ?? socketError ?? new Error(`closed ${detail.code ?? ''}`.trim()));
      }
    });
  });
  // `first` carries the outcome; start()'s own rejection (after close) says nothing more.
  client.start().catch(() => {});
  try {
    await first;
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}

/**
 * Open-loop load: messages are sent on a schedule (the arrival rate), whether or not earlier ones
 * were answered, so a slow server shows up as latency and loss instead of a slower client. Each
 * user is a `@relay/client` client, as the widget and the chat page are.
 */
export async function runLoadTest(
  options: LoadTestOptions,
  progress: (line: string) => void = () => {},
  /** `beforeSending`: every connection is open, the first message is about to go (take samples). */
  hooks: { beforeSending?: () => Promise<void> } = {},
): Promise<LoadTestResult> {
  const started = performance.now();
  const deadline = started + options.duration * 1000;
  const model =
    options.modelTtftMs !== undefined && options.modelTokenMs !== undefined
      ? { ttftMs: options.modelTtftMs, tokenMs: options.modelTokenMs }
      : undefined;
  const tracker = createMessageTracker(model);
  const connectFailures: Record<string, number> = {};
  const closedByServer: Record<string, number> = {};
  let finished = false;
  const counts = { open: 0, failed: 0 };
  const identityOf = await identityMaker(options);
  const run = Date.now().toString(36);
  const clients: RelayClient[] = [];
  const sockets: Array<{ bytesRead: number }> = [];

  const report = setInterval(() => {
    const t = ((performance.now() - started) / 1000).toFixed(0);
    const c = tracker.counts;
    progress(
      `[load] ${t}s open ${counts.open}/${options.users} sent ${c.sent} acked ${c.acked} answered ${c.answered} errors ${c.errored} in flight ${tracker.inFlight()}`,
    );
  }, 1000);

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
          const client = await connectUser({
            url: options.url,
            stream: options.stream,
            identity: identityOf(userid),
            localAddress,
            tracker,
            onServerClose: (code) => {
              if (!finished) closedByServer[code] = (closedByServer[code] ?? 0) + 1;
            },
            onSocket: (socket) => sockets.push(socket),
          });
          tracker.recordConnect(Math.max(1, Math.round((performance.now() - t0) * 1000)));
          counts.open++;
          clients[i] = client;
        } catch (err) {
          counts.failed++;
          const reason = failureReason(err);
          connectFailures[reason] = (connectFailures[reason] ?? 0) + 1;
        }
      })(),
    );
    await sleep(gap);
  }
  await Promise.all(connecting);

  // Message k goes to user k % users.
  const content = filler(options.contentLength);
  await hooks.beforeSending?.();
  const window = await runOpenLoop({
    rate: options.rate,
    count: options.users * options.messages,
    stopAt: deadline,
    send: (k) => {
      const client = clients[k % options.users];
      // While it reconnects the client queues the message and sends it once open again.
      if (client && client.state !== 'closed') tracker.track(client.send(`msg ${k} ${content}`));
    },
  });
  const sendSeconds = (window.to - window.from) / 1000;

  // Wait for answers, bounded by the grace period and the overall duration.
  const graceEnd = Math.min(deadline, performance.now() + options.grace * 1000);
  while (performance.now() < graceEnd && tracker.inFlight() > 0) await sleep(50);
  clearInterval(report);
  finished = true;
  await Promise.all(clients.map((client) => client?.close()));

  const c = tracker.counts;
  const unfinished = tracker.unfinished();
  const overheadMs = tracker.overheadMs();
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
      sent: c.sent,
      acked: c.acked,
      answered: c.answered,
      errors: { ...tracker.errors },
      lost: unfinished.acked,
      unanswered: unfinished.unacked,
    },
    achievedRate: c.sent / Math.max(sendSeconds, 1e-3),
    sendWindow: { from: window.from, to: window.to },
    frames: c.frames,
    framesPerSecond: c.frames / Math.max(sendSeconds, 1e-3),
    queuedFrames: c.queued,
    bytesReceived: sockets.reduce((sum, socket) => sum + socket.bytesRead, 0),
    latencyMs: tracker.latencyMs(),
    ...(overheadMs && { overheadMs }),
  };
}
