import type { AptRequirement } from './apt.js';
import type { Env, InfraPaths, ServiceFiles } from './paths.js';
import type { Progress } from './progress.js';

export type ServiceName = 'kafka' | 'redis' | 'nginx' | 'prometheus' | 'alertmanager';

export const serviceNames: readonly ServiceName[] = ['kafka', 'redis', 'nginx', 'prometheus', 'alertmanager'];

export interface ServiceStatus {
  name: string;
  /** Pid of the process the harness started, null when it is not running. */
  pid: number | null;
  port: number;
  healthy: boolean;
}

export interface HarnessOptions {
  /** Overlay on `process.env` for ports, work dir and the child's environment. */
  env?: Env;
  /** Where progress lines go. @default stderr */
  progress?: Progress;
}

export interface StartOptions extends HarnessOptions {
  /**
   * @default `KAFKA_PORT`, `REDIS_PORT`, `NGINX_PORT`, `PROMETHEUS_PORT` or `ALERTMANAGER_PORT`,
   * else the usual port
   */
  port?: number;
  /** Kafka only. @default `KAFKA_CONTROLLER_PORT`, else 9093 */
  controllerPort?: number;
  /**
   * nginx: config template (`${UPPER_CASE}` placeholders are filled in), @default `NGINX_CONF`,
   * else `<repo>/nginx/nginx.conf`. Prometheus: config file, @default `PROMETHEUS_CONFIG`, else
   * `<repo>/prometheus/prometheus.yml` (created minimal when missing). Alertmanager: config file,
   * @default `ALERTMANAGER_CONFIG`, else `<repo>/prometheus/alertmanager.yml`.
   */
  confPath?: string;
  /** How long to wait for the service to become ready. @default per service (Kafka 90 s, others 20 s) */
  timeoutMs?: number;
  /** Receives the service name when this call started the process (not when it was already up). */
  reportStarted?: string[];
}

export interface StopOptions extends HarnessOptions {
  /** SIGKILL simulates a crash. @default 'SIGTERM' */
  signal?: 'SIGTERM' | 'SIGKILL';
  /** Grace period before SIGKILL. @default per service (Kafka 30 s, others 10 s) */
  timeoutMs?: number;
}

/** What one service call works with: resolved env, paths and a progress writer. */
export interface ServiceContext {
  env: NodeJS.ProcessEnv;
  paths: InfraPaths;
  files: ServiceFiles;
  say: (message: string) => void;
  progress: Progress;
}

export interface PortPlan {
  /** The port clients use (and the one reported in `ServiceStatus`). */
  port: number;
  /** Every port the process will bind; all must be free before it starts. */
  all: number[];
}

export interface LaunchSpec {
  command: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
}

/** How the harness installs, configures, launches and probes one kind of server. */
export interface ServiceDefinition {
  /** A `ServiceName` for the built-in ones; the stack adds its own (`gateway-1`, …). */
  name: string;
  /** Must occur in `/proc/<pid>/cmdline`; guards against signalling a recycled pid. */
  processMarker: string;
  /** Env variables that set each port of `PortPlan.all`, named in errors. */
  portVariables: readonly string[];
  /** @default readiness wait when the caller gives none */
  startTimeoutMs: number;
  stopTimeoutMs: number;
  requirements: readonly AptRequirement[];
  /** Extra install work after the apt packages (Kafka's jars). */
  installExtras?(context: ServiceContext): Promise<void>;
  ports(context: ServiceContext, options: StartOptions): PortPlan;
  /** Writes config and data dirs; runs only after the ports were found free. */
  prepare(context: ServiceContext, options: StartOptions, ports: PortPlan): Promise<LaunchSpec>;
  /** One readiness check; must not throw. */
  probe(port: number): Promise<boolean>;
}
