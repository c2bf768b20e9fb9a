import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Environment the harness reads; callers may pass an overlay on top of `process.env`. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The repository root (this file lives in `<repo>/scripts/infra/`). */
export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

export interface InfraPaths {
  /** Everything a run writes: data, logs, pid files. `RELAY_WORK_DIR`, @default `<repo>/.work` */
  workDir: string;
  /** Pid, state and lock files. */
  runDir: string;
  /** One log file per service (stdout and stderr of the process). */
  logDir: string;
  /** Downloads kept across work dirs (Kafka jars). `RELAY_CACHE_DIR`, @default `~/.cache/ai-relay` */
  cacheDir: string;
}

function absolute(path: string): string {
  return isAbsolute(path) ? path : resolve(repoRoot, path);
}

export function infraPaths(env: Env): InfraPaths {
  const workDir = env.RELAY_WORK_DIR ? absolute(env.RELAY_WORK_DIR) : join(repoRoot, '.work');
  const cacheHome = env.XDG_CACHE_HOME ? absolute(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  const cacheDir = env.RELAY_CACHE_DIR ? absolute(env.RELAY_CACHE_DIR) : join(cacheHome, 'ai-relay');
  return { workDir, runDir: join(workDir, 'run'), logDir: join(workDir, 'logs'), cacheDir };
}

/** Files the harness keeps for one service under the work dir. */
export interface ServiceFiles {
  /** Data and generated config of the service. */
  dataDir: string;
  /** Holds only the pid of the process the harness started; stopping goes by this pid. */
  pidFile: string;
  /** JSON with the ports the running process was started on. */
  stateFile: string;
  /** Serialises concurrent starts and stops of the same service. */
  lockFile: string;
  logFile: string;
}

export function serviceFiles(paths: InfraPaths, name: string): ServiceFiles {
  return {
    dataDir: join(paths.workDir, name),
    pidFile: join(paths.runDir, `${name}.pid`),
    stateFile: join(paths.runDir, `${name}.json`),
    lockFile: join(paths.runDir, `${name}.lock`),
    logFile: join(paths.logDir, `${name}.log`),
  };
}
