/**
 * The stack for integration and e2e tests: the same functions `npm run stack` uses, on ports away
 * from the defaults (so a developer's stack or app on 8080… is not in the way), sharing the work
 * dir, Kafka and Redis of the vitest global setup (`test/integration-setup.ts`), which owns those
 * two: `stackDown()` leaves them running.
 *
 *   const { started } = await stackUp({ MOCK_OPENAI_TOKEN_MS: '0' });
 *   const token = await stackToken('alice');
 *   const ws = new WebSocket(`${stackUrls().ws}?token=${token}`);
 *   await stackKill('gateway-1'); …; await stackStart('gateway-1');
 *   await stackDown();
 *
 * `stackUp(env)` remembers `env`; the other functions use it, so a restarted service gets the
 * same ports and settings as the first start.
 */
import { spawn } from 'node:child_process';
import type { Env } from '../infra/paths.js';
import { repoRoot } from '../infra/paths.js';
import type { Progress } from '../infra/progress.js';
import * as stack from './stack.js';
import type { StackPorts, StackServiceName, StackServiceStatus, StackUpResult } from './stack.js';

export type { StackPorts, StackServiceName, StackServiceStatus, StackUpResult } from './stack.js';
export { stackServiceNames } from './stack.js';

/**
 * Defaults of the test stack: its ports and settings. A variable set in the process environment
 * wins over its default here (so concurrent runs on one machine can move every port), and
 * `stackUp(env)` wins over both. `testStackEnv()` is the result.
 */
export const TEST_STACK_ENV: Readonly<Record<string, string>> = {
  NGINX_PORT: '18280',
  GATEWAY_1_PORT: '18281',
  GATEWAY_2_PORT: '18282',
  MOCK_OPENAI_PORT: '18290',
  AI_CONSUMER_PORT: '19201',
  MESSAGE_RELAY_PORT: '19202',
  PROMETHEUS_PORT: '19290',
  ALERTMANAGER_PORT: '19293',
  // Every test client gets its token through nginx, so all of them share one client IP.
  TOKEN_RATE_LIMIT_PER_MINUTE: '100000',
  // The tests' clients use the original `POST /token?userid=` (the stack's default is off).
  DEV_TOKENS: 'true',
};

/** `TEST_STACK_ENV` with each variable the process environment sets taken from there instead. */
export function testStackEnv(): Env {
  const env: Record<string, string> = { ...TEST_STACK_ENV };
  for (const name of Object.keys(TEST_STACK_ENV)) {
    const value = process.env[name];
    if (value !== undefined && value !== '') env[name] = value;
  }
  return env;
}

let current: Env = testStackEnv();

const progress: Progress = (line) => {
  process.stderr.write(`${line}\n`);
};

function options(): stack.StackOptions {
  return { env: current, progress };
}

/**
 * Starts what is not running (Kafka and Redis are found running when the global setup started
 * them) and waits until all ten are healthy. `env` goes on top of `testStackEnv()` and reaches
 * every service (`MOCK_OPENAI_TTFT_MS`, `LOG_LEVEL`, …); it only takes effect for services this
 * call starts, so a test that needs other settings should `stackDown()` first.
 */
export function stackUp(env: Env = {}): Promise<StackUpResult> {
  current = { ...testStackEnv(), ...env };
  return stack.stackUp(options());
}

/** Stops every stack service except Kafka and Redis, in reverse start order. */
export function stackDown(): Promise<void> {
  return stack.stackDown({ ...options(), keepInfra: true });
}

export function stackStatus(): Promise<StackServiceStatus[]> {
  return stack.stackStatus(options());
}

/** SIGKILL, as a crash: the service's status turns `{ pid: null, healthy: false }`. */
export function stackKill(name: StackServiceName): Promise<void> {
  return stack.stackKill(name, options());
}

/** Starts one service again and waits until it is healthy. */
export function stackStart(name: StackServiceName): Promise<StackServiceStatus> {
  return stack.stackStart(name, options());
}

/**
 * Starts one service with `env` on top of the stack's settings, e.g. `REDIS_PORT` of a Redis of
 * the test's own, so an outage test stops that one and not the Redis every test file shares.
 * Only this start sees `env`; `stackStart` later uses the stack's settings again.
 */
export function stackStartWith(name: StackServiceName, env: Env): Promise<StackServiceStatus> {
  return stack.stackStart(name, { ...options(), env: { ...current, ...env } });
}

/** Runs `npm run stack -- <args>` as a user would (minus npm), on the test stack's settings. */
export function stackCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', 'scripts/stack/cli.ts', ...args],
      { cwd: repoRoot, env: { ...process.env, ...current }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

export interface StackUrls {
  /** nginx: `/token`, `/health`, the UI. */
  http: string;
  /** nginx's WebSocket endpoint; add `?token=…`. */
  ws: string;
  /** Each gateway directly, by name. */
  gateways: Record<'gateway-1' | 'gateway-2', string>;
  prometheus: string;
  alertmanager: string;
  ports: StackPorts;
}

export function stackUrls(): StackUrls {
  const ports = stack.stackPorts({ ...process.env, ...current });
  const http = (port: number): string => `http://127.0.0.1:${port}`;
  return {
    http: http(ports.nginx),
    ws: `ws://127.0.0.1:${ports.nginx}/ws`,
    gateways: { 'gateway-1': http(ports['gateway-1']), 'gateway-2': http(ports['gateway-2']) },
    prometheus: http(ports.prometheus),
    alertmanager: http(ports.alertmanager),
    ports,
  };
}

/** A token for `userid` from `POST /token` through nginx. */
export async function stackToken(userid: string): Promise<string> {
  const res = await fetch(`${stackUrls().http}/token?userid=${encodeURIComponent(userid)}`, {
    method: 'POST',
  });
  if (res.status !== 200) throw new Error(`POST /token: HTTP ${res.status} ${await res.text()}`);
  const body: unknown = await res.json();
  if (typeof body !== 'object' || body === null || !('token' in body) || typeof body.token !== 'string') {
    throw new Error('POST /token: no token in the answer');
  }
  return body.token;
}
