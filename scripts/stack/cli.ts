/**
 * npm run stack -- up                 start all ten services, wait until healthy
 * npm run stack -- down [--keep-infra] stop them (reverse order; SIGTERM, then SIGKILL)
 * npm run stack -- status [--json]
 * npm run stack -- kill NAME          SIGKILL one service (fault tests)
 * npm run stack -- start NAME         bring one back, wait until healthy
 */
import { runCli, type Command } from '../infra/cli-runner.js';
import { InfraError } from '../infra/harness.js';
import {
  checkName,
  stackDown,
  stackKill,
  stackServiceNames,
  stackStart,
  stackStatus,
  stackUp,
} from './stack.js';
import { forgetUpEnv, saveUpEnv, withUpEnv } from './up-env.js';

const USAGE = `usage: npm run stack -- <command>
  up                       start everything not already running; returns once all are healthy
  down [--keep-infra]      stop everything (--keep-infra: leave Kafka and Redis running)
  status [--json]          pid, port and health of every service, and the failing checks of an
                           unhealthy one (--json: on stdout, nothing else)
  kill NAME                SIGKILL one service (simulated crash)
  start NAME               start one service and wait until it is healthy

names: ${stackServiceNames.join(' ')}
ports: GATEWAY_1_PORT GATEWAY_2_PORT AI_CONSUMER_PORT MESSAGE_RELAY_PORT MOCK_OPENAI_PORT
       NGINX_PORT PROMETHEUS_PORT ALERTMANAGER_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT
config: PROMETHEUS_CONFIG (template of the stack's config) ALERTMANAGER_CONFIG
model: without OPENAI_API_KEY the bundled mock answers (MOCK_OPENAI_TTFT_MS, MOCK_OPENAI_TOKEN_MS)
work dir: RELAY_WORK_DIR (default .work/); other variables (LOG_LEVEL, MAX_WORKERS, …) pass through.
After \`up\`, start/kill/status/down use the environment \`up\` was given (kept in the work dir
until \`down\`); a variable set again on their command line wins.`;

function oneName(args: readonly string[]): string {
  const names = args.filter((a) => !a.startsWith('-'));
  const [name] = names;
  if (name === undefined || names.length > 1) throw new InfraError(`expected one service name\n${USAGE}`);
  return checkName(name);
}

/** The commands after `up` see what `up` was given, under the current environment. */
const afterUp = async () => ({ env: await withUpEnv(process.env) });

async function status(args: readonly string[]): Promise<void> {
  const statuses = await stackStatus(await afterUp());
  if (args.includes('--json')) {
    process.stdout.write(`${JSON.stringify(statuses)}\n`);
    return;
  }
  const rows = statuses.map((s) => [
    s.name,
    s.pid === null ? 'stopped' : s.healthy ? 'healthy' : 'unhealthy',
    s.pid === null ? '-' : String(s.pid),
    `127.0.0.1:${s.port}`,
  ]);
  const all = [['NAME', 'STATE', 'PID', 'ADDRESS'], ...rows];
  const widths = [0, 1, 2].map((i) => Math.max(...all.map((r) => r[i]?.length ?? 0)));
  all.forEach((row, rowIndex) => {
    process.stdout.write(
      `${row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
    // Under an unhealthy service's row, what its /ready says fails (row 0 is the header).
    for (const f of statuses[rowIndex - 1]?.failing ?? [])
      process.stdout.write(`  ${f.check} failing: ${f.reason}\n`);
  });
}

const commands: Record<string, Command> = {
  up: async () => {
    await saveUpEnv(process.env);
    await stackUp();
  },
  down: async (args) => {
    await stackDown({ ...(await afterUp()), keepInfra: args.includes('--keep-infra') });
    await forgetUpEnv(process.env);
  },
  status,
  kill: async (args) => stackKill(oneName(args), await afterUp()),
  start: async (args) => {
    await stackStart(oneName(args), await afterUp());
  },
};

process.exitCode = await runCli('stack', USAGE, commands, process.argv.slice(2), (command) => {
  if (command === 'up') {
    console.error('[stack] what did start keeps running: `npm run stack -- status`, `npm run stack -- down`');
  }
});
