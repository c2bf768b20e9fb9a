/**
 * npm run bench:presence -- [--runs 3] [--duration 20] [--rate 10000] [--users 1000] [--readers 2]
 *   [--probes 150] [--warmup 10] [--json scripts/bench/results/presence-latest.json] [--quick]
 *   [--steady]
 *
 * The presence read path and invalidation delay on two gateway processes sharing real Redis
 * (docs/presence.md, BENCHMARKS.md "Presence"). Per run, for `--duration` seconds at once:
 * - `--users` users connect and disconnect over WebSocket, alternately on gateway A and B (each
 *   holds 1–3 s, is away 0.2–1 s, again), so their presence keeps changing and invalidating;
 * - `--readers` processes send `--rate` GET /api/v2/presence/{user} per second in all to gateway A
 *   (open loop, random users of that set);
 * - a prober PUTs a new status message on gateway A (after gateway B has cached the user) and
 *   polls gateway B until it reads it: the invalidation delay a reader sees.
 * `--steady`: the users connect once and stay (no churn), for the read path's own cost.
 * Redis is started when not running (REDIS_PORT) and stopped again; gateway ports from
 * GATEWAY_1_PORT / GATEWAY_2_PORT (0: free ones). Prints a line a second, a summary per run and
 * the medians; writes every figure to `--json`. Bounded: runs × duration, then it stops what it
 * started.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import WebSocket from 'ws';
import { createTokenService } from '../../../websocket-server/src/token-service.js';
import { serviceEndpoints, startService, stopService } from '../../infra/harness.js';
import { repoRoot } from '../../infra/paths.js';
import { latencyHistogram, summarize, type LatencySummary } from '../../load-test/stats.js';
import {
  startGatewayProcess,
  stopGatewayProcess,
  type EventLoopDelay,
  type GatewayProcess,
} from '../gateway-process.js';
import { cpuSecondsByGroup } from '../proc-stats.js';
import type { ReaderConfig, ReaderMessage } from './reader.js';
import { intOption, writeResults } from '../cli-options.js';
import { median } from '../report.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '20' },
    rate: { type: 'string', default: '10000' },
    users: { type: 'string', default: '1000' },
    readers: { type: 'string', default: '2' },
    probes: { type: 'string', default: '150' },
    json: { type: 'string', default: 'scripts/bench/results/presence-latest.json' },
    quick: { type: 'boolean', default: false },
    steady: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '10' },
  },
});

const runs = values.quick ? 1 : intOption('runs', values.runs, 1, 10);
const durationMs = (values.quick ? 8 : intOption('duration', values.duration, 3, 120)) * 1000;
// Fresh gateways compile their hot paths during the first seconds of load: a run of this many
// seconds goes first and is not counted (0: none).
const warmupMs = (values.quick ? 0 : intOption('warmup', values.warmup, 0, 120)) * 1000;
const rate = intOption('rate', values.rate, 1, 100_000);
const userCount = intOption('users', values.users, 1, 10_000);
const readerCount = intOption('readers', values.readers, 1, 8);
const probeLimit = intOption('probes', values.probes, 1, 10_000);
const jsonPath = resolve(repoRoot, values.json ?? 'scripts/bench/results/presence-latest.json');

const log = (line: string) => process.stderr.write(`[presence-bench] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secret = 'presence-bench-secret-'.repeat(2);
const tokens = createTokenService({ secret, ttlSeconds: 3600 });
const GATEWAY_ENV: Record<string, string> = {
  JWT_SECRET: secret,
  TOKEN_TTL_SECONDS: '3600',
  MAX_CONNECTIONS_PER_IP: '100000',
  RATE_LIMIT_FRAMES: '100000',
  // The prober writes far more often than a person would.
  PRESENCE_WRITE_LIMIT: '1000000',
};

/** Prometheus text lines of the presence series: `name{labels} value`. */
type Samples = Array<{ name: string; labels: string; value: number }>;

async function scrape(g: GatewayProcess): Promise<Samples> {
  const text = await (await fetch(`${g.base}/metrics`)).text();
  const out: Samples = [];
  for (const line of text.split('\n')) {
    const m = /^(presence_[a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.push({ name: m[1] as string, labels: m[2] ?? '', value: Number(m[3]) });
  }
  return out;
}

/** Sum of a series over the label sets that contain `label` (e.g. `result="hit"`), after − before. */
function delta(after: Samples, before: Samples, name: string, label = ''): number {
  const sum = (xs: Samples) =>
    xs.filter((x) => x.name === name && x.labels.includes(label)).reduce((s, x) => s + x.value, 0);
  return sum(after) - sum(before);
}

/** A quantile from histogram buckets (the upper bound of the bucket it falls in), in ms. */
function bucketQuantile(after: Samples, before: Samples, name: string, q: number): number | null {
  const bounds = new Set<string>();
  for (const x of after) {
    const le = /le="([^"]+)"/.exec(x.labels)?.[1];
    if (x.name === `${name}_bucket` && le) bounds.add(le);
  }
  const buckets = [...bounds]
    .map((le): [number, number] => [
      le === '+Inf' ? Infinity : Number(le),
      delta(after, before, `${name}_bucket`, `le="${le}"`),
    ])
    .sort((x, y) => x[0] - y[0]);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return null;
  const hit = buckets.find(([, count]) => count >= q * total);
  return hit && hit[0] !== Infinity ? hit[0] * 1000 : null;
}

/** Users connecting and disconnecting until `until`, alternating gateways. */
async function churn(
  gateways: GatewayProcess[],
  users: Array<{ userid: string; token: string }>,
  until: number,
) {
  const counts = { connects: 0, disconnects: 0, refused: 0 };
  const open = new Set<WebSocket>();
  const cycle = async (u: { userid: string; token: string }, i: number) => {
    let n = i;
    // Spread the first connects over a second.
    await sleep(Math.random() * 1000);
    while (Date.now() < until) {
      const g = gateways[n++ % gateways.length] as GatewayProcess;
      const ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws?token=${u.token}`);
      const opened = await new Promise<boolean>((r) => {
        ws.once('open', () => r(true));
        ws.once('error', () => r(false));
      });
      if (!opened) {
        counts.refused++;
        await sleep(500);
        continue;
      }
      counts.connects++;
      open.add(ws);
      await sleep(values.steady ? Math.max(0, until - Date.now()) : 1000 + Math.random() * 2000);
      const closed = new Promise((r) => ws.once('close', r));
      ws.close();
      await Promise.race([closed, sleep(2000)]);
      open.delete(ws);
      counts.disconnects++;
      await sleep(200 + Math.random() * 800);
    }
  };
  const done = Promise.all(users.map((u, i) => cycle(u, i)));
  return {
    counts,
    done: done.then(() => {
      for (const ws of open) ws.terminate();
    }),
  };
}

/** PUT on A, then poll B until it reads the new message: the delay a reader on B sees. */
async function probe(a: GatewayProcess, b: GatewayProcess, until: number) {
  const prober = `dev-prober-${Date.now().toString(36)}`;
  const { token } = await tokens.issue(prober);
  const ws = new WebSocket(`ws://127.0.0.1:${a.port}/ws?token=${token}`);
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const auth = { authorization: `Bearer ${token}` };
  const readB = async () =>
    (await (await fetch(`${b.base}/api/v2/presence/${prober}`, { headers: auth })).json()) as {
      message?: string;
    };
  const afterAck = latencyHistogram();
  const afterSend = latencyHistogram();
  let stale = 0;
  let failed = 0;
  for (let i = 0; i < probeLimit && Date.now() < until; i++) {
    // Cached on B first: only an invalidation can make B read the new value within its L1 TTL.
    await readB();
    await readB();
    const nonce = `probe-${i}-${Math.random().toString(36).slice(2, 8)}`;
    const t0 = performance.now();
    const res = await fetch(`${a.base}/api/v2/presence/${prober}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ status: i % 2 ? 'away' : 'busy', message: nonce }),
    });
    await res.arrayBuffer();
    const t1 = performance.now();
    if (res.status !== 200) {
      failed++;
      continue;
    }
    let polls = 0;
    while ((await readB()).message !== nonce) {
      polls++;
      if (performance.now() - t1 > 10_000) break;
    }
    const t2 = performance.now();
    if (polls > 0) stale++;
    afterAck.recordValue(Math.max(1, Math.round((t2 - t1) * 1000)));
    afterSend.recordValue(Math.max(1, Math.round((t2 - t0) * 1000)));
    await sleep(30);
  }
  ws.close();
  return { afterAck, afterSend, stale, failed };
}

interface RunResult {
  run: number;
  loadavgBefore: number[];
  loadavgAfter: number[];
  targetRate: number;
  reads: number;
  readsPerSecond: number;
  errors: number;
  late: number;
  statuses: Record<string, number>;
  /** Gateway A's CPU time over the run divided by the reads it answered (churn included). */
  gatewayACpuMicrosPerRead: number;
  latencyFromSend: LatencySummary;
  latencyFromSchedule: LatencySummary;
  l1: { hits: number; misses: number; coalesced: number; hitRatio: number };
  churn: { users: number; connectsPerSecond: number; disconnectsPerSecond: number; refused: number };
  invalidation: {
    probes: number;
    /** Probes whose first read on B after the PUT's answer was still the old value. */
    staleFirstReads: number;
    afterPutAnswer: LatencySummary;
    afterPutSent: LatencySummary;
    /** Gateway B's own histogram (publish on A → message on B), bucket upper bounds. */
    serverP50Ms: number | null;
    serverP99Ms: number | null;
  };
  cpuSeconds: Record<string, number>;
  /** Gateway A's event loop over the reads: how much of the read tail is its own stalls. */
  gatewayAEventLoopDelayMs: EventLoopDelay;
}

async function oneRun(
  run: number,
  a: GatewayProcess,
  b: GatewayProcess,
  lengthMs: number,
): Promise<RunResult> {
  const loadavgBefore = loadavg();
  const stamp = Date.now().toString(36);
  const users = await Promise.all(
    Array.from({ length: userCount }, async (_, i) => {
      const userid = `dev-churn-${stamp}-${i}`;
      return { userid, token: (await tokens.issue(userid)).token };
    }),
  );
  const reader = await tokens.issue(`dev-reader-${stamp}`);
  const [aBefore, bBefore] = await Promise.all([scrape(a), scrape(b)]);
  const cpuBefore = await cpuSecondsByGroup({
    'gateway-a': [a.child.pid ?? -1],
    'gateway-b': [b.child.pid ?? -1],
  });
  // Readers first (each is a process that needs a few seconds to start on a loaded machine).
  const readers = Array.from({ length: readerCount }, () =>
    fork(join(repoRoot, 'scripts/bench/presence/reader.ts'), [], {
      execArgv: ['--import', 'tsx', '--conditions=source'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const ticks = new Map<ChildProcess, number>();
  const finals: Array<Extract<ReaderMessage, { type: 'done' }>> = [];
  let ready = 0;
  const readersDone = Promise.all(
    readers.map(
      (child) =>
        new Promise<void>((resolveReader, reject) => {
          child.on('message', (m: ReaderMessage) => {
            if (m.type === 'ready') ready++;
            else if (m.type === 'tick') ticks.set(child, m.answered);
            else finals.push(m);
          });
          child.once('exit', (code) =>
            code === 0 ? resolveReader() : reject(new Error(`reader exited ${String(code)}`)),
          );
          const config: ReaderConfig = {
            port: a.port,
            token: reader.token,
            users: users.map((u) => u.userid),
            rate: rate / readerCount,
            durationMs: lengthMs,
            // One request at a time per connection (as wrk does without a script): uWS answers a
            // pipelined request whose answer comes from a promise by dropping the connection.
            connections: 64,
            maxInFlight: 1,
          };
          child.send(config);
        }),
    ),
  );
  const startDeadline = Date.now() + 60_000;
  while (ready < readers.length && Date.now() < startDeadline) await sleep(50);
  if (ready < readers.length) throw new Error('readers did not start in 60 s');
  const until = Date.now() + lengthMs + 1500;
  const churning = await churn([a, b], users, until);
  // The churn's first second connects everyone; the reads and probes start once they are online.
  await sleep(1500);
  const started = performance.now();
  await a.eventLoopDelay();
  for (const child of readers) child.send('go');
  const probing = probe(a, b, Date.now() + lengthMs);
  // A failure anywhere ends the readers too (they exit when their channel closes, or are killed).
  const stopReaders = () => {
    for (const child of readers) if (child.exitCode === null) child.kill('SIGTERM');
  };
  probing.catch(stopReaders);
  readersDone.catch(stopReaders);
  let last = 0;
  const progress = setInterval(() => {
    const answered = [...ticks.values()].reduce((s, n) => s + n, 0);
    const t = Math.round((performance.now() - started) / 1000);
    log(
      `run ${run}/${runs} t=${t}s reads ${(answered - last).toLocaleString('en-US')}/s (target ${rate}) | churn ${churning.counts.connects} connects, ${churning.counts.disconnects} disconnects | load ${loadavg()[0]?.toFixed(1)}`,
    );
    last = answered;
  }, 1000);
  const [probes] = await Promise.all([probing, readersDone]);
  const gatewayAEventLoopDelayMs = await a.eventLoopDelay();
  clearInterval(progress);
  const elapsed = (performance.now() - started) / 1000;
  const cpuAfter = await cpuSecondsByGroup({
    'gateway-a': [a.child.pid ?? -1],
    'gateway-b': [b.child.pid ?? -1],
  });
  const [aAfter, bAfter] = await Promise.all([scrape(a), scrape(b)]);
  await churning.done;
  const fromSend = latencyHistogram();
  const fromSchedule = latencyHistogram();
  for (const f of finals) {
    fromSend.add(hdr.decodeFromCompressedBase64(f.fromSend));
    fromSchedule.add(hdr.decodeFromCompressedBase64(f.fromSchedule));
  }
  const reads = finals.reduce((s, f) => s + f.answered, 0);
  const hits = delta(aAfter, aBefore, 'presence_reads_total', 'result="hit"');
  const misses = delta(aAfter, aBefore, 'presence_reads_total', 'result="miss"');
  const coalesced = delta(aAfter, aBefore, 'presence_reads_total', 'result="coalesced"');
  const name = 'presence_invalidation_delay_seconds';
  return {
    run,
    loadavgBefore,
    loadavgAfter: loadavg(),
    targetRate: rate,
    reads,
    readsPerSecond: Math.round(reads / (lengthMs / 1000)),
    errors: finals.reduce((s, f) => s + f.errors, 0),
    late: finals.reduce((s, f) => s + f.late, 0),
    statuses: finals.reduce<Record<string, number>>((acc, f) => {
      for (const [k, v] of Object.entries(f.statuses)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}),
    gatewayACpuMicrosPerRead: Math.round(
      (((cpuAfter['gateway-a'] ?? 0) - (cpuBefore['gateway-a'] ?? 0)) * 1e6) / Math.max(1, reads),
    ),
    latencyFromSend: summarize(fromSend),
    latencyFromSchedule: summarize(fromSchedule),
    l1: { hits, misses, coalesced, hitRatio: hits / Math.max(1, hits + misses + coalesced) },
    churn: {
      users: userCount,
      connectsPerSecond: Math.round(churning.counts.connects / elapsed),
      disconnectsPerSecond: Math.round(churning.counts.disconnects / elapsed),
      refused: churning.counts.refused,
    },
    invalidation: {
      probes: probes.afterAck.totalCount,
      staleFirstReads: probes.stale,
      afterPutAnswer: summarize(probes.afterAck),
      afterPutSent: summarize(probes.afterSend),
      serverP50Ms: bucketQuantile(bAfter, bBefore, name, 0.5),
      serverP99Ms: bucketQuantile(bAfter, bBefore, name, 0.99),
    },
    gatewayAEventLoopDelayMs,
    cpuSeconds: Object.fromEntries(
      Object.keys(cpuAfter).map((k) => [
        k,
        Math.round(((cpuAfter[k] ?? 0) - (cpuBefore[k] ?? 0)) * 100) / 100,
      ]),
    ),
  };
}

async function main(): Promise<void> {
  const redisUrl = serviceEndpoints().redisUrl;
  const started: string[] = [];
  await startService('redis', { reportStarted: started });
  const gateways: GatewayProcess[] = [];
  const results: RunResult[] = [];
  try {
    const portOf = (v: string | undefined) => (v ? Number(v) : 0);
    // PRESENCE_BENCH_PROFILE=<dir>: V8 CPU profiles of both gateways (npm run bench:profile -- <dir>).
    const profileDir = process.env.PRESENCE_BENCH_PROFILE;
    for (const [name, port] of [
      ['bench-gw-a', process.env.GATEWAY_1_PORT],
      ['bench-gw-b', process.env.GATEWAY_2_PORT],
    ] as const) {
      gateways.push(
        await startGatewayProcess({ name, port: portOf(port), redisUrl, env: GATEWAY_ENV, profileDir }),
      );
    }
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    log(`gateways on ${a.port} and ${b.port}, Redis ${redisUrl}; ${runs} run(s) of ${durationMs / 1000} s`);
    if (warmupMs > 0) {
      log(`warm-up: ${warmupMs / 1000} s of the same load, not counted`);
      await oneRun(0, a, b, warmupMs);
    }
    for (let run = 1; run <= runs; run++) {
      const r = await oneRun(run, a, b, durationMs);
      results.push(r);
      log(
        `run ${run}: ${r.readsPerSecond.toLocaleString('en-US')} reads/s (late ${r.late}, errors ${r.errors}), p50 ${r.latencyFromSend.p50} ms p99 ${r.latencyFromSend.p99} ms (from schedule p99 ${r.latencyFromSchedule.p99} ms), L1 hit ${(r.l1.hitRatio * 100).toFixed(1)} %, gateway A ${r.gatewayACpuMicrosPerRead} µs CPU/read, event loop delay p99 ${r.gatewayAEventLoopDelayMs.p99} ms max ${r.gatewayAEventLoopDelayMs.max} ms (GC ${r.gatewayAEventLoopDelayMs.gcPauses} pauses, ${r.gatewayAEventLoopDelayMs.gcTotalMs} ms, longest ${r.gatewayAEventLoopDelayMs.gcMaxMs} ms); churn ${r.churn.connectsPerSecond} connects/s; invalidation p50 ${r.invalidation.afterPutAnswer.p50} ms p99 ${r.invalidation.afterPutAnswer.p99} ms over ${r.invalidation.probes} probes; load ${r.loadavgBefore[0]?.toFixed(1)} → ${r.loadavgAfter[0]?.toFixed(1)}`,
      );
    }
  } finally {
    for (const g of gateways) await stopGatewayProcess(g);
    if (started.includes('redis')) await stopService('redis');
  }
  const medians = {
    readsPerSecond: median(results.map((r) => r.readsPerSecond)),
    p50Ms: median(results.map((r) => r.latencyFromSend.p50)),
    p99Ms: median(results.map((r) => r.latencyFromSend.p99)),
    p99FromScheduleMs: median(results.map((r) => r.latencyFromSchedule.p99)),
    gatewayAEventLoopDelayP99Ms: median(results.map((r) => r.gatewayAEventLoopDelayMs.p99)),
    gatewayACpuMicrosPerRead: median(results.map((r) => r.gatewayACpuMicrosPerRead)),
    l1HitRatio: median(results.map((r) => r.l1.hitRatio)),
    churnConnectsPerSecond: median(results.map((r) => r.churn.connectsPerSecond)),
    invalidationP50Ms: median(results.map((r) => r.invalidation.afterPutAnswer.p50)),
    invalidationP99Ms: median(results.map((r) => r.invalidation.afterPutAnswer.p99)),
    invalidationServerP99Ms: median(results.map((r) => r.invalidation.serverP99Ms ?? NaN)),
    loadavg1m: median(results.flatMap((r) => [r.loadavgBefore[0] ?? NaN, r.loadavgAfter[0] ?? NaN])),
  };
  await writeResults(jsonPath, {
    options: {
      runs,
      durationMs,
      warmupMs,
      rate,
      users: userCount,
      readers: readerCount,
      probes: probeLimit,
      churn: !values.steady,
    },
    medians,
    runs: results,
  });
  log(`results in ${jsonPath}`);
}

await main();
