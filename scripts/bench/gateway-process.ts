/**
 * A benchmark's gateway in a process of its own (scripts/bench/gateway-child.ts: real uWS, real
 * Redis), started on a port and stopped by PID. Used by the presence and compression benches.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../infra/paths.js';

export interface EventLoopDelay {
  p50: number;
  p99: number;
  max: number;
  /** Garbage-collector pauses over the same span: how many, their sum and the longest, ms. */
  gcPauses: number;
  gcTotalMs: number;
  gcMaxMs: number;
}

export interface GatewayProcess {
  name: string;
  child: ChildProcess;
  port: number;
  base: string;
  /** The gateway's event-loop delay (ms) since the previous call; the first call starts the count. */
  eventLoopDelay(): Promise<EventLoopDelay>;
}

/**
 * Starts one gateway on `port` (0: a free one) with `env` over this process' environment.
 * `profileDir`: write V8 CPU profiles to `<profileDir>/<name>/` when it stops.
 */
export async function startGatewayProcess(options: {
  name: string;
  port: number;
  redisUrl: string;
  env: Record<string, string>;
  profileDir?: string;
}): Promise<GatewayProcess> {
  const { name, port, redisUrl, profileDir } = options;
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--conditions=source',
      // One folder per gateway: node names each thread's profile itself (the main thread's and the
      // tsx loader worker's; a fixed --cpu-prof-name would have the worker's overwrite the other).
      ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, name)}`] : []),
      join(repoRoot, 'scripts/bench/gateway-child.ts'),
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, ...options.env, REDIS_URL: redisUrl, PORT: String(port), SERVER_ID: name },
      stdio: ['ignore', 'pipe', 'inherit'],
      // Its own process group, so its CPU is read from /proc by group.
      detached: true,
    },
  );
  const waiting: Array<(d: EventLoopDelay) => void> = [];
  let rest = '';
  const listening = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 60 s`)), 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const parsed = JSON.parse(line) as { port?: number; eventLoopDelayMs?: EventLoopDelay };
        if (parsed.port !== undefined) {
          clearTimeout(timer);
          resolvePort(parsed.port);
        } else if (parsed.eventLoopDelayMs) {
          waiting.shift()?.(parsed.eventLoopDelayMs);
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${String(code)}`)));
  });
  const eventLoopDelay = () =>
    new Promise<EventLoopDelay>((resolveDelay) => {
      waiting.push(resolveDelay);
      child.kill('SIGUSR2');
    });
  return { name, child, port: listening, base: `http://127.0.0.1:${listening}`, eventLoopDelay };
}

/** SIGTERM, then SIGKILL after 10 s. */
export async function stopGatewayProcess(g: GatewayProcess): Promise<void> {
  if (g.child.exitCode !== null || g.child.pid === undefined) return;
  const exited = new Promise((r) => g.child.once('exit', r));
  g.child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  if (g.child.exitCode === null) g.child.kill('SIGKILL');
}
