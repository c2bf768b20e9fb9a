import { errorReason, failing, OK, type DependencyCheck } from './checks.js';

export interface DependencyWatchOptions {
  /** Resolves when the dependency answers (a Redis PING); rejects, with why, when it does not. */
  check: () => Promise<unknown>;
  /** Pause between the end of one check and the start of the next. @default 2000 */
  intervalMs?: number;
  /** A check still pending after this long counts as failing (its late answer is ignored). @default 1500 */
  timeoutMs?: number;
}

export interface DependencyWatch {
  /** Runs the first check and awaits it, then keeps checking every `intervalMs` until `close()`. */
  start(): Promise<void>;
  /** The outcome of the last finished check; failing ("not checked yet") before the first. */
  readonly current: DependencyCheck;
  /** Stops checking. Idempotent. */
  close(): void;
}

/**
 * Keeps the state of a dependency that is otherwise only found out on use: a gateway or relay with
 * no traffic would say Redis is fine long after it went away. One check runs at a time (a slow
 * Redis does not pile up PINGs: one that timed out is waited for before the next); `/ready` reads
 * the last outcome without waiting.
 */
export function createDependencyWatch(options: DependencyWatchOptions): DependencyWatch {
  const intervalMs = options.intervalMs ?? 2000;
  const timeoutMs = options.timeoutMs ?? 1500;
  let current: DependencyCheck = failing('not checked yet');
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  /** The last check, settled or not: a check that timed out is still waited for before the next. */
  let settled: Promise<unknown> = Promise.resolve();

  async function checkOnce(): Promise<void> {
    let timeout: NodeJS.Timeout | undefined;
    const timedOut = new Promise<DependencyCheck>((resolve) => {
      timeout = setTimeout(() => resolve(failing(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const answered = options.check().then(
      (): DependencyCheck => OK,
      (err: unknown) => failing(errorReason(err)),
    );
    settled = answered;
    const outcome = await Promise.race([answered, timedOut]);
    clearTimeout(timeout);
    if (!closed) current = outcome;
  }

  function schedule(): void {
    if (closed) return;
    timer = setTimeout(() => void settled.then(checkOnce).finally(schedule), intervalMs);
    timer.unref();
  }

  return {
    async start() {
      await checkOnce();
      schedule();
    },
    get current() {
      return current;
    },
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
