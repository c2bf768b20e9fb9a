/**
 * npm run soak -- [--minutes 30] [--rate 50] [--users 100] [--stream-share 0.5]
 *   [--url http://127.0.0.1:8080 [--pid P,…] [--stack]] [--port 0] [--server-cwd DIR]
 *   [--server-node-options=--heapsnapshot-signal=SIGUSR2] [--sample-seconds 60] [--grace 30]
 *   [--warmup-minutes 2] [--tolerance-pct 10]
 *   [--token-source post|secret:<file>] [--json .work/soak/result.json] [--server-log .work/soak/server.log]
 *
 * A steady open-loop load (message k to user k % users; --stream-share of them get deltas) while
 * the RSS (VmRSS) of the target is sampled at the start, every --sample-seconds and at the end.
 * Prints progress while it runs, then the RSS curve (start, every 5 minutes, end), messages
 * sent / answered / lost, and a verdict with its rule (verdict.ts); writes everything to --json.
 *
 * Without --url it starts `npm start` (in --server-cwd, on --port: any free one by default; token
 * and message limits and MAX_WORKERS raised for the schedule unless set in the environment) and
 * stops it by pid at the end, Ctrl-C included. With --url it samples the one process listening on
 * the URL's port, the --pid list, or with --stack every service of `npm run stack -- status --json`.
 * Exit code: 0 flat, nothing lost and no target gone; 1 otherwise; 2 bad usage; 130 interrupted.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../infra/paths.js';
import { serverLimitsEnv, soakOptionsSchema } from './options.js';
import { startEmbedded, type StartedServer } from './server.js';
import { formatReport, runSoak } from './soak.js';
import { listeningPid, stackTargets, type TargetProcess } from './targets.js';

const OPTIONS = {
  minutes: { type: 'string' },
  rate: { type: 'string' },
  users: { type: 'string' },
  'stream-share': { type: 'string' },
  url: { type: 'string' },
  pid: { type: 'string' },
  stack: { type: 'boolean' },
  port: { type: 'string' },
  'server-cwd': { type: 'string' },
  'server-node-options': { type: 'string' },
  'sample-seconds': { type: 'string' },
  grace: { type: 'string' },
  'warmup-minutes': { type: 'string' },
  'tolerance-pct': { type: 'string' },
  'token-source': { type: 'string' },
  'content-length': { type: 'string' },
  json: { type: 'string' },
  'server-log': { type: 'string' },
} as const;

let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];
try {
  ({ values } = parseArgs({ options: OPTIONS }));
} catch (err) {
  // A value that starts with a dash needs `=`: --server-node-options=--inspect
  console.error(`soak: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  process.exit(2);
}

const parsed = soakOptionsSchema.safeParse({
  ...(values.minutes && { minutes: values.minutes }),
  ...(values.rate && { rate: values.rate }),
  ...(values.users && { users: values.users }),
  ...(values['stream-share'] && { streamShare: values['stream-share'] }),
  ...(values.url && { url: values.url }),
  ...(values.pid && { pids: values.pid.split(',').filter(Boolean) }),
  ...(values.stack && { stack: true }),
  ...(values.port && { port: values.port }),
  ...(values['server-cwd'] && { serverCwd: values['server-cwd'] }),
  ...(values['server-node-options'] && { serverNodeOptions: values['server-node-options'] }),
  ...(values['sample-seconds'] && { sampleSeconds: values['sample-seconds'] }),
  ...(values.grace && { grace: values.grace }),
  ...(values['warmup-minutes'] && { warmupMinutes: values['warmup-minutes'] }),
  ...(values['tolerance-pct'] && { tolerancePct: values['tolerance-pct'] }),
  ...(values['token-source'] && { tokenSource: values['token-source'] }),
  ...(values['content-length'] && { contentLength: values['content-length'] }),
  ...(values.json && { json: values.json }),
  ...(values['server-log'] && { serverLog: values['server-log'] }),
});
if (!parsed.success) {
  const issue = parsed.error.issues[0];
  console.error(`soak: --${String(issue?.path[0] ?? 'options')}: ${issue?.message}`);
  process.exit(2);
}
const options = parsed.data;
if (!options.url && (options.stack || options.pids.length > 0)) {
  console.error('soak: --stack and --pid need --url (without it the soak starts and samples npm start)');
  process.exit(2);
}
const progress = (line: string) => process.stderr.write(`${line}\n`);

let server: StartedServer | undefined;
let interrupted = false;
let cleaning: Promise<unknown> | undefined;
const cleanup = () => (cleaning ??= server?.stop() ?? Promise.resolve());
// Ctrl-C ends the sending; the run then reports what it has and stops the server. A second one
// while that happens is ignored, so the server is never left running.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    progress(`[soak] ${signal}: stopping the load${server ? ' and the server the soak started' : ''}`);
  });
}

try {
  let url = options.url;
  let targets: TargetProcess[];
  if (url === undefined) {
    const cwd = resolve(options.serverCwd ?? repoRoot);
    server = await startEmbedded({
      cwd,
      port: options.port,
      logFile: resolve(options.serverLog),
      env: {
        ...process.env,
        ...serverLimitsEnv(options, process.env),
        // The start line (with the port) is an info line.
        LOG_LEVEL: 'info',
        ...(options.serverNodeOptions && { NODE_OPTIONS: options.serverNodeOptions }),
      },
    });
    url = server.url;
    targets = [{ name: 'ai-relay', pid: server.appPid }];
    progress(
      `[soak] started npm start in ${cwd} on ${url} (app pid ${server.appPid}, log ${options.serverLog})`,
    );
  } else if (options.stack) {
    targets = await stackTargets();
  } else if (options.pids.length > 0) {
    targets = options.pids.map((pid) => ({ name: `pid-${pid}`, pid }));
  } else {
    const port = Number(new URL(url).port || (url.startsWith('https') ? 443 : 80));
    const pid = await listeningPid(port);
    if (pid === undefined)
      throw new Error(`not one local process listens on port ${port}: give --pid or --stack`);
    targets = [{ name: `pid-${pid}`, pid }];
  }
  if (interrupted) throw new Error('interrupted before the load started');
  progress(
    `[soak] ${options.minutes} min at ${options.rate} msgs/s over ${options.users} users against ${url}; sampling ${targets.map((t) => `${t.name} (${t.pid})`).join(', ')} every ${options.sampleSeconds} s`,
  );
  const result = await runSoak({ ...options, url }, targets, progress, () => interrupted);
  await cleanup();
  console.log(`\n${formatReport(result).join('\n')}`);
  const json = resolve(options.json);
  await mkdir(dirname(json), { recursive: true });
  await writeFile(json, `${JSON.stringify({ ...result, interrupted }, null, 2)}\n`);
  console.log(`result: ${json}`);
  process.exitCode = interrupted
    ? 130
    : result.verdict === 'growing' || result.messages.lost > 0 || result.gone.length > 0
      ? 1
      : 0;
} catch (err) {
  progress(`[soak] error: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
