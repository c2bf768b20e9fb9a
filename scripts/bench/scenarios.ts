/**
 * The benchmark's scenarios (issue 5), each one run of one measurement against one target:
 * `stack` is nginx in front of the two uWS gateways (the system as deployed), `uws` is gateway-1
 * alone and `ws` the baseline gateway on the `ws` package alone (same intake, delivery, Kafka and
 * Redis path), for the side-by-side figures.
 */
import { runLoadTest, tokenMaker, type LoadTestResult } from '../load-test/load-test.js';
import { loadTestOptionsSchema, type LoadTestOptions } from '../load-test/options.js';
import type { LatencySummary } from '../load-test/stats.js';
import { openIdleConnections } from './idle-connections.js';
import { lagIsFlat, startLagSampler, type LagSample } from './kafka-lag.js';
import { cpuSecondsByGroup, groupRssBytes, openFileLimit, ownCpuSeconds, rssBytes } from './proc-stats.js';

export type Target = 'stack' | 'uws' | 'ws';

/** The mock model's timing for a scenario: restarting the mock applies it. */
export interface ModelTiming {
  ttftMs: number;
  tokenMs: number;
  /** Shortest answer in tokens (MOCK_OPENAI_MIN_TOKENS); 0 keeps the mock's natural ~16. */
  minTokens: number;
}

/** What scenarios need of the running bench stack (cli.ts provides it). */
export interface BenchContext {
  url(target: Target): string;
  /** Process groups per service whose CPU counts toward the pipeline, for this target. */
  pipelineGroups(target: Target): Promise<Record<string, number[]>>;
  /** Process groups not counted toward the pipeline but reported (the mock model). */
  otherGroups(): Promise<Record<string, number[]>>;
  /** Pid of the one gateway process behind a direct target. */
  gatewayPid(target: 'uws' | 'ws'): Promise<number>;
  /** Pid (and process group) of the stack's nginx. */
  nginxPid(): Promise<number>;
  /** Restarts the gateway behind a direct target (a fresh heap for memory figures). */
  restartGateway(target: 'uws' | 'ws'): Promise<void>;
  /** Restarts the mock model with this timing unless it already runs with it. */
  useModel(timing: ModelTiming): Promise<void>;
  kafkaBrokers: string[];
  secretFile: string;
  sourceAddresses: string[];
  progress(line: string): void;
}

function loadOptions(context: BenchContext, target: Target, overrides: Partial<LoadTestOptions>) {
  return loadTestOptionsSchema.parse({
    url: context.url(target),
    tokenSource: `secret:${context.secretFile}`,
    sourceAddresses: context.sourceAddresses,
    connectRate: 2000,
    stream: true,
    ...overrides,
  });
}

function messageCounts(result: LoadTestResult) {
  const m = result.messages;
  return {
    sent: m.sent,
    answered: m.answered,
    lost: m.lost,
    unanswered: m.unanswered,
    errors: Object.values(m.errors).reduce((a, b) => a + b, 0),
  };
}

/**
 * Load that is not measured: JIT warm-up of every service, Kafka consumer fetch sessions and Redis
 * scripts loaded. Without it the first scenario after a start paid for all of that.
 */
export async function warmUp(context: BenchContext, target: Target, seconds: number): Promise<void> {
  await context.useModel(THROUGHPUT_MODEL);
  context.progress(`[bench] warm-up ${target}: 50 prompts/s for ${seconds} s (not measured)`);
  await runLoadTest(
    loadOptions(context, target, { users: 150, messages: Math.ceil(seconds / 3), rate: 50, grace: 10 }),
    () => {},
  );
}

// ---------------------------------------------------------------------------------------------
// Latency: pipeline overhead and per-token added latency, at 100 prompts/s with ~250 streams.

/** TTFT 500 ms and ~16 tokens 120 ms apart: each answer streams ~2.5 s, so 100/s keeps ~250 open. */
export const LATENCY_MODEL: ModelTiming = { ttftMs: 500, tokenMs: 120, minTokens: 0 };

export interface LatencyRun {
  target: Target;
  rate: number;
  seconds: number;
  counts: ReturnType<typeof messageCounts>;
  /** Streams open at once (Little's law: rate × mean time to final). */
  concurrentStreams: number;
  overheadMs: Record<'firstDelta' | 'deltaGap' | 'final', LatencySummary>;
  ackMs: LatencySummary;
}

export async function latencyScenario(
  context: BenchContext,
  target: Target,
  opts: { rate: number; seconds: number },
): Promise<LatencyRun> {
  await context.useModel(LATENCY_MODEL);
  // One message per user in flight at a time (the consumer serialises a user's requests): enough
  // users that each sends once every ~10 s.
  const users = opts.rate * 10;
  const messages = Math.max(1, Math.round(opts.seconds / 10));
  const result = await runLoadTest(
    loadOptions(context, target, {
      users,
      messages,
      rate: opts.rate,
      duration: opts.seconds + 120,
      grace: 30,
      modelTtftMs: LATENCY_MODEL.ttftMs,
      modelTokenMs: LATENCY_MODEL.tokenMs,
    }),
    context.progress,
  );
  if (!result.overheadMs) throw new Error('load test reported no overhead (model timing missing)');
  return {
    target,
    rate: result.achievedRate,
    seconds: (result.sendWindow.to - result.sendWindow.from) / 1000,
    counts: messageCounts(result),
    concurrentStreams: Math.round(result.achievedRate * (result.latencyMs.final.p50 / 1000)),
    overheadMs: result.overheadMs,
    ackMs: result.latencyMs.ack,
  };
}

// ---------------------------------------------------------------------------------------------
// Throughput and CPU per frame: 60-token answers, tokens 30 ms apart (each its own delta frame, as
// with a model streaming ~33 tokens/s), so an answer is ~62 frames and streams ~1.9 s.

export const THROUGHPUT_MODEL: ModelTiming = { ttftMs: 100, tokenMs: 30, minTokens: 60 };
/** Frames a client gets per answer at THROUGHPUT_MODEL when nothing is merged: ack, 60 deltas, final. */
const FRAMES_PER_ANSWER = THROUGHPUT_MODEL.minTokens + 2;

export interface LoadWindow {
  result: LoadTestResult;
  lag: LagSample[];
  /** CPU seconds per process group over the send window and the answers' tail. */
  cpu: Record<string, number>;
  /** CPU seconds of the load generator itself over the same window. */
  loadGeneratorCpu: number;
  /** CPU seconds per second each group used idle, just before the load (JVM, timers, scrapes). */
  idleCpuPerSecond: Record<string, number>;
  /** Seconds from the first send until every answer was in. */
  windowSeconds: number;
}

const IDLE_SAMPLE_MS = 5000;

/** One open-loop run at `rate` prompts/s for `seconds`, with lag and CPU sampled around it. */
async function measuredLoad(
  context: BenchContext,
  target: Target,
  opts: {
    rate: number;
    seconds: number;
    /** @default THROUGHPUT_MODEL */
    model?: ModelTiming;
    /** `false`: the original protocol (no deltas, the final `response` only). @default true */
    stream?: boolean;
    /** @default one prompt per user every 3 s */
    users?: number;
  },
): Promise<LoadWindow> {
  const { rate, seconds } = opts;
  const model = opts.model ?? THROUGHPUT_MODEL;
  await context.useModel(model);
  const groups = { ...(await context.pipelineGroups(target)), ...(await context.otherGroups()) };
  // A user's requests run one at a time: each user sends one prompt every 3 s (answers take ~2 s).
  const users = opts.users ?? Math.max(50, Math.round(rate * 3));
  const idleFrom = await cpuSecondsByGroup(groups);
  await new Promise((r) => setTimeout(r, IDLE_SAMPLE_MS));
  const idleTo = await cpuSecondsByGroup(groups);
  const idleCpuPerSecond = Object.fromEntries(
    Object.keys(groups).map((name) => [
      name,
      ((idleTo[name] ?? 0) - (idleFrom[name] ?? 0)) / (IDLE_SAMPLE_MS / 1000),
    ]),
  );
  const sampler = await startLagSampler(context.kafkaBrokers);
  let before: Record<string, number> = {};
  let ownBefore = 0;
  let startedAt = 0;
  try {
    const result = await runLoadTest(
      loadOptions(context, target, {
        users,
        messages: Math.max(1, Math.ceil((seconds * rate) / users)),
        rate,
        duration: seconds + 120,
        grace: 20,
        stream: opts.stream ?? true,
        modelTtftMs: model.ttftMs,
        modelTokenMs: model.tokenMs,
      }),
      context.progress,
      {
        beforeSending: async () => {
          before = await cpuSecondsByGroup(groups);
          ownBefore = ownCpuSeconds();
          startedAt = performance.now();
        },
      },
    );
    const after = await cpuSecondsByGroup(groups);
    const windowSeconds = (performance.now() - startedAt) / 1000;
    const cpu = Object.fromEntries(
      Object.keys(groups).map((name) => [name, (after[name] ?? 0) - (before[name] ?? 0)]),
    );
    const lag = (await sampler.stop()).filter(
      (s) => s.at >= result.sendWindow.from && s.at <= result.sendWindow.to,
    );
    return {
      result,
      lag,
      cpu,
      loadGeneratorCpu: ownCpuSeconds() - ownBefore,
      idleCpuPerSecond,
      windowSeconds,
    };
  } catch (error) {
    await sampler.stop().catch(() => undefined);
    throw error;
  }
}

export interface ThroughputStep {
  promptsPerSecond: number;
  framesPerSecond: number;
  counts: ReturnType<typeof messageCounts>;
  finalOverheadP99Ms: number;
  /** The load test's overhead summaries (first delta, delta gap, final), for a closer look. */
  overheadMs?: LoadTestResult['overheadMs'];
  maxLag: number;
  lagFlat: boolean;
  /** Every criterion of the goal, the p99 final overhead included. */
  pass: boolean;
  /** Carried, latency aside: nothing lost or refused, lag flat, the offered rate reached. */
  capacityPass: boolean;
  /** Why the step failed, when it did. */
  reason?: string;
}

export interface ThroughputRun {
  target: Target;
  steps: ThroughputStep[];
  /** Frames/s delivered at the highest step that passed (0 when none did). */
  sustainedFramesPerSecond: number;
  sustainedPromptsPerSecond: number;
  /** Frames/s at the highest step carried without loss or growing lag, whatever its latency. */
  capacityFramesPerSecond: number;
}

/** A step passes when nothing is lost or refused, the lag stays flat and final p99 overhead < 25 ms. */
export const FINAL_OVERHEAD_LIMIT_MS = 25;

export async function throughputScenario(
  context: BenchContext,
  target: Target,
  opts: { rates: number[]; seconds: number },
): Promise<ThroughputRun> {
  const steps: ThroughputStep[] = [];
  for (const rate of opts.rates) {
    context.progress(`[bench] throughput ${target}: ${rate} prompts/s for ${opts.seconds} s`);
    const { result, lag } = await measuredLoad(context, target, { rate, seconds: opts.seconds });
    const counts = messageCounts(result);
    const finalP99 = result.overheadMs?.final.p99 ?? Number.POSITIVE_INFINITY;
    // Slack: half a second of prompts may sit uncommitted between two watermark commits.
    const { flat, maxLag } = lagIsFlat(lag, Math.max(100, rate / 2));
    // An overloaded consumer does not grow its Kafka lag: its delta batcher merges tokens while a
    // publish is in flight, so the backlog shows up as fewer, larger frames (and latency) instead.
    const expectedFrames = counts.answered * FRAMES_PER_ANSWER;
    const merged = 1 - result.frames / Math.max(1, expectedFrames);
    const capacityReasons = [
      counts.lost + counts.unanswered + counts.errors > 0 &&
        `${counts.lost} lost, ${counts.unanswered} unanswered, ${counts.errors} errors`,
      !flat && `consumer lag grew (max ${maxLag})`,
      merged > 0.05 && `${(merged * 100).toFixed(0)} % of the tokens merged (the consumer fell behind)`,
      result.achievedRate < rate * 0.95 && `load generator reached only ${result.achievedRate.toFixed(0)}/s`,
    ].filter((r): r is string => typeof r === 'string');
    const reasons = [
      ...capacityReasons,
      ...(finalP99 >= FINAL_OVERHEAD_LIMIT_MS ? [`final p99 overhead ${finalP99} ms`] : []),
    ];
    const step: ThroughputStep = {
      promptsPerSecond: result.achievedRate,
      framesPerSecond: result.framesPerSecond,
      counts,
      finalOverheadP99Ms: finalP99,
      ...(result.overheadMs && { overheadMs: result.overheadMs }),
      maxLag,
      lagFlat: flat,
      pass: reasons.length === 0,
      capacityPass: capacityReasons.length === 0,
      ...(reasons.length > 0 && { reason: reasons.join('; ') }),
    };
    steps.push(step);
    context.progress(
      `[bench] throughput ${target} ${rate}/s: ${step.framesPerSecond.toFixed(0)} frames/s, final p99 overhead ${finalP99} ms, max lag ${maxLag} → ${step.pass ? 'pass' : `fail (${step.reason})`}`,
    );
    // Past the latency limit the ramp goes on to find the capacity; it ends where that is reached.
    if (!step.capacityPass) break;
  }
  const best = steps.filter((s) => s.pass).at(-1);
  const carried = steps.filter((s) => s.capacityPass).at(-1);
  return {
    target,
    steps,
    sustainedFramesPerSecond: best?.framesPerSecond ?? 0,
    sustainedPromptsPerSecond: best?.promptsPerSecond ?? 0,
    capacityFramesPerSecond: carried?.framesPerSecond ?? 0,
  };
}

export interface CpuRun {
  target: Target;
  promptsPerSecond: number;
  frames: number;
  framesPerSecond: number;
  /** Bytes the load generator's sockets read per answered message (framing included). */
  bytesPerAnswer?: number;
  /** Microseconds of CPU per delivered frame, per pipeline process and in total. */
  usPerFrame: Record<string, number>;
  totalUsPerFrame: number;
  /** The same less what each process uses idle over as long (the cost the frames added). */
  marginalUsPerFrame: Record<string, number>;
  marginalTotalUsPerFrame: number;
  /** Not part of the total: the mock model and the load generator. */
  excludedUsPerFrame: Record<string, number>;
  counts: ReturnType<typeof messageCounts>;
}

export async function cpuScenario(
  context: BenchContext,
  target: Target,
  opts: { rate: number; seconds: number },
): Promise<CpuRun> {
  context.progress(`[bench] cpu ${target}: ${opts.rate} prompts/s for ${opts.seconds} s`);
  const window = await measuredLoad(context, target, opts);
  const cost = await costPer(context, target, window, window.result.frames);
  return {
    target,
    promptsPerSecond: window.result.achievedRate,
    frames: window.result.frames,
    framesPerSecond: window.result.framesPerSecond,
    bytesPerAnswer: window.result.bytesReceived / Math.max(1, window.result.messages.answered),
    usPerFrame: cost.us,
    totalUsPerFrame: cost.total,
    marginalUsPerFrame: cost.marginal,
    marginalTotalUsPerFrame: cost.marginalTotal,
    excludedUsPerFrame: cost.excluded,
    counts: messageCounts(window.result),
  };
}

/** CPU µs per unit (a frame, an answer) of a measured window: per process, in total, less idle. */
async function costPer(context: BenchContext, target: Target, window: LoadWindow, units: number) {
  const n = Math.max(1, units);
  const pipeline = Object.keys(await context.pipelineGroups(target));
  const per = (seconds: number) => (seconds * 1e6) / n;
  const us = Object.fromEntries(pipeline.map((name) => [name, per(window.cpu[name] ?? 0)]));
  const marginal = Object.fromEntries(
    pipeline.map((name) => [
      name,
      per((window.cpu[name] ?? 0) - (window.idleCpuPerSecond[name] ?? 0) * window.windowSeconds),
    ]),
  );
  const excluded = Object.keys(window.cpu).filter((name) => !pipeline.includes(name));
  const sum = (values: Record<string, number>) => Object.values(values).reduce((a, b) => a + b, 0);
  return {
    us,
    total: sum(us),
    marginal,
    marginalTotal: sum(marginal),
    excluded: {
      ...Object.fromEntries(excluded.map((name) => [name, per(window.cpu[name] ?? 0)])),
      'load generator': per(window.loadGeneratorCpu),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The original protocol (issue 13): clients that never ask for deltas, as the original project's
// own clients and load test; each answer is one `response` frame. 20-token answers, tokens 30 ms
// apart after a 100 ms TTFT, so the model takes ~670 ms per answer.

export const ORIGINAL_MODEL: ModelTiming = { ttftMs: 100, tokenMs: 30, minTokens: 20 };
/** The model's own time for one answer of ORIGINAL_MODEL (the mock's first token is at TTFT). */
export const ORIGINAL_MODEL_MS =
  ORIGINAL_MODEL.ttftMs + (ORIGINAL_MODEL.minTokens - 1) * ORIGINAL_MODEL.tokenMs;

export interface AnsweredCpuRun {
  target: Target;
  promptsPerSecond: number;
  answered: number;
  /** Microseconds of CPU per answered message, per pipeline process and in total. */
  usPerAnswer: Record<string, number>;
  totalUsPerAnswer: number;
  marginalUsPerAnswer: Record<string, number>;
  marginalTotalUsPerAnswer: number;
  /** Not part of the total: the mock model and the load generator. */
  excludedUsPerAnswer: Record<string, number>;
  counts: ReturnType<typeof messageCounts>;
}

/** CPU per answered message of every pipeline process, original protocol, below capacity. */
export async function answeredCpuScenario(
  context: BenchContext,
  target: Target,
  opts: { rate: number; seconds: number },
): Promise<AnsweredCpuRun> {
  context.progress(`[bench] answered ${target}: ${opts.rate} msg/s for ${opts.seconds} s, original protocol`);
  const window = await measuredLoad(context, target, { ...opts, model: ORIGINAL_MODEL, stream: false });
  const counts = messageCounts(window.result);
  const cost = await costPer(context, target, window, counts.answered);
  return {
    target,
    promptsPerSecond: window.result.achievedRate,
    answered: counts.answered,
    usPerAnswer: cost.us,
    totalUsPerAnswer: cost.total,
    marginalUsPerAnswer: cost.marginal,
    marginalTotalUsPerAnswer: cost.marginalTotal,
    excludedUsPerAnswer: cost.excluded,
    counts,
  };
}

export interface OriginalStep {
  promptsPerSecond: number;
  counts: ReturnType<typeof messageCounts>;
  /** Send to `response`, whole answer, ms. */
  finalP50Ms: number;
  finalP99Ms: number;
  pass: boolean;
  reason?: string;
}

export interface OriginalCapacityRun {
  target: Target;
  users: number;
  steps: OriginalStep[];
  /** Messages/s at the highest step that passed (0 when none did). */
  sustainedPromptsPerSecond: number;
}

/**
 * The highest rate of the original protocol with nothing lost and p99 of the whole answer under
 * twice the model's own time; the ramp stops at the first step that fails.
 */
export async function originalCapacityScenario(
  context: BenchContext,
  target: Target,
  opts: { rates: number[]; seconds: number; users: number },
): Promise<OriginalCapacityRun> {
  const steps: OriginalStep[] = [];
  const limitMs = 2 * ORIGINAL_MODEL_MS;
  for (const rate of opts.rates) {
    context.progress(
      `[bench] original ${target}: ${rate} msg/s for ${opts.seconds} s, ${opts.users} users, original protocol`,
    );
    const { result } = await measuredLoad(context, target, {
      rate,
      seconds: opts.seconds,
      model: ORIGINAL_MODEL,
      stream: false,
      users: opts.users,
    });
    const counts = messageCounts(result);
    const final = result.latencyMs.final;
    const reasons = [
      counts.lost + counts.unanswered + counts.errors > 0 &&
        `${counts.lost} lost, ${counts.unanswered} unanswered, ${counts.errors} errors`,
      !(final.p99 < limitMs) && `p99 ${final.p99} ms ≥ ${limitMs} ms (2× the model's time)`,
      result.achievedRate < rate * 0.95 && `load generator reached only ${result.achievedRate.toFixed(0)}/s`,
    ].filter((r): r is string => typeof r === 'string');
    const step: OriginalStep = {
      promptsPerSecond: result.achievedRate,
      counts,
      finalP50Ms: final.p50,
      finalP99Ms: final.p99,
      pass: reasons.length === 0,
      ...(reasons.length > 0 && { reason: reasons.join('; ') }),
    };
    steps.push(step);
    context.progress(
      `[bench] original ${target} ${rate}/s: answer p50 ${final.p50} p99 ${final.p99} ms, ${counts.answered}/${counts.sent} answered → ${step.pass ? 'pass' : `fail (${step.reason})`}`,
    );
    if (!step.pass) break;
  }
  return {
    target,
    users: opts.users,
    steps,
    sustainedPromptsPerSecond: steps.filter((s) => s.pass).at(-1)?.promptsPerSecond ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Connections: idle sockets held by one gateway, its RSS per connection and connects per second.

export interface ConnectionLevel {
  requested: number;
  opened: number;
  failed: number;
  failures: Record<string, number>;
  connectsPerSecond: number;
  rssBytes: number;
  /** (RSS − RSS before any connection) / connections. */
  rssPerConnectionBytes: number;
  /** RSS growth per connection since the previous level: without the heap's fixed step-ups. */
  marginalBytesPerConnection: number;
}

export interface ConnectionsRun {
  /** `stack`: through nginx; RSS is nginx's (master and workers), the gateways' not counted. */
  target: Target;
  idleRssBytes: number;
  levels: ConnectionLevel[];
  /** Levels not measured, and why (e.g. the open-file limit of this machine). */
  skipped: Array<{ requested: number; reason: string }>;
}

const FD_MARGIN = 200;

export async function connectionsScenario(
  context: BenchContext,
  target: Target,
  opts: { levels: number[]; settleMs: number },
): Promise<ConnectionsRun> {
  // A fresh gateway: RSS from a heap that earlier scenarios grew would hide the per-connection cost.
  // Through nginx (`stack`) the sockets are nginx's to hold (each proxied one takes two descriptors
  // in a worker) and spread over both gateways: whether they all open is the point there.
  if (target !== 'stack') await context.restartGateway(target);
  const pid = target === 'stack' ? await context.nginxPid() : await context.gatewayPid(target);
  const rssOf = (p: number) => (target === 'stack' ? groupRssBytes(p) : rssBytes(p));
  // nginx's workers have limits of their own (worker_rlimit_nofile); its failures are the finding.
  const limit =
    (target === 'stack'
      ? await openFileLimit(process.pid)
      : Math.min(await openFileLimit(pid), await openFileLimit(process.pid))) - FD_MARGIN;
  await new Promise((r) => setTimeout(r, opts.settleMs));
  const idleRss = await rssOf(pid);
  const url = new URL(context.url(target));
  const wsBase = `ws://${url.host}`;
  const token = await tokenMaker({ url: context.url(target), tokenSource: `secret:${context.secretFile}` });
  const levels: ConnectionLevel[] = [];
  const skipped: ConnectionsRun['skipped'] = [];
  const open: Array<Awaited<ReturnType<typeof openIdleConnections>>> = [];
  const prefix = `idle-${target}-${Date.now().toString(36)}`;
  let held = 0;
  let previous = { rss: idleRss, held: 0 };
  try {
    // A level above the open-file limit is not measured; the most the limit allows is, once.
    const wanted = [...new Set(opts.levels.map((level) => Math.min(level, limit)))].sort((a, b) => a - b);
    for (const level of opts.levels) {
      if (level > limit) {
        skipped.push({
          requested: level,
          reason: `above the open-file limit (RLIMIT_NOFILE ${limit + FD_MARGIN} per process, which cannot be raised here)`,
        });
      }
    }
    for (const level of wanted) {
      context.progress(`[bench] connections ${target}: ${held} → ${level}`);
      const batch = await openIdleConnections({
        wsBase,
        count: level - held,
        token,
        sourceAddresses: context.sourceAddresses,
        concurrency: 256,
        progress: context.progress,
        offset: held,
        prefix,
      });
      open.push(batch);
      held += batch.opened;
      await new Promise((r) => setTimeout(r, opts.settleMs));
      const rss = await rssOf(pid);
      levels.push({
        requested: level,
        opened: held,
        failed: batch.failed,
        failures: batch.failures,
        connectsPerSecond: batch.opened / Math.max(batch.seconds, 1e-3),
        rssBytes: rss,
        rssPerConnectionBytes: (rss - idleRss) / Math.max(1, held),
        marginalBytesPerConnection: (rss - previous.rss) / Math.max(1, held - previous.held),
      });
      previous = { rss, held };
      context.progress(
        `[bench] connections ${target}: ${held} open, RSS ${(rss / 2 ** 20).toFixed(1)} MiB, ${((rss - idleRss) / Math.max(1, held)).toFixed(0)} B/conn, ${(batch.opened / batch.seconds).toFixed(0)} connects/s`,
      );
    }
  } finally {
    for (const batch of open) await batch.close();
  }
  return { target, idleRssBytes: idleRss, levels, skipped };
}
