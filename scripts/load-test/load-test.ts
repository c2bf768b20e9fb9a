import WebSocket from 'ws';
import {
  createMessageTracker,
  failureReason,
  filler,
  openUserSocket,
  runOpenLoop,
  sleep,
  tokenMaker,
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
  latencyMs: Record<'connect' | 'ack' | 'firstDelta' | 'deltaGap' | 'final', LatencySummary>;
  /**
   * The pipeline's own cost, with `modelTtftMs`/`modelTokenMs` given: first delta − TTFT, delta gap
   * − token interval, final − (TTFT + (tokens − 1) × interval) of that answer. A negative difference
   * (a gap shorter than the interval after a late delta) counts as 0.
   */
  overheadMs?: Record<'firstDelta' | 'deltaGap' | 'final', LatencySummary>;
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
  const model =
    options.modelTtftMs !== undefined && options.modelTokenMs !== undefined
      ? { ttftMs: options.modelTtftMs, tokenMs: options.modelTokenMs }
      : undefined;
  const tracker = createMessageTracker(model);
  const connectFailures: Record<string, number> = {};
  const closedByServer: Record<string, number> = {};
  let finished = false;
  const counts = { open: 0, failed: 0 };
  const makeToken = await tokenMaker(options);
  const run = Date.now().toString(36);
  const sockets: WebSocket[] = [];

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
          const token = await makeToken(userid);
          const ws = await openUserSocket({
            url: options.url,
            userid,
            token,
            stream: options.stream,
            ...(localAddress && { localAddress }),
          });
          tracker.recordConnect(Math.max(1, Math.round((performance.now() - t0) * 1000)));
          counts.open++;
          ws.on('message', (data) => tracker.onFrame(String(data)));
          ws.on('close', (code) => {
            if (!finished) closedByServer[code] = (closedByServer[code] ?? 0) + 1;
          });
          sockets[i] = ws;
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
      const ws = sockets[k % options.users];
      if (ws && ws.readyState === WebSocket.OPEN) tracker.send(ws, `m${k}`, `msg ${k} ${content}`);
    },
  });
  const sendSeconds = (window.to - window.from) / 1000;

  // Wait for answers, bounded by the grace period and the overall duration.
  const graceEnd = Math.min(deadline, performance.now() + options.grace * 1000);
  while (performance.now() < graceEnd && tracker.inFlight() > 0) await sleep(50);
  clearInterval(report);
  finished = true;
  for (const ws of sockets) ws?.terminate();

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
    latencyMs: tracker.latencyMs(),
    ...(overheadMs && { overheadMs }),
  };
}
