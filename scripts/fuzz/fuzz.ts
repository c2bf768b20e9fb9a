import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import fc from 'fast-check';
import { runHttpCase, runRawHttpCase } from './http-cases.js';
import { FUZZ_USERS, fuzzCase, type FuzzCase } from './generators.js';
import { NormalUser } from './probe.js';
import { newLedger, type UserLedger } from './socket-oracle.js';
import { attachTarget, startChildTarget, storeStats, type Target, type TargetLimits } from './target.js';
import {
  runFramesCase,
  runProtocolCase,
  runUpgradeCase,
  type CaseContext,
  type CaseResult,
} from './ws-cases.js';

/**
 * The gateway fuzz run shared by `npm run fuzz` and the integration test: fast-check generates
 * cases, each runs against the real server over real sockets, the oracle judges every answer, and
 * after every case the server must be alive and (every `probeEvery` cases) a normal user on
 * another socket must still get a full answer. A failing case is shrunk to a small one and kept;
 * the run then goes on with a new seed, counting further cases with the same fault under it.
 */

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** Fuzz a server that is already running (liveness = /health answering); else a child is started. */
  url?: string;
  /** Repository root (for the child). */
  cwd: string;
  /** Environment the child inherits (transport variables are dropped). */
  env: Record<string, string | undefined>;
  logFile: string;
  /** Stop starting new cases after this long. */
  timeLimitMs: number;
  /** A normal user's message every this many cases (and at the end). @default 1 */
  probeEvery?: number;
  /** Progress line every this many cases; 0 = none. */
  progressEvery?: number;
  log?: (line: string) => void;
  limits?: Partial<TargetLimits>;
  /** Runs tried while shrinking one failure (a crash restarts the server each time). @default 60 */
  maxShrinkRuns?: number;
  /** Time spent shrinking one failure. @default 60000 */
  maxShrinkMs?: number;
  /** Aborting stops the run after the current case (the server is still stopped). */
  signal?: AbortSignal;
  /** Told the PID of every server child started, so a caller can kill it if it must exit at once. */
  onServer?: (pid: number | undefined) => void;
  /** Replay one case: the `index`-th of the batch whose seed is `seed` (as a finding prints it). */
  index?: number;
  /** Cases run side by side, each worker with users of its own. @default 1 */
  workers?: number;
  /** Extra environment for the child server. */
  serverEnv?: Record<string, string>;
}

export interface Finding {
  kind: 'crash' | 'violation' | 'contained';
  signature: string;
  /** The first message in full (input, what broke). */
  message: string;
  /** The minimal input, as JSON. */
  input: string;
  /** Replay: `--seed S --index I`. */
  seed?: number;
  index?: number;
  /** How many generated cases hit it (after the first). */
  count: number;
  /** Server log around it (stack trace of a crash). */
  log: string;
  transcript: string[];
}

export interface FuzzSummary {
  seed: number;
  casesRun: number;
  shrinkRuns: number;
  durationMs: number;
  casesPerSecond: number;
  workers: number;
  crashes: Finding[];
  violations: Finding[];
  contained: Finding[];
  outcomes: Record<string, number>;
  probes: { count: number; p50Ms: number; maxMs: number; failures: number };
  restarts: number;
  /** Cases and time spent per kind of case. */
  timing: Record<string, { n: number; ms: number }>;
  stoppedBy: 'cases' | 'time' | 'fatal';
  fatal?: string;
}

/** What the run knows of its server: started once, and again after each crash. */
class Server {
  target!: Target;
  tokens = new Map<string, string>();
  ledgers = new Map<string, UserLedger>();
  probe!: NormalUser;
  restarts = 0;

  constructor(
    private readonly options: FuzzOptions,
    private readonly runTag: string,
    private readonly workers: number,
  ) {}

  async start(): Promise<void> {
    const o = this.options;
    this.target = o.url
      ? attachTarget(o.url, o.limits)
      : await startChildTarget({
          cwd: o.cwd,
          baseEnv: o.env,
          logFile: o.logFile,
          limits: o.limits,
          env: o.serverEnv,
        });
    o.onServer?.(this.target.pid);
    this.tokens.clear();
    this.ledgers.clear();
    for (const user of Array.from({ length: this.workers }, (_, w) => usersOf(w)).flat()) {
      const res = await fetch(`${this.target.url}/token?userid=${encodeURIComponent(user)}`, {
        method: 'POST',
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await res.json()) as { token?: string };
      if (res.status !== 200 || !body.token)
        throw new Error(`POST /token for ${user} answered ${res.status}`);
      this.tokens.set(user, body.token);
    }
    this.probe = new NormalUser(this.target, this.runTag);
    await this.probe.connect();
  }

  /** After a crash: a new server (a start that fails is tried twice more, then the run stops). */
  async restart(): Promise<void> {
    this.probe.close();
    await this.target.stop();
    this.options.onServer?.(undefined);
    this.restarts++;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (err) {
        await this.target?.stop();
        this.options.onServer?.(undefined);
        if (attempt >= 3) {
          this.broken = `the server could not be started again: ${(err as Error).message}`;
          return;
        }
      }
    }
  }

  /** Set when the server cannot be brought back: every further case is skipped. */
  broken: string | undefined;

  ledger(user: string): UserLedger {
    let l = this.ledgers.get(user);
    if (!l) this.ledgers.set(user, (l = newLedger()));
    return l;
  }

  async stop(): Promise<void> {
    this.probe?.close();
    await this.target?.stop();
    this.options.onServer?.(undefined);
  }
}

const RULES: Array<[RegExp, (m: RegExpMatchArray) => string]> = [
  [/^HTTP 500 internal_error on (\S+) (\S+)/, (m) => `HTTP 500 internal_error on ${m[1]} ${m[2]}`],
  [/^internal_error for /, () => 'internal_error frame for a client frame'],
  [/^close 1011 \(([^)]*)\)/, (m) => `close 1011 (${m[1]})`],
  [/expected error (\S+), got (\S+)/, (m) => `wrong error code: expected ${m[1]}, got ${m[2]}`],
  [/no error frame for .*: expected (\S+)/, (m) => `no error frame where ${m[1]} was due`],
  [
    /expected (close [\d|]+|a close)( or a TCP drop)?, got (close \d+|close null|TCP \w+)/,
    (m) => `expected ${m[1]}${m[2] ?? ''}, got ${m[3]}`,
  ],
  [/the server closed the socket \((close \d+|close null|TCP \w+)/, (m) => `unexpected ${m[1]}`],
  [/silently dead socket/, () => 'silently dead socket'],
  [/got no final frame/, () => 'accepted message got no final frame'],
  [/got no ack/, () => 'accepted message got no ack'],
  [/frame for user .* on a socket of/, () => 'frame for another user'],
  [/expected HTTP ([\d|]+) \((.*?)\), got (\d+)/, (m) => `upgrade: expected ${m[1]} (${m[2]}), got ${m[3]}`],
  [/expected ([\d|]+) \((.*?)\), got (\d+)/, (m) => `http: expected ${m[1]} (${m[2]}), got ${m[3]}`],
  [/upgrade with a valid token refused: HTTP (\d+)/, (m) => `valid upgrade refused with ${m[1]}`],
];

export function signatureOf(violation: string): string {
  for (const [re, name] of RULES) {
    const m = violation.match(re);
    if (m) return name(m);
  }
  return violation
    .replace(/\[after .*$/, '')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{.*\}/g, '{}')
    .replace(/\d+/g, 'N')
    .slice(0, 90)
    .trim();
}

/** The error of a crash as the server printed it: its first line and the first frame in our code. */
export function crashSignature(log: string): string {
  const lines = log.split('\n');
  const errorAt = lines.findIndex(
    (l) => /^\s*(\w*Error|Uncaught|FATAL|Error:)/.test(l) || /"level":60/.test(l),
  );
  if (errorAt < 0) return 'process died (no error in its log)';
  const first = lines[errorAt]?.trim().slice(0, 160) ?? '';
  const frame = lines
    .slice(errorAt)
    .find((l) => /\/(common|websocket-server|ai-consumer|message-relay|app)\/.*\.ts:\d+/.test(l));
  const where = frame?.match(/([\w-]+\/src\/[\w/.-]+\.ts:\d+|app\/[\w.-]+\.ts:\d+)/)?.[1];
  return `${first}${where ? ` at ${where}` : ''}`;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function runCase(ctx: CaseContext, c: FuzzCase): Promise<CaseResult> {
  switch (c.kind) {
    case 'frames':
      return runFramesCase(ctx, c);
    case 'protocol':
      return runProtocolCase(ctx, c);
    case 'http':
      return runHttpCase(ctx, c);
    case 'raw-http':
      return runRawHttpCase(ctx, c);
    case 'upgrade':
      return runUpgradeCase(ctx, c);
  }
}

/** JSON of a case with the generated placeholders and long runs readable. */
export function showCase(c: FuzzCase): string {
  const text = JSON.stringify(c, (_k, v: unknown) => {
    if (typeof v === 'string' && v.length > 200)
      return `${v.slice(0, 80)}…(${v.length} chars)…${v.slice(-40)}`;
    if (Array.isArray(v) && v.length > 64 && v.every((x) => typeof x === 'number'))
      return `<${v.length} bytes: ${Buffer.from(v as number[])
        .toString('hex')
        .slice(0, 64)}…>`;
    return v;
  });
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}

/** The users of worker `w`: worker 0 has the names as they are (prototype names included). */
export function usersOf(worker: number): string[] {
  return FUZZ_USERS.map((u) => (worker === 0 ? u : `${u.slice(0, 120)}.w${worker}`));
}

/** The seed of batch `b` of a run with `seed`: every batch of cases can be generated alone again. */
export function batchSeed(seed: number, b: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x01000193) + Math.imul(b + 1, 0x9e3779b1)) >>> 0;
}

const BATCH = 200;

type Judged =
  | { kind: 'crash' | 'violation'; signature: string; message: string; log: string; transcript: string[] }
  | { kind: 'ok'; result: CaseResult };

/** A case and where it came from, so it can be generated again: `--seed <batch seed> --index i`. */
interface Item {
  c: FuzzCase;
  seed: number;
  index: number;
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const log = options.log ?? (() => {});
  const runTag = `fz${randomBytes(3).toString('hex')}`;
  const probeEvery = Math.max(1, options.probeEvery ?? 1);
  const workers = Math.max(1, options.workers ?? 1);
  const maxShrinkRuns = options.maxShrinkRuns ?? 60;
  const started = Date.now();
  const deadline = started + options.timeLimitMs;
  const server = new Server(options, runTag, workers);
  const outcomes: Record<string, number> = {};
  const timing: Record<string, { n: number; ms: number }> = {};
  const findings = new Map<string, Finding>();
  let casesRun = 0;
  let shrinkRuns = 0;
  let caseNo = 0;
  let stoppedBy: FuzzSummary['stoppedBy'] = 'cases';
  let fatal: string | undefined;

  const count = (label: string) => (outcomes[label] = (outcomes[label] ?? 0) + 1);
  const remember = (f: Omit<Finding, 'count'>) => {
    const key = `${f.kind}:${f.signature}`;
    const known = findings.get(key);
    if (known) known.count++;
    else findings.set(key, { ...f, count: 0 });
  };

  /** One case, judged by the oracle and then by the server's liveness. */
  async function judge(c: FuzzCase, worker: number): Promise<Judged> {
    const target = server.target;
    const mark = target.mark();
    const ctx: CaseContext = {
      target,
      limits: target.limits,
      tokens: server.tokens,
      users: usersOf(worker),
      ledger: (u) => server.ledger(u),
      caseTag: `${runTag}.${++caseNo}`,
      answerTimeoutMs: 5000,
      finalTimeoutMs: 15_000,
    };
    let result: CaseResult;
    try {
      const t0 = performance.now();
      result = await withTimeout(runCase(ctx, c), 60_000, 'the case');
      const t = (timing[c.kind] ??= { n: 0, ms: 0 });
      t.n++;
      t.ms += performance.now() - t0;
    } catch (err) {
      result = {
        outcomes: ['case-error'],
        violations: [`the case could not run: ${(err as Error).message}`],
        contained: [],
        transcript: [],
      };
    }
    const dead = async (why: string | undefined): Promise<Judged> => {
      // Let the dying process finish writing its stack trace.
      for (let i = 0; i < 40 && target.pid !== undefined && !target.exit(); i++) await delay(50);
      const serverLog = target.logSince(mark) || target.logTail(40);
      return {
        kind: 'crash',
        signature: crashSignature(serverLog),
        message: `the server died (${why})${result.violations.length ? `; the socket saw: ${result.violations[0]}` : ''}`,
        log: serverLog.slice(-6000),
        transcript: result.transcript,
      };
    };
    const alive = await target.alive();
    if (!alive.alive) return dead(alive.why);
    if (result.violations.length > 0) {
      // A server that is dying drops its sockets before /health stops answering: look again.
      await delay(500);
      const still = await target.alive();
      if (!still.alive) return dead(still.why);
      return {
        kind: 'violation',
        signature: signatureOf(result.violations[0] ?? ''),
        message: result.violations.join('\n'),
        log: target.logSince(mark).slice(-4000),
        transcript: result.transcript,
      };
    }
    return { kind: 'ok', result };
  }

  /**
   * A failure seen while cases ran side by side, handled with the server to itself: the suspect
   * cases are run again one at a time (a crash ends every case in flight, only one caused it); the
   * one that fails is shrunk by fast-check, starting from it, and kept with its minimal form.
   */
  async function investigate(suspects: Item[]): Promise<void> {
    for (const item of suspects) {
      if (server.broken) return;
      // The server one of them killed must be replaced first, or every suspect fails alike.
      if (!(await server.target.alive()).alive) await server.restart();
      if (server.broken) return;
      const first = await judge(item.c, 0);
      if (first.kind === 'crash') await server.restart();
      if (first.kind === 'ok') {
        for (const o of first.result.outcomes) count(o);
        continue;
      }
      count(first.kind);
      const key = `${first.kind}:${first.signature}`;
      const known = findings.get(key);
      if (known) {
        known.count++;
        continue;
      }
      log(
        `[fuzz] ${first.kind}: ${first.signature} — ${first.message.split('\n')[0]?.slice(0, 300)} — shrinking`,
      );
      const finding: Finding = {
        kind: first.kind,
        signature: first.signature,
        message: first.message,
        input: showCase(item.c),
        seed: item.seed,
        index: item.index,
        count: 0,
        log: first.log,
        transcript: first.transcript,
      };
      findings.set(key, finding);
      let budget = maxShrinkRuns;
      const until = Date.now() + (options.maxShrinkMs ?? 60_000);
      let minimal = item.c;
      // The same seed makes fast-check generate the same batch again; the runs before the failing
      // one pass untried, so it shrinks the failing case with its generation context.
      let run = 0;
      const details = await fc.check(
        fc.asyncProperty(fuzzCase, async (c) => {
          if (run++ < item.index) return true;
          if (budget-- <= 0 || Date.now() > until || options.signal?.aborted || server.broken) return true;
          shrinkRuns++;
          const r = await judge(c, 0);
          if (r.kind === 'crash') await server.restart();
          const same = r.kind === first.kind && r.signature === first.signature;
          if (same) {
            minimal = c;
            finding.message = r.message;
            finding.log = r.log;
            finding.transcript = r.transcript;
          }
          return !same;
        }),
        { seed: item.seed, numRuns: item.index + 1 },
      );
      finding.input = showCase(minimal);
      log(`[fuzz] ${first.kind} kept (minimal after ${details.numShrinks} shrinks): ${first.signature}`);
    }
  }

  function record(r: Judged & { kind: 'ok' }): void {
    for (const o of r.result.outcomes) count(o);
    for (const text of r.result.contained) {
      remember({
        kind: 'contained',
        signature: signatureOf(text),
        message: text,
        input: '',
        log: '',
        transcript: r.result.transcript,
      });
    }
  }

  await server.start();
  log(
    `[fuzz] seed ${options.seed}, ${options.cases} cases, ${workers} workers, server ${server.target.url}${server.target.pid ? ` (pid ${server.target.pid}, log ${options.logFile})` : ''}`,
  );
  try {
    if (options.index !== undefined) {
      // Replay of one case: `--seed <batch seed> --index i`, run alone and shrunk if it fails.
      const cases = fc.sample(fuzzCase, { seed: options.seed, numRuns: options.index + 1 });
      const c = cases[options.index];
      if (c) {
        casesRun = 1;
        await investigate([{ c, seed: options.seed, index: options.index }]);
      }
    } else {
      let batch = 0;
      let queue: Item[] = [];
      const take = (): Item | undefined => {
        if (casesRun >= options.cases || Date.now() >= deadline || options.signal?.aborted || server.broken) {
          return undefined;
        }
        if (queue.length === 0) {
          const seed = batchSeed(options.seed, batch++);
          queue = fc.sample(fuzzCase, { seed, numRuns: BATCH }).map((c, index) => ({ c, seed, index }));
        }
        casesRun++;
        return queue.shift();
      };
      // Failures stop every worker at the gate; the server is then investigated alone.
      let gate: Promise<void> | undefined;
      let suspects: Item[] = [];
      let sinceProbe = 0;
      let probing = false;
      const running = new Set<number>();
      let openGate: (() => void) | undefined;
      const closeGate = () => {
        gate ??= new Promise<void>((resolve) => (openGate = resolve));
      };
      const arrive = async (w: number) => {
        running.delete(w);
        if (running.size > 0) return gate;
        // The last one in: investigate, then let everyone go on.
        const list = suspects;
        suspects = [];
        await investigate(list);
        const open = openGate;
        gate = undefined;
        openGate = undefined;
        open?.();
      };
      const work = async (w: number) => {
        for (;;) {
          if (gate) await arrive(w);
          const item = take();
          if (!item) break;
          running.add(w);
          const r = await judge(item.c, w);
          running.delete(w);
          if (r.kind !== 'ok' || gate) {
            // Failed, or in flight while another case failed: suspect either way.
            suspects.push(item);
            closeGate();
            continue;
          }
          record(r);
          // One probe at a time (it is one socket); a worker that finds one under way goes on.
          if (++sinceProbe >= probeEvery && !probing) {
            sinceProbe = 0;
            probing = true;
            running.add(w);
            const problem = await server.probe.check(15_000);
            const extra = server.probe.problems.splice(0);
            if (problem || extra.length) {
              remember({
                kind: 'violation',
                signature: `normal user not served: ${signatureOf(problem ?? extra[0] ?? '')}`,
                message: [problem, ...extra].filter(Boolean).join('; '),
                input: `(while these cases ran: ${showCase(item.c)})`,
                log: server.target.logTail(20),
                transcript: [],
              });
              server.probe.close();
              await server.probe.connect().catch(() => {});
            }
            running.delete(w);
            probing = false;
          }
          if (options.progressEvery && casesRun % options.progressEvery === 0) {
            const sec = (Date.now() - started) / 1000;
            const kinds = [...findings.values()];
            const store = await storeStats(server.target).catch(() => undefined);
            log(
              `[fuzz] ${casesRun}/${options.cases} cases, ${(casesRun / sec).toFixed(0)}/s, ${kinds.filter((f) => f.kind === 'crash').length} crash kinds, ${kinds.filter((f) => f.kind === 'violation').length} violation kinds, ${server.restarts} restarts${store ? `, store ${store.keys} keys (${store.evicted} evicted)` : ''}`,
            );
          }
        }
        // Leaving: a gate closed by others must not wait for this worker.
        if (gate) await arrive(w);
      };
      await Promise.all(Array.from({ length: workers }, (_, w) => work(w)));
      if (suspects.length) await investigate(suspects);
    }
    if (server.broken) {
      stoppedBy = 'fatal';
      fatal = server.broken;
    } else if (options.signal?.aborted) {
      stoppedBy = 'fatal';
      fatal = 'interrupted';
    } else if (casesRun < options.cases) {
      stoppedBy = 'time';
    }
    const evicted = server.broken
      ? undefined
      : (await storeStats(server.target).catch(() => undefined))?.evicted;
    if (evicted !== undefined && evicted > 0) {
      remember({
        kind: 'violation',
        signature: 'the store evicted keys: duplicate-id verdicts do not hold',
        message: `the in-process store evicted ${evicted} keys (MEMORY_STORE_MAX_KEYS too low for this run)`,
        input: '(end of run)',
        log: '',
        transcript: [],
      });
    }
    const last = server.broken ? undefined : await server.probe.check(15_000);
    if (last) {
      remember({
        kind: 'violation',
        signature: 'normal user not served at the end',
        message: last,
        input: '(end of run)',
        log: server.target.logTail(20),
        transcript: [],
      });
    }
  } catch (err) {
    stoppedBy = 'fatal';
    fatal = (err as Error).stack ?? String(err);
  } finally {
    log('[fuzz] stopping the server');
    await server.stop();
  }
  const durationMs = Date.now() - started;
  const all = [...findings.values()];
  const latencies = [...server.probe.latenciesMs].sort((a, b) => a - b);
  return {
    seed: options.seed,
    casesRun,
    shrinkRuns,
    durationMs,
    casesPerSecond: casesRun / (durationMs / 1000),
    workers,
    crashes: all.filter((f) => f.kind === 'crash'),
    violations: all.filter((f) => f.kind === 'violation'),
    contained: all.filter((f) => f.kind === 'contained'),
    outcomes,
    probes: {
      count: latencies.length,
      p50Ms: percentile(latencies, 0.5),
      maxMs: latencies.at(-1) ?? 0,
      failures: 0,
    },
    restarts: server.restarts,
    timing,
    stoppedBy,
    fatal,
  };
}

function findingText(f: Finding): string {
  return [
    `  ${f.kind.toUpperCase()} ${f.signature}${f.count ? ` (+${f.count} more cases)` : ''}`,
    `    input: ${f.input}`,
    f.seed !== undefined ? `    replay: npm run fuzz -- --seed ${f.seed} --index ${f.index ?? 0}` : '',
    `    what: ${f.message.split('\n').slice(0, 4).join('\n          ')}`,
    f.transcript.length
      ? `    transcript:\n${f.transcript
          .slice(-12)
          .map((l) => `      ${l.slice(0, 300)}`)
          .join('\n')}`
      : '',
    f.log.trim()
      ? `    server log:\n${f.log
          .trim()
          .split('\n')
          .slice(-25)
          .map((l) => `      ${l.slice(0, 400)}`)
          .join('\n')}`
      : '',
  ]
    .filter(Boolean)
    .join('\n');
}

export function formatSummary(s: FuzzSummary): string {
  const top = Object.entries(s.outcomes).sort((a, b) => b[1] - a[1]);
  return [
    `fuzz summary (seed ${s.seed})`,
    `  cases run: ${s.casesRun} in ${(s.durationMs / 1000).toFixed(1)} s (${s.casesPerSecond.toFixed(1)} cases/s), ${s.shrinkRuns} shrink runs, ${s.restarts} server restarts, stopped by ${s.stoppedBy}`,
    `  crashes: ${s.crashes.length}${s.crashes.length ? ` (${s.crashes.reduce((n, f) => n + 1 + f.count, 0)} cases)` : ''}`,
    `  violations: ${s.violations.length}${s.violations.length ? ` (${s.violations.reduce((n, f) => n + 1 + f.count, 0)} cases)` : ''}`,
    `  contained (internal_error / 1011, allowed by SPEC §2 but bugs): ${s.contained.length}`,
    `  normal user: ${s.probes.count} full answers checked, p50 ${s.probes.p50Ms.toFixed(1)} ms, max ${s.probes.maxMs.toFixed(1)} ms`,
    `  time per case: ${Object.entries(s.timing)
      .map(([k, t]) => `${k} ${t.n} × ${(t.ms / Math.max(1, t.n)).toFixed(1)} ms`)
      .join(', ')}`,
    ...(s.fatal ? [`  FATAL: ${s.fatal}`] : []),
    `  outcomes:`,
    ...top.map(([k, v]) => `    ${String(v).padStart(8)}  ${k}`),
    ...[...s.crashes, ...s.violations, ...s.contained].map(findingText),
  ].join('\n');
}
