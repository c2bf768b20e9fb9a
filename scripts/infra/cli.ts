/**
 * npm run infra -- up [names…]        start (default: kafka redis)
 * npm run infra -- down [names…]      stop (default: every running service)
 * npm run infra -- status [--json]
 * npm run infra -- install [names…|all|chromium]
 */
import { runCli, type Command } from './cli-runner.js';
import {
  ensureChromium,
  ensureInstalled,
  InfraError,
  serviceNames,
  serviceStatus,
  startService,
  stopService,
} from './harness.js';
import type { ServiceName } from './harness.js';
import { seconds } from './progress.js';

const USAGE = `usage: npm run infra -- <command> [names…]
  up [names…]              start services (default: kafka redis)
  down [names…]            stop services (default: all running)
  status [--json]          show pid, port and health of every service
  install [names…|all]     install what is missing (names: ${serviceNames.join(', ')}, chromium)

ports: KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT NGINX_PORT PROMETHEUS_PORT ALERTMANAGER_PORT
config: NGINX_CONF PROMETHEUS_CONFIG ALERTMANAGER_CONFIG   work dir: RELAY_WORK_DIR   cache: RELAY_CACHE_DIR`;

function parseNames(args: readonly string[], fallback: readonly ServiceName[]): ServiceName[] {
  const names = args.filter((a) => !a.startsWith('-'));
  for (const name of names) {
    if (!(serviceNames as readonly string[]).includes(name)) {
      throw new InfraError(`unknown service "${name}" (expected one of ${serviceNames.join(', ')})`);
    }
  }
  return names.length > 0 ? (names as ServiceName[]) : [...fallback];
}

async function up(args: readonly string[]): Promise<void> {
  const started = performance.now();
  const names = parseNames(args, ['kafka', 'redis']);
  await ensureInstalled(names);
  for (const name of names) await startService(name);
  console.error(`[infra] up: ${names.join(' ')} in ${seconds(started)}`);
}

async function down(args: readonly string[]): Promise<void> {
  const started = performance.now();
  const requested = parseNames(args, []);
  let names = requested;
  if (names.length === 0) {
    const statuses = await Promise.all(serviceNames.map((name) => serviceStatus(name)));
    names = statuses.filter((s) => s.pid !== null).map((s) => s.name as ServiceName);
  }
  // Front to back: nginx, Prometheus and Alertmanager first, Kafka last.
  const order: ServiceName[] = ['nginx', 'prometheus', 'alertmanager', 'redis', 'kafka'];
  for (const name of order.filter((n) => names.includes(n))) await stopService(name);
  console.error(
    `[infra] down: ${names.length > 0 ? names.join(' ') : 'nothing was running'} in ${seconds(started)}`,
  );
}

async function status(args: readonly string[]): Promise<void> {
  const statuses = await Promise.all(serviceNames.map((name) => serviceStatus(name)));
  if (args.includes('--json')) {
    console.log(JSON.stringify(statuses, null, 2));
    return;
  }
  for (const s of statuses) {
    const state = s.pid === null ? 'stopped' : s.healthy ? 'running' : 'unhealthy';
    console.log(
      `${s.name.padEnd(12)} ${state.padEnd(9)} ${s.pid === null ? '' : `pid ${s.pid}`.padEnd(11)} 127.0.0.1:${s.port}`.trimEnd(),
    );
  }
}

async function install(args: readonly string[]): Promise<void> {
  const started = performance.now();
  const all = args.includes('all');
  const wantsChromium = all || args.includes('chromium');
  const names = all
    ? serviceNames
    : parseNames(
        args.filter((a) => a !== 'chromium'),
        args.length ? [] : serviceNames,
      );
  if (names.length > 0) await ensureInstalled([...names]);
  if (wantsChromium) await ensureChromium();
  console.error(`[infra] install: done in ${seconds(started)}`);
}

const commands: Record<string, Command> = { up, down, status, install };

process.exitCode = await runCli('infra', USAGE, commands, process.argv.slice(2));
