/**
 * A steady, bounded load for a long time while the RSS of the target processes is sampled: the
 * memory check of the embedded default (and of the stack). Built from the load generator's pieces
 * (tokens, sockets, the frame tracker, the open-loop schedule).
 */
import type WebSocket from 'ws';
import {
  createMessageTracker,
  failureReason,
  filler,
  openUserSocket,
  runOpenLoop,
  sleep,
  tokenMaker,
} from '../load-test/client.js';
import type { LatencySummary } from '../load-test/stats.js';
import { streams, type SoakOptions } from './options.js';
import { sampleRss, type TargetProcess } from './targets.js';
import { curve, judge, type Verdict } from './verdict.js';

export interface SoakSample {
  /** Seconds since the first message was due. */
  elapsedS: number;
  /** VmRSS per target process, bytes (0: the process was gone). */
  rssBytes: Record<string, number>;
  totalBytes: number;
  sent: number;
  answered: number;
  inFlight: number;
}

export interface SoakResult {
  options: SoakOptions & { url: string };
  targets: TargetProcess[];
  startedAt: string;
  /** Seconds of sending (the schedule), and of the whole run including the grace period. */
  sendS: number;
  durationS: number;
  achievedRate: number;
  connections: {
    users: number;
    streaming: number;
    /** Sockets opened, first connects and reconnects. */
    opened: number;
    reconnects: number;
    failures: Record<string, number>;
    /** Sockets the server closed during the run, by close code. */
    closedByServer: Record<string, number>;
  };
  messages: {
    sent: number;
    acked: number;
    answered: number;
    /** Error frames by code. */
    errors: Record<string, number>;
    /** Sent and never finished (no final `response`, no `error`) by the end of the grace period. */
    lost: number;
    /** Of `lost`, those that had been acked. */
    lostAcked: number;
    /** Due while its user's socket was down (reconnecting): not sent. */
    skipped: number;
  };
  latencyMs: Record<'ack' | 'firstDelta' | 'final', LatencySummary>;
  samples: SoakSample[];
  /** Targets that were gone (no /proc entry) at some sample: their zeros are left out of the verdict. */
  gone: string[];
  /** Start, every 5 minutes, end (every sample for runs under 10 minutes). */
  curve: SoakSample[];
  /** Per target process, and `total` over all of them. */
  verdicts: Record<string, Verdict>;
  /** `growing` when any process grows; else `flat` (or `inconclusive` for too short a run). */
  verdict: Verdict['verdict'];
}

const MB = 1024 * 1024;
export const mb = (bytes: number) => (bytes / MB).toFixed(1);
const clock = (seconds: number) => {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

/**
 * Runs the soak against `url`, sampling `targets`. `stopped` ends the sending early (Ctrl-C); the
 * result then covers what ran.
 */
export async function runSoak(
  options: SoakOptions & { url: string },
  targets: TargetProcess[],
  progress: (line: string) => void = () => {},
  stopped: () => boolean = () => false,
): Promise<SoakResult> {
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const tracker = createMessageTracker();
  const makeToken = await tokenMaker(options);
  const run = Date.now().toString(36);
  const sockets: Array<WebSocket | undefined> = [];
  const failures: Record<string, number> = {};
  const closedByServer: Record<string, number> = {};
  const counts = { opened: 0, reconnects: 0, skipped: 0 };
  let finished = false;
  const streaming = Array.from({ length: options.users }, (_, i) => streams(i, options.streamShare));

  /** Keeps user `i` connected until the run ends: reconnects after a close or a failed attempt. */
  async function keepConnected(i: number, first: () => void): Promise<void> {
    const userid = `soak-${run}-${i}`;
    let delayMs = 500;
    let attempt = 0;
    while (!finished) {
      try {
        const ws = await openUserSocket({
          url: options.url,
          userid,
          token: await makeToken(userid),
          stream: streaming[i] ?? false,
        });
        if (attempt++ > 0) counts.reconnects++;
        counts.opened++;
        sockets[i] = ws;
        ws.on('message', (data) => tracker.onFrame(String(data)));
        first();
        delayMs = 500;
        const code = await new Promise<number>((resolve) => ws.once('close', resolve));
        sockets[i] = undefined;
        if (finished) return;
        closedByServer[code] = (closedByServer[code] ?? 0) + 1;
      } catch (err) {
        const reason = failureReason(err);
        failures[reason] = (failures[reason] ?? 0) + 1;
        // A 429 from the per-IP token limit clears within a minute; back off towards that.
        delayMs = Math.min(delayMs * 2, 30_000);
      }
      if (!finished) await sleep(delayMs);
    }
  }

  const samples: SoakSample[] = [];
  const gone = new Set<string>();
  let sendStart = performance.now();
  async function sample(): Promise<SoakSample> {
    const rss = await sampleRss(targets);
    for (const t of targets) {
      if (rss[t.name] || gone.has(t.name)) continue;
      gone.add(t.name);
      progress(`[soak] warning: ${t.name} (pid ${t.pid}) is gone`);
    }
    const s: SoakSample = {
      elapsedS: Math.round((performance.now() - sendStart) / 100) / 10,
      rssBytes: rss,
      totalBytes: Object.values(rss).reduce((a, b) => a + b, 0),
      sent: tracker.counts.sent,
      answered: tracker.counts.answered,
      inFlight: tracker.inFlight(),
    };
    samples.push(s);
    return s;
  }
  const rssLine = (s: SoakSample) =>
    targets.length === 1
      ? `rss ${mb(s.totalBytes)} MB`
      : `rss ${mb(s.totalBytes)} MB (${Object.entries(s.rssBytes)
          .map(([name, b]) => `${name} ${mb(b)}`)
          .join(', ')})`;

  // Connect everyone first (≤ 200 connects per second), then start the clock.
  const connected: Array<Promise<void>> = [];
  const loops: Array<Promise<void>> = [];
  for (let i = 0; i < options.users && !stopped(); i++) {
    let ready = () => {};
    connected.push(new Promise<void>((resolve) => (ready = resolve)));
    loops.push(keepConnected(i, ready));
    await sleep(5);
  }
  // A user that cannot connect within a minute does not hold the run back (its messages are skipped).
  let connectTimer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(connected),
    new Promise((resolve) => (connectTimer = setTimeout(resolve, 60_000))),
  ]);
  clearTimeout(connectTimer);
  progress(
    `[soak] ${counts.opened}/${options.users} users connected (${streaming.filter(Boolean).length} streaming) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  const sendS = options.minutes * 60;
  const content = filler(options.contentLength);
  sendStart = performance.now();
  progress(`[soak] start: ${rssLine(await sample())}`);
  const sampler = setInterval(() => {
    void sample().then((s) =>
      progress(
        `[soak] ${(s.elapsedS / 60).toFixed(1)}/${options.minutes} min: ${rssLine(s)}; sent ${s.sent} answered ${s.answered} in flight ${s.inFlight}`,
      ),
    );
  }, options.sampleSeconds * 1000);
  const ticker = setInterval(
    () => {
      const c = tracker.counts;
      const t = (performance.now() - sendStart) / 1000;
      progress(
        `[soak] ${t.toFixed(0)} s: sent ${c.sent} (${(c.sent / Math.max(t, 1e-3)).toFixed(1)}/s) acked ${c.acked} answered ${c.answered} errors ${c.errored} in flight ${tracker.inFlight()} reconnects ${counts.reconnects}`,
      );
    },
    Math.min(10_000, options.sampleSeconds * 1000),
  );

  // Message k goes to user k % users, so each user sends evenly, `rate / users` per second.
  const window = await runOpenLoop({
    rate: options.rate,
    count: Number.POSITIVE_INFINITY,
    stopAt: sendStart + sendS * 1000,
    stopped,
    send: (k) => {
      const ws = sockets[k % options.users];
      if (ws && ws.readyState === ws.OPEN) tracker.send(ws, `s${k}`, `soak ${k} ${content}`);
      else counts.skipped++;
    },
  });
  clearInterval(ticker);
  const graceEnd = performance.now() + options.grace * 1000;
  while (performance.now() < graceEnd && tracker.inFlight() > 0 && !stopped()) await sleep(50);
  clearInterval(sampler);
  const end = await sample();
  progress(
    `[soak] end: ${rssLine(end)}; sent ${end.sent} answered ${end.answered} in flight ${end.inFlight}`,
  );
  finished = true;
  for (const ws of sockets) ws?.terminate();
  await Promise.all(loops);

  const rule = {
    // Shorter runs get a proportionally shorter warm-up.
    warmupS: Math.min(options.warmupMinutes * 60, Math.round(sendS * 0.2)),
    windowSamples: 5,
    tolerancePct: options.tolerancePct,
  };
  const series = (pick: (s: SoakSample) => number) =>
    samples.map((s) => ({ elapsedS: s.elapsedS, bytes: pick(s) })).filter((p) => p.bytes > 0);
  const verdicts: Record<string, Verdict> = {};
  for (const t of targets)
    verdicts[t.name] = judge(
      series((s) => s.rssBytes[t.name] ?? 0),
      rule,
    );
  if (targets.length > 1)
    verdicts.total = judge(
      series((s) => s.totalBytes),
      rule,
    );
  const all = Object.values(verdicts).map((v) => v.verdict);
  const unfinished = tracker.unfinished();
  const latency = tracker.latencyMs();
  const c = tracker.counts;
  return {
    options,
    targets,
    startedAt,
    sendS: (window.to - window.from) / 1000,
    durationS: (performance.now() - t0) / 1000,
    achievedRate: c.sent / Math.max((window.to - window.from) / 1000, 1e-3),
    connections: {
      users: options.users,
      streaming: streaming.filter(Boolean).length,
      opened: counts.opened,
      reconnects: counts.reconnects,
      failures,
      closedByServer,
    },
    messages: {
      sent: c.sent,
      acked: c.acked,
      answered: c.answered,
      errors: { ...tracker.errors },
      lost: unfinished.acked + unfinished.unacked,
      lostAcked: unfinished.acked,
      skipped: counts.skipped,
    },
    latencyMs: { ack: latency.ack, firstDelta: latency.firstDelta, final: latency.final },
    samples,
    gone: [...gone],
    curve: curve(samples, sendS >= 600 ? 300 : 0),
    verdicts,
    verdict: all.includes('growing') ? 'growing' : all.includes('inconclusive') ? 'inconclusive' : 'flat',
  };
}

/** The end-of-run report, as lines. */
export function formatReport(result: SoakResult): string[] {
  const m = result.messages;
  const lines = [
    `soak: ${result.options.minutes} min at ${result.options.rate} msgs/s (achieved ${result.achievedRate.toFixed(1)}), ${result.connections.users} users (${result.connections.streaming} streaming) against ${result.options.url}`,
    `messages: sent ${m.sent}, acked ${m.acked}, answered ${m.answered}, lost ${m.lost} (acked ${m.lostAcked}), errors ${JSON.stringify(m.errors)}, skipped ${m.skipped}`,
    `connections: opened ${result.connections.opened}, reconnects ${result.connections.reconnects}, failures ${JSON.stringify(result.connections.failures)}, closed by server ${JSON.stringify(result.connections.closedByServer)}`,
    `latency ms: ack p50 ${result.latencyMs.ack.p50} p99 ${result.latencyMs.ack.p99}; final p50 ${result.latencyMs.final.p50} p99 ${result.latencyMs.final.p99} max ${result.latencyMs.final.max}`,
    '',
    'RSS (MB):',
  ];
  const names = result.targets.map((t) => t.name);
  const head = ['m:ss', ...names, ...(names.length > 1 ? ['total'] : [])];
  const rows = result.curve.map((s) => [
    clock(s.elapsedS),
    ...names.map((n) => mb(s.rssBytes[n] ?? 0)),
    ...(names.length > 1 ? [mb(s.totalBytes)] : []),
  ]);
  const widths = head.map((_, i) => Math.max(...[head, ...rows].map((r) => (r[i] ?? '').length)));
  for (const row of [head, ...rows])
    lines.push(row.map((cell, i) => cell.padStart(widths[i] ?? 0)).join('  '));
  lines.push('');
  for (const [name, v] of Object.entries(result.verdicts)) {
    const numbers =
      v.early && v.late
        ? `: ${mb(v.early.medianBytes)} MB (${v.early.fromS}–${v.early.toS} s) → ${mb(v.late.medianBytes)} MB (${v.late.fromS}–${v.late.toS} s), ${(v.growthPct ?? 0).toFixed(1)}%`
        : '';
    lines.push(`${name}: ${v.verdict}${numbers}`);
  }
  if (result.gone.length > 0) lines.push(`gone during the run: ${result.gone.join(', ')}`);
  lines.push(`rule: ${Object.values(result.verdicts)[0]?.rule ?? ''}`);
  lines.push(`verdict: ${result.verdict}`);
  return lines;
}
