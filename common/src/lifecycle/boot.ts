import type { Logger } from 'pino';
import type { z } from 'zod';
import type { ConfigFragment, ConfigOf, Env } from '../config/parse.js';
import { loadConfigOrFail } from '../config/parse.js';
import { createLogger } from '../logging/logger.js';
import { createMetrics, type Metrics } from '../metrics/metrics.js';
import { createShutdown, type Shutdown } from './shutdown.js';

/** The parts of `process` a service entry point hands over; passed in so only main.ts names `process`. */
export interface ProcessHandle {
  env: Env;
  exit(code: number): never;
  stderr: { write(text: string): unknown };
  on(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
}

type AnyFragment = ConfigFragment<z.ZodRawShape, unknown>;
type BootFragments = Record<string, AnyFragment> & {
  http: ConfigFragment<z.ZodRawShape, { appName: string; serverId: string; shutdownTimeoutMs: number }>;
  log: ConfigFragment<z.ZodRawShape, { level: string }>;
};

export interface Booted<F extends Record<string, AnyFragment>> {
  config: ConfigOf<F>;
  logger: Logger;
  metrics: Metrics;
  shutdown: Shutdown;
}

/**
 * The start of every service: config parsed once (a bad value ends the process with one line),
 * the root logger, the metrics registry, and one shutdown handler wired to SIGTERM/SIGINT.
 */
export function bootService<F extends BootFragments>(
  proc: ProcessHandle,
  service: string,
  fragments: F,
): Booted<F> {
  const config = loadConfigOrFail(fragments, proc.env, (line) => {
    proc.stderr.write(`${line}\n`);
    return proc.exit(1);
  });
  const http = config.http as ReturnType<F['http']['build']>;
  const logger = createLogger({
    service: http.appName,
    instance: http.serverId,
    level: (config.log as ReturnType<F['log']['build']>).level,
  });
  const metrics = createMetrics({ service, instance: http.serverId });
  const shutdown = createShutdown({
    logger,
    deadlineMs: http.shutdownTimeoutMs,
    exit: (code) => proc.exit(code),
  });
  proc.on('SIGTERM', () => shutdown.onSignal('SIGTERM'));
  proc.on('SIGINT', () => shutdown.onSignal('SIGINT'));
  return { config, logger, metrics, shutdown };
}
