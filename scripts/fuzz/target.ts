import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** The limits the oracle must know: the ones the fuzzed server runs with. */
export interface TargetLimits {
  maxPayloadBytes: number;
  maxContentLength: number;
}

/** A server under fuzz: where it listens, whether it is alive, and its log. */
export interface Target {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly limits: TargetLimits;
  /** The HS256 secret its tokens are signed with, when this suite chose it (child targets). */
  readonly jwtSecret: string | undefined;
  /** The server's PID (child targets). */
  readonly pid: number | undefined;
  /** Alive = the process exists (child targets) and GET /health answers 200 with status ok. */
  alive(): Promise<{ alive: boolean; why?: string }>;
  /** The last lines of the server's stdout/stderr (child targets). */
  logTail(lines?: number): string;
  /** Everything the server logged since `mark()` was taken. */
  logSince(mark: number): string;
  mark(): number;
  /** How the process ended, once it has. */
  exit(): { code: number | null; signal: string | null } | null;
  /** Stops the server by its PID (SIGTERM, then SIGKILL after a deadline). Idempotent. */
  stop(): Promise<void>;
}

export interface ChildTargetOptions {
  /** The repository root (where app/main.ts is). */
  cwd: string;
  /** The environment the fuzz run was started with; transport and model variables are removed. */
  baseEnv: Record<string, string | undefined>;
  /** Where the server's stdout and stderr go. */
  logFile: string;
  /** Ports are picked at random in this range and checked free first. @default [45000, 46000] */
  portRange?: [number, number];
  limits?: Partial<TargetLimits>;
  /** Extra environment for the server. */
  env?: Record<string, string>;
  /** @default 60000 */
  startTimeoutMs?: number;
}

/** Variables that would make the embedded app leave its in-process default, or answer with a real model. */
const NOT_INHERITED = [
  'KAFKA_BOOTSTRAP_SERVERS',
  'REDIS_URL',
  'REDIS_HOST',
  'REDIS_PORT',
  'REDIS_PASSWORD',
  'OPENAI_API_KEY',
  'OPENAI_BASE_URL',
  'PORT',
  'HOST',
  'JWT_SECRET',
  'NODE_OPTIONS',
];

export const DEFAULT_LIMITS: TargetLimits = { maxPayloadBytes: 16_384, maxContentLength: 4000 };

function withDefaults(limits: Partial<TargetLimits> = {}): TargetLimits {
  return {
    maxPayloadBytes: limits.maxPayloadBytes ?? DEFAULT_LIMITS.maxPayloadBytes,
    maxContentLength: limits.maxContentLength ?? DEFAULT_LIMITS.maxContentLength,
  };
}

async function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePort([low, high]: [number, number], avoid: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (!avoid.has(port) && (await isFree(port))) return port;
  }
  throw new Error(`no free port in ${low}-${high}`);
}

export async function getJson(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: kept as text for the message.
  }
  return { status: res.status, body };
}

async function healthy(url: string): Promise<{ alive: boolean; why?: string }> {
  try {
    const { status, body } = await getJson(`${url}/health`, 3000);
    const ok = status === 200 && typeof body === 'object' && body !== null && 'status' in body;
    return ok ? { alive: true } : { alive: false, why: `/health answered ${status} ${JSON.stringify(body)}` };
  } catch (err) {
    return { alive: false, why: `/health did not answer: ${(err as Error).message}` };
  }
}

function tailOf(text: string, lines: number): string {
  return text
    .split('\n')
    .slice(-lines - 1)
    .join('\n');
}

/**
 * Starts the embedded app (`npm start`: app/main.ts under tsx, in-process bus and store, bundled
 * mock model) as a child process on a free port, with limits raised so the fuzz cases are judged
 * on what they send, not on how fast. Its output goes to `logFile`, so a crash's stack trace can be
 * shown. The child is node itself (`node --import tsx`), so the PID watched and stopped is the
 * server's, not a wrapper's.
 */
export async function startChildTarget(options: ChildTargetOptions): Promise<Target> {
  const range = options.portRange ?? [45_000, 46_000];
  const limits = withDefaults(options.limits);
  const jwtSecret = randomBytes(32).toString('hex');
  const port = await freePort(range, new Set());
  const mockPort = await freePort(range, new Set([port]));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.baseEnv)) {
    if (v !== undefined && !NOT_INHERITED.includes(k)) env[k] = v;
  }
  Object.assign(env, {
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_SECRET: jwtSecret,
    LOG_LEVEL: 'warn',
    MOCK_OPENAI_HOST: '127.0.0.1',
    MOCK_OPENAI_PORT: String(mockPort),
    MOCK_OPENAI_TTFT_MS: '0',
    MOCK_OPENAI_TOKEN_MS: '0',
    DELTA_FLUSH_MS: '0',
    MAX_PAYLOAD_BYTES: String(limits.maxPayloadBytes),
    MAX_CONTENT_LENGTH: String(limits.maxContentLength),
    RATE_LIMIT_MESSAGES: '1000000',
    RATE_LIMIT_WINDOW_MS: '1000',
    TOKEN_RATE_LIMIT_PER_MINUTE: '100000',
    RATE_LIMIT_FRAMES: '10000000',
    MAX_CONNECTIONS_PER_USER: '10000',
    MAX_CONNECTIONS_PER_IP: '1000000',
    // The fuzz users send tens of thousands of messages a day; budgets are not what is tested here.
    DAILY_TOKEN_BUDGET_PER_USER: '0',
    DAILY_TOKEN_BUDGET_PER_SITE: '0',
    DEV_TOKENS: 'true',
    DEMO_SITE: 'true',
    MAX_WORKERS: '50',
    // The oracle remembers every id it saw accepted for the whole run, and a resend of one must be
    // a duplicate; past the bound the store evicts the oldest dedupe markers and a resend is rightly
    // answered again. The run checks at its end that nothing was evicted (evictedKeys).
    MEMORY_STORE_MAX_KEYS: '50000000',
    ...options.env,
  });
  const logStart = fileSize(options.logFile);
  const fd = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', 'app/main.ts'], {
      cwd: options.cwd,
      env,
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  let exited: { code: number | null; signal: string | null } | null = null;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const readLog = (from: number) => {
    try {
      return readFileSync(options.logFile).subarray(from).toString('utf8');
    } catch {
      return '';
    }
  };
  const pid = child.pid;
  let stopping: Promise<void> | undefined;
  const target: Target = {
    url,
    host: '127.0.0.1',
    port,
    limits,
    jwtSecret,
    pid,
    async alive() {
      if (exited) return { alive: false, why: `process ${pid} exited (${JSON.stringify(exited)})` };
      if (pid === undefined) return { alive: false, why: 'no pid' };
      try {
        process.kill(pid, 0);
      } catch {
        return { alive: false, why: `process ${pid} is gone` };
      }
      return healthy(url);
    },
    logTail: (lines = 30) => tailOf(readLog(logStart), lines),
    logSince: (mark) => readLog(mark),
    mark: () => fileSize(options.logFile),
    exit: () => exited,
    stop() {
      stopping ??= (async () => {
        if (exited || pid === undefined) return;
        process.kill(pid, 'SIGTERM');
        const deadline = delay(15_000).then(() => 'late' as const);
        if ((await Promise.race([exitPromise, deadline])) === 'late' && !exited) {
          process.kill(pid, 'SIGKILL');
          await exitPromise;
        }
      })();
      return stopping;
    },
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) {
      throw new Error(`the server exited during start (${JSON.stringify(exited)}):\n${target.logTail(40)}`);
    }
    if ((await healthy(url)).alive) return target;
    if (Date.now() > deadline) {
      await target.stop();
      throw new Error(`the server did not answer /health within the start timeout:\n${target.logTail(40)}`);
    }
    await delay(100);
  }
}

/**
 * The embedded app's in-process store: keys held and keys evicted so far (`memory_store_keys`,
 * `memory_store_removed_keys`), from its /metrics; undefined when the server does not report them
 * (one started elsewhere, or with Redis).
 */
export async function storeStats(target: Target): Promise<{ keys: number; evicted: number } | undefined> {
  const res = await fetch(`${target.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const lines = (await res.text()).split('\n');
  const value = (prefix: string, label: string) => {
    const line = lines.find((l) => l.startsWith(prefix) && l.includes(label));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const keys = value('memory_store_keys', '');
  const evicted = value('memory_store_removed_keys{', 'reason="evicted"');
  return keys === undefined || evicted === undefined ? undefined : { keys, evicted };
}

/** A server started by someone else (`--url`): alive = /health answers. */
export function attachTarget(url: string, limits: Partial<TargetLimits> = {}): Target {
  const u = new URL(url);
  const base = `${u.protocol}//${u.host}`;
  return {
    url: base,
    host: u.hostname,
    port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
    limits: withDefaults(limits),
    jwtSecret: undefined,
    pid: undefined,
    alive: () => healthy(base),
    logTail: () => '(the server was started elsewhere: see its own log)',
    logSince: () => '',
    mark: () => 0,
    exit: () => null,
    stop: async () => {},
  };
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
