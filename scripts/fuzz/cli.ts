/**
 * npm run fuzz -- [--cases 100000] [--seed S] [--index I] [--workers 4] [--url http://127.0.0.1:8080]
 *   [--time-limit-s 3600] [--probe-every 1] [--progress-every 1000] [--log .work/fuzz/server.log]
 *   [--max-payload-bytes 65536] [--max-content-length 4000] [--json summary.json]
 *   [--server-env NAME=VALUE]...
 *
 * Fuzzes the real gateway over real sockets (see scripts/fuzz/fuzz.ts): by default it starts the
 * embedded app (`npm start`) as a child process on a free port in 45000-46000 and stops it by PID
 * at the end; with --url it fuzzes a server already running. Exits 1 when a crash or a violation
 * was found, 2 on bad arguments or when the run itself failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatSummary, runFuzz } from './fuzz.js';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    index: { type: 'string' },
    workers: { type: 'string', default: '4' },
    url: { type: 'string' },
    'time-limit-s': { type: 'string', default: '3600' },
    'probe-every': { type: 'string', default: '1' },
    'progress-every': { type: 'string', default: '1000' },
    log: { type: 'string' },
    'max-payload-bytes': { type: 'string' },
    'max-content-length': { type: 'string' },
    'max-shrink-runs': { type: 'string', default: '60' },
    json: { type: 'string' },
    // Overrides the started server's environment, e.g. MEMORY_STORE_MAX_KEYS=100000.
    'server-env': { type: 'string', multiple: true },
  },
});

function positive(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`fuzz: --${name} must be a whole number (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return n;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const logFile = resolve(values.log ?? `${root}/.work/fuzz/server-${Date.now()}.log`);
mkdirSync(dirname(logFile), { recursive: true });
const seed = positive('seed', values.seed) ?? Date.now() >>> 0;
const maxPayloadBytes = positive('max-payload-bytes', values['max-payload-bytes']);
const maxContentLength = positive('max-content-length', values['max-content-length']);
const serverEnv: Record<string, string> = {};
for (const pair of values['server-env'] ?? []) {
  const at = pair.indexOf('=');
  if (at <= 0) {
    console.error(`fuzz: --server-env takes NAME=VALUE (got ${JSON.stringify(pair)})`);
    process.exit(2);
  }
  serverEnv[pair.slice(0, at)] = pair.slice(at + 1);
}

// Ctrl-C stops after the current case and still stops the server; a second one exits at once,
// killing the server child by its PID first.
const abort = new AbortController();
let serverPid: number | undefined;
const killServer = () => {
  if (serverPid === undefined) return;
  try {
    process.kill(serverPid, 'SIGKILL');
  } catch {
    // Already gone.
  }
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (abort.signal.aborted) {
      killServer();
      process.exit(130);
    }
    process.stderr.write(`[fuzz] ${signal}: stopping after the current case\n`);
    abort.abort();
  });
}
process.on('exit', killServer);

const summary = await runFuzz({
  signal: abort.signal,
  onServer: (pid) => (serverPid = pid),
  cases: positive('cases', values.cases) ?? 100_000,
  seed,
  index: positive('index', values.index),
  workers: positive('workers', values.workers),
  url: values.url,
  cwd: root,
  env: process.env,
  serverEnv,
  logFile,
  timeLimitMs: (positive('time-limit-s', values['time-limit-s']) ?? 3600) * 1000,
  probeEvery: positive('probe-every', values['probe-every']),
  progressEvery: positive('progress-every', values['progress-every']),
  maxShrinkRuns: positive('max-shrink-runs', values['max-shrink-runs']),
  maxShrinkMs: 60_000,
  limits: {
    // Large enough for nesting tens of thousands deep inside the limit (the default is 16 KiB).
    maxPayloadBytes: maxPayloadBytes ?? (values.url ? undefined : 65_536),
    ...(maxContentLength !== undefined && { maxContentLength }),
  },
  log: (line) => process.stderr.write(`${line}\n`),
});
console.log(formatSummary(summary));
if (values.json) writeFileSync(values.json, JSON.stringify(summary, null, 2));
// Exit now: a case cut off by its timeout may still hold a socket open, which must not keep the
// process up after the summary (the server was already stopped by PID).
process.exit(summary.fatal ? 2 : summary.crashes.length + summary.violations.length > 0 ? 1 : 0);
