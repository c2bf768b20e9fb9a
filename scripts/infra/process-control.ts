import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InfraError } from './errors.js';

export interface RunResult {
  code: number | null;
  /** stdout and stderr interleaved. */
  output: string;
}

/** Runs a command to completion, capturing its output; `onLine` sees each line as it arrives. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; onLine?: (line: string) => void } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let pending = '';
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      output += text;
      if (!options.onLine) return;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) options.onLine(line);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (error) =>
      reject(new InfraError(`cannot run ${command}: ${error.message}`, undefined, { cause: error })),
    );
    child.once('close', (code) => resolvePromise({ code, output }));
  });
}

/** Like `run`, but a non-zero exit becomes an `InfraError` carrying the tail of the output. */
export async function runChecked(
  what: string,
  command: string,
  args: readonly string[],
  options: Parameters<typeof run>[2] = {},
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new InfraError(`${what} failed (exit code ${result.code})`, lastLines(result.output, 30));
  }
  return result.output;
}

export function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

export async function tailFile(path: string, count = 20): Promise<string> {
  try {
    return lastLines(await readFile(path, 'utf8'), count);
  } catch {
    return `(no log at ${path})`;
  }
}

export interface DetachedProcess {
  pid: number;
  /** Settles when the process exits while this node process still watches it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts a process in its own session, output appended to `logFile`, so it outlives this
 * node process (the harness stops it later by pid).
 */
export async function spawnDetached(spec: {
  command: string;
  args: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
}): Promise<DetachedProcess> {
  await mkdir(dirname(spec.logFile), { recursive: true });
  const fd = openSync(spec.logFile, 'a');
  try {
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    await new Promise<void>((resolvePromise, reject) => {
      child.once('spawn', resolvePromise);
      child.once('error', (error) =>
        reject(new InfraError(`cannot start ${spec.command}: ${error.message}`, undefined, { cause: error })),
      );
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolvePromise) => {
      child.once('exit', (code, signal) => resolvePromise({ code, signal }));
    });
    child.unref();
    if (child.pid === undefined) throw new InfraError(`cannot start ${spec.command}: no pid`);
    return { pid: child.pid, exited };
  } finally {
    closeSync(fd);
  }
}

/** True while `pid` names a process that has not exited (a zombie counts as exited). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself hold spaces.
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') return true;
    // A zombie leader whose other threads (a JVM's) are still exiting still holds its sockets.
    return (await readdir(`/proc/${pid}/task`)).length > 1;
  } catch {
    // No procfs (or the process just went away): trust kill(0), unless it vanished meanwhile.
    return process.platform !== 'linux';
  }
}

/**
 * True when `pid` is alive and its command line contains `marker`, so a pid recycled by an
 * unrelated process is never mistaken for a service (and never signalled).
 */
export async function isOurProcess(pid: number, marker: string): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.replaceAll('\0', ' ').includes(marker);
  } catch {
    return process.platform !== 'linux';
  }
}

export async function readPidFile(path: string): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : null;
}

export async function writeFileAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, content);
  await rename(temp, path);
}

export async function removeFiles(...paths: string[]): Promise<void> {
  await Promise.all(paths.map((path) => rm(path, { force: true })));
}

/**
 * Sends `signal` to `pid`, waits up to `timeoutMs` for it to exit, then SIGKILLs its process
 * group (children such as nginx workers go with it). Returns how it ended.
 */
export async function stopPid(
  pid: number,
  options: { signal: 'SIGTERM' | 'SIGKILL'; timeoutMs: number },
): Promise<'exited' | 'killed'> {
  // A simulated crash takes the whole group, as a real one would: an nginx master killed alone
  // leaves its workers holding the port. Detached processes lead their own group, so -pid
  // reaches their children too.
  if (options.signal === 'SIGTERM' || !signalQuietly(-pid, 'SIGKILL')) signalQuietly(pid, options.signal);
  if (await waitUntil(async () => !(await isAlive(pid)), options.timeoutMs)) {
    return options.signal === 'SIGKILL' ? 'killed' : 'exited';
  }
  if (!signalQuietly(-pid, 'SIGKILL')) signalQuietly(pid, 'SIGKILL');
  if (await waitUntil(async () => !(await isAlive(pid)), 5_000)) return 'killed';
  throw new InfraError(`process ${pid} did not exit after SIGKILL`);
}

function signalQuietly(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Polls `condition` until it holds (true) or `timeoutMs` passes (false). */
export async function waitUntil(
  condition: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (performance.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** True when nothing listens on 127.0.0.1:`port` (we can bind it ourselves). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once('error', () => resolvePromise(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      server.close(() => resolvePromise(true));
    });
  });
}

/**
 * Runs `fn` while holding an exclusive lock file, so two starts of the same service (say a test
 * run and `npm run stack`) do not race. A lock left by a dead process is taken over.
 */
export async function withLock<T>(lockFile: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(lockFile), { recursive: true });
  // link() is atomic and fails if the lock exists, so the lock never appears without its pid.
  const candidate = `${lockFile}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(candidate, String(process.pid));
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await link(candidate, lockFile);
      await rm(candidate, { force: true });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        await rm(candidate, { force: true });
        throw error;
      }
      const holder = await readPidFile(lockFile);
      if (holder === null || !(await isAlive(holder))) {
        await rm(lockFile, { force: true });
        continue;
      }
      if (performance.now() >= deadline) {
        await rm(candidate, { force: true });
        throw new InfraError(`timed out waiting for ${lockFile} (held by pid ${holder})`);
      }
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockFile, { force: true });
  }
}
