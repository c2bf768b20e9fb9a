/**
 * The whole system as local processes on 127.0.0.1: Kafka, Redis, the mock model, message-relay,
 * ai-consumer, two gateways, nginx in front of them, Alertmanager and Prometheus. Every service goes
 * through the infra harness (pid files under `<work>/run/`, logs under `<work>/logs/`), so
 * `npm run stack` and `npm run infra` see the same Kafka, Redis, nginx, Prometheus and Alertmanager.
 */
import { definitionStatus, InfraError, startDefinition, stopDefinition } from '../infra/harness.js';
import type { Progress, StartedService } from '../infra/harness.js';
import type { Env } from '../infra/paths.js';
import { seconds, stderrProgress } from '../infra/progress.js';
import {
  failingChecks,
  isStackServiceName,
  stackDefinitions,
  stackPorts,
  stackServiceNames,
  usesMockModel,
} from './services.js';
import type { FailingCheck, StackServiceName } from './services.js';

export { stackPorts, stackServiceNames } from './services.js';
export type { FailingCheck, StackPorts, StackServiceName } from './services.js';

export interface StackOptions {
  /**
   * Overlay on `process.env`: ports (`GATEWAY_1_PORT`, `NGINX_PORT`, …), work dir
   * (`RELAY_WORK_DIR`) and settings every service inherits (`MOCK_OPENAI_TOKEN_MS`, `LOG_LEVEL`, …).
   */
  env?: Env;
  /** Receives `[stack] …` lines. @default stderr */
  progress?: Progress;
}

export interface StackServiceStatus {
  name: StackServiceName;
  /** Pid of the process the stack (or the infra harness) started; null when it is not running. */
  pid: number | null;
  port: number;
  healthy: boolean;
  /**
   * Only for a running service that is not healthy and says why (gateways, ai-consumer,
   * message-relay): the checks its `/ready` reports failing, e.g. `{ check: 'redis', reason }`.
   */
  failing?: FailingCheck[];
}

export interface StackUpResult {
  /** Services this call launched, in start order; empty when everything already ran. */
  started: StackServiceName[];
  services: StackServiceStatus[];
  durationMs: number;
}

export interface StackDownOptions extends StackOptions {
  /**
   * Leave Kafka and Redis running (tests, whose global setup owns them). @default false: `down`
   * stops all ten, Kafka and Redis included, even when `npm run infra` started them; they share
   * the harness' pid files, so the stack cannot tell and a dev machine should end up clean.
   */
  keepInfra?: boolean;
}

/** The harness' progress lines, relabelled for the stack. */
function stackProgress(options: StackOptions): Progress {
  const progress = options.progress ?? stderrProgress;
  return (line) => progress(line.replace(/^\[infra\] /, '[stack] '));
}

function harnessOptions(options: StackOptions): { env: Env; progress: Progress } {
  return { env: options.env ?? {}, progress: stackProgress(options) };
}

function merged(options: StackOptions): Env {
  return { ...process.env, ...options.env };
}

export function checkName(name: string): StackServiceName {
  if (!isStackServiceName(name)) {
    throw new InfraError(`unknown service "${name}" (expected one of ${stackServiceNames.join(', ')})`);
  }
  return name;
}

/** The services `up` runs: all ten, less the mock model when a real `OPENAI_API_KEY` is set. */
function upNames(env: Env): StackServiceName[] {
  return stackServiceNames.filter((name) => name !== 'mock-openai' || usesMockModel(env));
}

/**
 * Starts every service that is not already running and healthy, in order, each awaited until
 * ready. A service that fails to start throws an `InfraError` with the tail of its log; what
 * started before it keeps running (see `stackStatus`, `stackDown`).
 */
export async function stackUp(options: StackOptions = {}): Promise<StackUpResult> {
  const begun = performance.now();
  const env = merged(options);
  // Resolve every port first, so a bad value fails before anything starts.
  stackPorts(env);
  const started: StackServiceName[] = [];
  const services: StackServiceStatus[] = [];
  for (const name of upNames(env)) {
    const result = await startDefinition(stackDefinitions[name], harnessOptions(options));
    if (result.startedNow) started.push(name);
    services.push(statusOf(name, result));
  }
  const durationMs = performance.now() - begun;
  const progress = stackProgress(options);
  const nginxPort = stackPorts(env).nginx;
  progress(
    `[stack] up in ${seconds(begun)}: ${started.length > 0 ? `started ${started.join(' ')}` : 'everything was already running'}`,
  );
  progress(`[stack] open http://127.0.0.1:${nginxPort}/`);
  return { started, services, durationMs };
}

/**
 * Stops the stack's services in reverse start order: SIGTERM, SIGKILL after each service's grace
 * period. Services that are not running are skipped.
 */
export async function stackDown(options: StackDownOptions = {}): Promise<void> {
  const begun = performance.now();
  const keep: readonly StackServiceName[] = options.keepInfra ? ['kafka', 'redis'] : [];
  for (const name of [...stackServiceNames].reverse()) {
    if (keep.includes(name)) continue;
    await stopDefinition(stackDefinitions[name], harnessOptions(options));
  }
  stackProgress(options)(
    `[stack] down in ${seconds(begun)}${options.keepInfra ? ' (Kafka and Redis left running)' : ''}`,
  );
}

/** Pid, port and health of all ten services, and why an unhealthy one is not ready; changes nothing. */
export async function stackStatus(options: StackOptions = {}): Promise<StackServiceStatus[]> {
  return Promise.all(
    stackServiceNames.map(async (name) => {
      const status = statusOf(name, await definitionStatus(stackDefinitions[name], harnessOptions(options)));
      if (status.pid === null || status.healthy) return status;
      const failing = await failingChecks(name, status.port);
      return failing ? { ...status, failing } : status;
    }),
  );
}

/** SIGKILL to the service's process group, as a crash would; its pid file is removed. */
export async function stackKill(name: string, options: StackOptions = {}): Promise<void> {
  const service = checkName(name);
  await stopDefinition(stackDefinitions[service], { ...harnessOptions(options), signal: 'SIGKILL' });
}

/** Starts one service (no-op when it runs) and waits until it is ready. */
export async function stackStart(name: string, options: StackOptions = {}): Promise<StackServiceStatus> {
  const service = checkName(name);
  return statusOf(service, await startDefinition(stackDefinitions[service], harnessOptions(options)));
}

function statusOf(
  name: StackServiceName,
  status: Omit<StartedService, 'startedNow' | 'name'>,
): StackServiceStatus {
  return { name, pid: status.pid, port: status.port, healthy: status.healthy };
}
