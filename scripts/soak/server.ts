/**
 * The `npm start` a soak runs against when it is given no URL: started in its own process group,
 * output to a log file, stopped by pid (SIGTERM to the app, which drains; SIGKILL to the group if it
 * has not exited within the deadline).
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isAlive, isPortFree, waitUntil } from '../infra/process-control.js';
import { listeningPids, processGroup } from './targets.js';

export interface StartedServer {
  url: string;
  port: number;
  /** The npm process this module spawned (leader of the process group). */
  npmPid: number;
  /** The app itself (the node process listening on the port): the one whose RSS counts. */
  appPid: number;
  /** SIGTERM to the app, then SIGKILL to the group after `timeoutMs`. Idempotent. */
  stop(timeoutMs?: number): Promise<'exited' | 'killed'>;
}

const START_LINE = /ai-relay \(embedded\) on http/;

export async function startEmbedded(opts: {
  cwd: string;
  env: NodeJS.ProcessEnv;
  port: number;
  logFile: string;
  timeoutMs?: number;
}): Promise<StartedServer> {
  // uWS listens with SO_REUSEPORT: on a port in use it would share it with whatever holds it, and
  // the soak would load and sample (and stop) that too.
  if (opts.port !== 0 && !(await isPortFree(opts.port))) throw new Error(`port ${opts.port} is in use`);
  await mkdir(dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const child = spawn('npm', ['start'], {
    cwd: opts.cwd,
    env: { ...opts.env, PORT: String(opts.port) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let port: number | undefined;
  let pending = '';
  child.stdout.on('data', (chunk: Buffer) => {
    log.write(chunk);
    if (port !== undefined) return;
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!START_LINE.test(line)) continue;
      try {
        port = Number((JSON.parse(line) as { port?: unknown }).port);
      } catch {
        port = Number(/localhost:(\d+)/.exec(line)?.[1]);
      }
    }
  });
  child.stderr.on('data', (chunk: Buffer) => log.write(chunk));
  const npmPid = child.pid;
  if (npmPid === undefined) throw new Error('cannot start npm start: no pid');

  let stopping: Promise<'exited' | 'killed'> | undefined;
  let appPid: number | undefined;
  /** Only a process still in the group this module started is ever signalled (pids get reused). */
  const ours = async (pid: number) => (await processGroup(pid)) === npmPid;
  const stop = (timeoutMs = 20_000) =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // The app drains on SIGTERM; npm and tsx above it exit with it.
        signal(appPid !== undefined && (await ours(appPid)) ? appPid : npmPid, 'SIGTERM');
        const done = await Promise.race([
          exited.then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref()),
        ]);
        if (!done) {
          signal(-npmPid, 'SIGKILL');
          await exited;
        }
        // Whatever else the group held (tsx's child outliving npm) goes too.
        if (appPid !== undefined && (await isAlive(appPid)) && (await ours(appPid)))
          signal(-npmPid, 'SIGKILL');
        log.end();
        return done ? 'exited' : 'killed';
      }
      log.end();
      return 'exited';
    })());

  const timeoutMs = opts.timeoutMs ?? 60_000;
  const up = await waitUntil(async () => port !== undefined || child.exitCode !== null, timeoutMs, 100);
  if (!up || port === undefined || !Number.isFinite(port)) {
    const exitCode = child.exitCode;
    await stop(5_000);
    throw new Error(
      exitCode !== null
        ? `npm start exited with code ${exitCode} before it listened (log: ${opts.logFile})`
        : `npm start did not come up within ${timeoutMs} ms (log: ${opts.logFile})`,
    );
  }
  const listening = port;
  // The listener of our own process group: the app under npm and tsx.
  const ownListener = async () => {
    for (const pid of await listeningPids(listening)) if (await ours(pid)) return pid;
    return undefined;
  };
  if (!(await waitUntil(async () => (appPid = await ownListener()) !== undefined, 10_000))) {
    await stop(5_000);
    throw new Error(`no process listens on port ${listening} after npm start`);
  }
  return { url: `http://127.0.0.1:${listening}`, port: listening, npmPid, appPid: appPid as number, stop };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
