import type { Logger } from 'pino';
import { flushLogs } from '../logging/logger.js';

export interface ShutdownOptions {
  logger: Logger;
  /** Hard deadline for the whole drain; past it the process exits with code 1. */
  deadlineMs: number;
  /** Ends the process. Injected so only main.ts touches `process`. */
  exit: (code: number) => void;
}

export interface Shutdown {
  /** Registers a resource; resources close in reverse order of registration (last started, first closed). */
  add(name: string, close: () => unknown): void;
  /** Starts the drain (idempotent); resolves when every resource is closed. */
  shutdown(reason: string, exitCode?: number): Promise<void>;
  /** For SIGTERM/SIGINT: the first signal drains, a second one exits at once. */
  onSignal(signal: string): void;
  readonly draining: boolean;
}

/** One shutdown handler per process: reverse-order close, hard deadline, second signal exits. */
export function createShutdown(options: ShutdownOptions): Shutdown {
  const { logger, deadlineMs, exit } = options;
  const resources: Array<{ name: string; close: () => unknown }> = [];
  let running: Promise<void> | undefined;

  async function drain(reason: string, exitCode: number): Promise<void> {
    const started = Date.now();
    logger.info({ reason, resources: resources.length }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ deadline_ms: deadlineMs }, 'shutdown deadline exceeded, exiting');
      exit(1);
    }, deadlineMs);
    timer.unref();
    let failed = false;
    for (const { name, close } of [...resources].reverse()) {
      try {
        await close();
      } catch (err) {
        failed = true;
        logger.error({ err, resource: name }, 'close failed');
      }
    }
    clearTimeout(timer);
    const code = failed && exitCode === 0 ? 1 : exitCode;
    logger.info({ duration_ms: Date.now() - started, exit_code: code }, 'shutdown complete');
    // Every line written, in order, before the process goes.
    await flushLogs(logger);
    exit(code);
  }

  return {
    add(name, close) {
      resources.push({ name, close });
    },
    shutdown(reason, exitCode = 0) {
      return (running ??= drain(reason, exitCode));
    },
    onSignal(signal) {
      if (running) {
        logger.warn({ signal }, 'second signal, exiting now');
        exit(130);
        return;
      }
      void this.shutdown(signal);
    },
    get draining() {
      return running !== undefined;
    },
  };
}
