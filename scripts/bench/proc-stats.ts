/**
 * CPU time and memory of running processes, read from /proc (Linux): the benchmark sums CPU over
 * every process of each service (its process group: the harness starts each service detached, so
 * nginx's workers or Kafka's JVM under its start script are counted with their service).
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';

/** Clock ticks per second of /proc's utime/stime (USER_HZ), 100 on every common Linux build. */
const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  pid: number;
  pgrp: number;
  /** utime + stime, seconds. */
  cpuSeconds: number;
}

/** Fields of /proc/<pid>/stat after the command name, which may itself hold spaces or parens. */
function parseStat(pid: number, text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // From "state" (field 3) on: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  const fields = text.slice(close + 2).split(' ');
  const pgrp = Number(fields[2]);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (![pgrp, utime, stime].every(Number.isFinite)) return undefined;
  return { pid, pgrp, cpuSeconds: (utime + stime) / TICKS_PER_SECOND };
}

async function allStats(): Promise<ProcStat[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  const stats = await Promise.all(
    pids.map((pid) =>
      readFile(`/proc/${pid}/stat`, 'utf8').then(
        (text) => parseStat(pid, text),
        () => undefined, // gone meanwhile
      ),
    ),
  );
  return stats.filter((s): s is ProcStat => s !== undefined);
}

/**
 * CPU seconds used so far by each named group of process groups: `{ kafka: [pgid] }` →
 * `{ kafka: 12.3 }`. A process that exited is no longer counted, so take samples while the
 * processes run.
 */
export async function cpuSecondsByGroup(groups: Record<string, number[]>): Promise<Record<string, number>> {
  const owner = new Map<number, string>();
  for (const [name, pgids] of Object.entries(groups)) for (const pgid of pgids) owner.set(pgid, name);
  const out: Record<string, number> = Object.fromEntries(Object.keys(groups).map((name) => [name, 0]));
  for (const stat of await allStats()) {
    const name = owner.get(stat.pgrp);
    if (name !== undefined) out[name] = (out[name] ?? 0) + stat.cpuSeconds;
  }
  return out;
}

/** CPU seconds of this process (utime + stime), for the load generator's own share. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** Resident set size of one process, bytes (VmRSS). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

/** The soft limit on open files of a process (RLIMIT_NOFILE): how many sockets it can hold. */
/** RSS of every process in process group `pgid` (nginx: its master and workers), bytes. */
export async function groupRssBytes(pgid: number): Promise<number> {
  const members = (await allStats()).filter((s) => s.pgrp === pgid);
  const sizes = await Promise.all(members.map((m) => rssBytes(m.pid).catch(() => 0)));
  return sizes.reduce((a, b) => a + b, 0);
}

export async function openFileLimit(pid: number): Promise<number> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8');
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

/** CPU model and count, for the report header. */
export async function machineDescription(): Promise<string> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown CPU';
  const cpus = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  return `${cpus} × ${model}, ${(memKb / 1024 / 1024).toFixed(0)} GiB RAM`;
}
