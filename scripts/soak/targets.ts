/**
 * Which processes a soak watches, and their resident memory: the process listening on the target
 * URL's port, explicit pids, or every service of the local stack (`npm run stack -- status --json`).
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { z } from 'zod';
import { run } from '../infra/process-control.js';
import { repoRoot } from '../infra/paths.js';
import { rssBytes } from '../bench/proc-stats.js';

export interface TargetProcess {
  name: string;
  pid: number;
}

/** Socket inodes listening on `port` (any address), from /proc/net/tcp and tcp6. */
async function listeningInodes(port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      // st 0A is LISTEN; field 9 is the socket's inode.
      if (!local || fields[3] !== '0A') continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && fields[9]) {
        inodes.add(fields[9]);
      }
    }
  }
  return inodes;
}

/**
 * Pids of the processes listening on TCP `port` on this machine (several when they share it with
 * SO_REUSEPORT, as uWS does), ascending; empty when nothing listens or we cannot read their fds.
 */
export async function listeningPids(port: number): Promise<number[]> {
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return [];
  const wanted = new Set([...inodes].map((inode) => `socket:[${inode}]`));
  const found: number[] = [];
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (wanted.has(target)) {
        found.push(Number(pid));
        break;
      }
    }
  }
  return found.sort((a, b) => a - b);
}

/** The single process listening on `port`, or undefined (none, or several: say which with --pid). */
export async function listeningPid(port: number): Promise<number | undefined> {
  const pids = await listeningPids(port);
  return pids.length === 1 ? pids[0] : undefined;
}

/** The process group of `pid` (field 5 of /proc/<pid>/stat), or undefined when it is gone. */
export async function processGroup(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // After the parenthesised command name: state ppid pgrp …
  const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  return Number.isInteger(pgrp) ? pgrp : undefined;
}

const stackStatusSchema = z.array(
  z.object({ name: z.string(), pid: z.number().int().nullable(), port: z.number(), healthy: z.boolean() }),
);

/** Every running service of the local stack, as `npm run stack -- status --json` reports them. */
export async function stackTargets(env: NodeJS.ProcessEnv = process.env): Promise<TargetProcess[]> {
  const result = await run('npm', ['run', '--silent', 'stack', '--', 'status', '--json'], {
    cwd: repoRoot,
    env,
  });
  const line = result.output
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith('['));
  let json: unknown;
  try {
    json = line === undefined ? undefined : JSON.parse(line);
  } catch {
    json = undefined;
  }
  const parsed = stackStatusSchema.safeParse(json);
  if (result.code !== 0 || !parsed.success) {
    throw new Error(`npm run stack -- status --json failed (exit ${result.code}): ${result.output.trim()}`);
  }
  const running = parsed.data.filter((s): s is typeof s & { pid: number } => s.pid !== null);
  if (running.length === 0) throw new Error('the local stack is not running (npm run stack -- up)');
  return running.map((s) => ({ name: s.name, pid: s.pid }));
}

/** RSS in bytes per target name; a process that is gone reads as 0 (and the caller says so). */
export async function sampleRss(targets: readonly TargetProcess[]): Promise<Record<string, number>> {
  const values = await Promise.all(targets.map((t) => rssBytes(t.pid).catch(() => 0)));
  return Object.fromEntries(targets.map((t, i) => [t.name, values[i] ?? 0]));
}
