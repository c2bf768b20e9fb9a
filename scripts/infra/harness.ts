/**
 * Real Kafka, Redis, nginx, Prometheus and Alertmanager as plain processes on 127.0.0.1, without Docker.
 * Tests (via the vitest global setup) and `npm run infra` / `npm run stack` drive it.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { alertmanager } from './alertmanager.js';
import { ensurePackages, findBinary } from './apt.js';
import { InfraError } from './errors.js';
import { kafka } from './kafka.js';
import { nginx } from './nginx.js';
import { infraPaths, serviceFiles } from './paths.js';
import type { Env } from './paths.js';
import { endpointsFor } from './ports.js';
import type { Endpoints } from './ports.js';
import {
  isOurProcess,
  isPortFree,
  readPidFile,
  removeFiles,
  spawnDetached,
  stopPid,
  tailFile,
  waitUntil,
  withLock,
  writeFileAtomic,
} from './process-control.js';
import { prometheus } from './prometheus.js';
import { scoped, seconds, stderrProgress } from './progress.js';
import { redis } from './redis.js';
import { serviceNames } from './service.js';
import type {
  HarnessOptions,
  ServiceContext,
  ServiceDefinition,
  ServiceName,
  ServiceStatus,
  StartOptions,
  StopOptions,
} from './service.js';

export type { Endpoints } from './ports.js';
export type { Progress } from './progress.js';
export { InfraError } from './errors.js';
export { serviceNames } from './service.js';
export type {
  HarnessOptions,
  LaunchSpec,
  PortPlan,
  ServiceContext,
  ServiceDefinition,
  ServiceName,
  ServiceStatus,
  StartOptions,
  StopOptions,
} from './service.js';

/** What `startService` returns: the status plus whether this call launched the process. */
export interface StartedService extends ServiceStatus {
  startedNow: boolean;
}

const definitions: Record<ServiceName, ServiceDefinition> = { kafka, redis, nginx, prometheus, alertmanager };

/** Kafka's first start may include a maven download; a second starter waits for it. */
const LOCK_TIMEOUT_MS = 10 * 60_000;

const PROBE_INTERVAL_MS = 100;

/** What the harness records beside the pid file about a process it started. */
interface RunState {
  pid: number;
  port: number;
  ports: number[];
  startedAt: string;
}

function definition(name: ServiceName): ServiceDefinition {
  const found = (definitions as Partial<Record<string, ServiceDefinition>>)[name];
  if (!found) throw new InfraError(`unknown service "${name}" (expected one of ${serviceNames.join(', ')})`);
  return found;
}

function contextFor(name: string, options: HarnessOptions): ServiceContext {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  const paths = infraPaths(env);
  const progress = options.progress ?? stderrProgress;
  return { env, paths, files: serviceFiles(paths, name), progress, say: scoped(progress, name) };
}

async function readState(context: ServiceContext): Promise<RunState | null> {
  try {
    const parsed: unknown = JSON.parse(await readFile(context.files.stateFile, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null) return null;
    const { pid, port, ports, startedAt } = parsed as Record<string, unknown>;
    if (typeof pid !== 'number' || typeof port !== 'number' || !Array.isArray(ports)) return null;
    return {
      pid,
      port,
      ports: ports.filter((p): p is number => typeof p === 'number'),
      startedAt: String(startedAt),
    };
  } catch {
    return null;
  }
}

function stopCommand(name: string): string {
  return (serviceNames as readonly string[]).includes(name)
    ? `npm run infra -- down ${name}`
    : `npm run stack -- kill ${name}`;
}

/**
 * The pid of the running process this harness started, or null. A pid file naming a dead (or
 * recycled, unrelated) process is stale and, when `cleanStale`, removed.
 */
async function runningPid(
  service: ServiceDefinition,
  context: ServiceContext,
  cleanStale: boolean,
): Promise<number | null> {
  const pid = await readPidFile(context.files.pidFile);
  if (pid !== null && (await isOurProcess(pid, service.processMarker))) return pid;
  if (cleanStale) {
    const hadFile =
      pid !== null ||
      (await readFile(context.files.pidFile).then(
        () => true,
        () => false,
      ));
    await removeFiles(context.files.pidFile, context.files.stateFile);
    if (hadFile) context.say(`removed stale pid file (pid ${pid ?? '?'} is not a running ${service.name})`);
  }
  return null;
}

/**
 * Installs what the services need when it is missing: Debian packages via apt-get (one
 * `apt-get update` per run, only if something is missing) and Kafka's jars via maven.
 */
export async function ensureInstalled(
  names: ServiceName[] | 'all',
  options: HarnessOptions = {},
): Promise<void> {
  await installDefinitions((names === 'all' ? serviceNames : names).map(definition), options);
}

async function installDefinitions(
  services: readonly ServiceDefinition[],
  options: HarnessOptions,
): Promise<void> {
  const progress = options.progress ?? stderrProgress;
  await ensurePackages(
    services.flatMap((s) => s.requirements),
    progress,
  );
  for (const service of services) await service.installExtras?.(contextFor(service.name, options));
}

/** Installs Debian's chromium when `/usr/bin/chromium` is missing; returns its path. */
export async function ensureChromium(options: HarnessOptions = {}): Promise<string> {
  await ensurePackages([{ binary: 'chromium', packages: ['chromium'] }], options.progress ?? stderrProgress);
  const path = await findBinary('chromium');
  if (!path) throw new InfraError('chromium not found after installing it');
  return path;
}

/**
 * Starts the service unless it already runs; resolves once it answers. Idempotent: a running,
 * healthy service is returned as is (`startedNow: false`), a stale pid file is removed, and a
 * port held by a process the harness did not start fails with an error naming the port.
 */
export function startService(name: ServiceName, options: StartOptions = {}): Promise<StartedService> {
  return startDefinition(definition(name), options);
}

/**
 * `startService` for any definition, not only the four built in (the stack runs its Node services
 * through it). Pid, state, lock and log files are named after `service.name`.
 */
export async function startDefinition(
  service: ServiceDefinition,
  options: StartOptions = {},
): Promise<StartedService> {
  const name = service.name;
  const context = contextFor(name, options);
  const timeoutMs = options.timeoutMs ?? service.startTimeoutMs;
  return withLock(context.files.lockFile, LOCK_TIMEOUT_MS, async () => {
    const plan = service.ports(context, options);
    const existing = await runningPid(service, context, true);
    if (existing !== null) {
      const port = (await readState(context))?.port ?? plan.port;
      if (port !== plan.port) {
        throw new InfraError(
          `${name}: already running on port ${port} (pid ${existing}), not ${plan.port}; stop it first`,
        );
      }
      if (!(await waitUntil(() => service.probe(port), timeoutMs, PROBE_INTERVAL_MS))) {
        throw new InfraError(
          `${name}: pid ${existing} is running but does not answer on 127.0.0.1:${port}; ` +
            `see ${context.files.logFile} or stop it with \`${stopCommand(name)}\``,
        );
      }
      context.say(`already running (pid ${existing}, 127.0.0.1:${port})`);
      return { name, pid: existing, port, healthy: true, startedNow: false };
    }

    await installDefinitions([service], options);
    for (const [index, port] of plan.all.entries()) {
      if (!(await isPortFree(port))) {
        const variable = service.portVariables[index];
        throw new InfraError(
          `${name}: port ${port} on 127.0.0.1 is already in use by a process this harness did not start` +
            (variable ? ` (stop it or set ${variable})` : ''),
        );
      }
    }

    const started = performance.now();
    context.say(`starting on 127.0.0.1:${plan.port} …`);
    const launch = await service.prepare(context, options, plan);
    await mkdir(context.paths.logDir, { recursive: true });
    await appendFile(
      context.files.logFile,
      `\n=== ${new Date().toISOString()} infra start: ${launch.command} ${launch.args.join(' ')}\n`,
    );
    const child = await spawnDetached({
      command: launch.command,
      args: launch.args,
      cwd: launch.cwd,
      env: launch.env ?? context.env,
      logFile: context.files.logFile,
    });
    const state: RunState = {
      pid: child.pid,
      port: plan.port,
      ports: plan.all,
      startedAt: new Date().toISOString(),
    };
    await writeFileAtomic(context.files.pidFile, `${child.pid}\n`);
    await writeFileAtomic(context.files.stateFile, `${JSON.stringify(state)}\n`);

    const outcome: { exit: string | null } = { exit: null };
    void child.exited.then(({ code, signal }) => {
      outcome.exit = signal ? `signal ${signal}` : `code ${code}`;
    });
    const ready = await waitUntil(
      async () => outcome.exit !== null || (await service.probe(plan.port)),
      timeoutMs,
      PROBE_INTERVAL_MS,
    );
    if (outcome.exit !== null || !ready) {
      const reason =
        outcome.exit !== null
          ? `exited with ${outcome.exit} during start-up`
          : `not ready after ${(timeoutMs / 1000).toFixed(0)}s`;
      if (outcome.exit === null) await stopPid(child.pid, { signal: 'SIGKILL', timeoutMs: 5_000 });
      await removeFiles(context.files.pidFile, context.files.stateFile);
      throw new InfraError(
        `${name}: ${reason}; log ${context.files.logFile}`,
        await tailFile(context.files.logFile),
      );
    }
    context.say(`ready in ${seconds(started)} (pid ${child.pid})`);
    options.reportStarted?.push(name);
    return { name, pid: child.pid, port: plan.port, healthy: true, startedNow: true };
  });
}

/**
 * Stops the process named by the service's pid file: the signal (SIGTERM by default), then
 * SIGKILL after `timeoutMs`. Removes the pid file. A service that is not running is a no-op.
 * Data stays in the work dir, so the next start reuses it.
 */
export function stopService(name: ServiceName, options: StopOptions = {}): Promise<void> {
  return stopDefinition(definition(name), options);
}

/** `stopService` for any definition. */
export async function stopDefinition(service: ServiceDefinition, options: StopOptions = {}): Promise<void> {
  const context = contextFor(service.name, options);
  const signal = options.signal ?? 'SIGTERM';
  await withLock(context.files.lockFile, LOCK_TIMEOUT_MS, async () => {
    const pid = await runningPid(service, context, true);
    if (pid === null) return;
    const started = performance.now();
    context.say(`stopping pid ${pid} (${signal}) …`);
    const ports = (await readState(context))?.ports ?? [];
    const how = await stopPid(pid, { signal, timeoutMs: options.timeoutMs ?? service.stopTimeoutMs });
    await removeFiles(context.files.pidFile, context.files.stateFile);
    // The kernel may release a dead process's sockets a moment after it is reaped; callers
    // (a restart on the same port) rely on the ports being free when this resolves.
    for (const port of ports) {
      if (!(await waitUntil(() => isPortFree(port), 5_000, 50))) {
        context.say(`port ${port} is still in use after pid ${pid} exited`);
      }
    }
    const forced = how === 'killed' && signal === 'SIGTERM' ? ' (SIGKILL after the grace period)' : '';
    context.say(`stopped in ${seconds(started)}${forced}`);
  });
}

/** Whether the service runs (by its pid file) and answers; never changes anything. */
export function serviceStatus(name: ServiceName, options: StartOptions = {}): Promise<ServiceStatus> {
  return definitionStatus(definition(name), options);
}

/** `serviceStatus` for any definition. */
export async function definitionStatus(
  service: ServiceDefinition,
  options: StartOptions = {},
): Promise<ServiceStatus> {
  const name = service.name;
  const context = contextFor(name, options);
  const pid = await runningPid(service, context, false);
  const port =
    (pid !== null ? (await readState(context))?.port : undefined) ?? service.ports(context, options).port;
  const healthy = pid !== null && (await service.probe(port));
  return { name, pid, port, healthy };
}

/** Client addresses from the same port settings the services start with (env, then defaults). */
export function serviceEndpoints(env: Env = {}): Endpoints {
  return endpointsFor({ ...process.env, ...env });
}
