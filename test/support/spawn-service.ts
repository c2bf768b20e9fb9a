import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from '@relay/common/testing';

export interface SpawnedService {
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts a TypeScript entry point the way `npm start` does (tsx, source condition), collecting its JSON logs. */
export function spawnEntry(entry: string, env: Record<string, string>): SpawnedService {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', entry], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let buffer = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    logs,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Waits for a log line whose `msg` matches and returns it. */
export function waitForLog(
  service: SpawnedService,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  return waitFor(() => service.logs.find((l) => pattern.test(String(l.msg))), {
    timeoutMs,
    message: `log ${pattern}`,
  });
}
