import pLimit from 'p-limit';

export interface WorkScheduler {
  /** Runs `fn` once every earlier task of the same user has settled (one request per user at a time). */
  forUser<T>(userid: string, fn: () => Promise<T>): Promise<T>;
  /** Runs `fn` when fewer than `maxWorkers` limited tasks are running (the model-call cap). */
  limited<T>(fn: () => Promise<T>): Promise<T>;
  /** Limited tasks running now. */
  readonly active: number;
  /** Limited tasks waiting for a slot. */
  readonly pending: number;
  /** Users with a task running or queued. */
  readonly users: number;
}

/**
 * Two gates, nested by the caller: a per-user promise chain around the whole request (history read,
 * model call, history write stay in order for one user), and `p-limit(maxWorkers)` around the model
 * call only, so a user waiting for their previous answer never holds a worker slot.
 */
export function createWorkScheduler(options: { maxWorkers: number }): WorkScheduler {
  const limit = pLimit(options.maxWorkers);
  const tails = new Map<string, Promise<void>>();

  return {
    forUser(userid, fn) {
      const previous = tails.get(userid) ?? Promise.resolve();
      const run = previous.then(fn);
      // The tail only orders the next task; `run` carries this task's outcome to its caller.
      const tail = run.then(
        () => undefined,
        () => undefined,
      );
      tails.set(userid, tail);
      void tail.then(() => {
        if (tails.get(userid) === tail) tails.delete(userid);
      });
      return run;
    },
    limited: (fn) => limit(fn),
    get active() {
      return limit.activeCount;
    },
    get pending() {
      return limit.pendingCount;
    },
    get users() {
      return tails.size;
    },
  };
}
