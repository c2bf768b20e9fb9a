/**
 * Runs message handlers with a bound on how many run at once, one at a time per lane, in
 * submission order within a lane. A lane is what must stay ordered: a partition, or a key within a
 * partition (SPEC: one user's messages in order). Tasks wait in a bounded queue for their lane's
 * turn or a free slot, so the fetch loop can walk past one busy user to reach the others.
 */

export interface LaneSchedulerOptions {
  /** Tasks running at once. */
  concurrency: number;
  /** Tasks accepted but not yet running; `hasRoom()` is false beyond it. */
  maxQueued: number;
  /** A task's `run` rejected: a bug in the caller, which is meant to handle its own errors. */
  onTaskError: (error: unknown) => void;
  /** Called after a task finished or queued tasks were dropped (room may have appeared). */
  onChange?: () => void;
}

export interface LaneTask {
  /** Tasks of one lane run one after another, in submission order. */
  lane: string;
  /** Groups tasks for `cancelQueued` (the partition they came from). */
  tag: string;
  run: () => Promise<void>;
}

export interface LaneScheduler {
  /** Tasks running now. */
  readonly running: number;
  /** Tasks accepted and not yet running. */
  readonly queued: number;
  /** Another task may be submitted without exceeding `concurrency + maxQueued`. */
  hasRoom(): boolean;
  /** Resolves once `hasRoom()` is true or the scheduler stopped. */
  room(): Promise<void>;
  /** Accepts a task (the caller checked `hasRoom()`); starts it when its lane and a slot are free. */
  submit(task: LaneTask): void;
  /** Drops queued tasks with a matching tag; they never run. Running ones are not affected. */
  cancelQueued(match: (tag: string) => boolean): number;
  /** Drops every queued task and refuses new ones; running tasks finish. Idempotent. */
  stop(): void;
  /** Resolves once no task is running and none is queued. */
  idle(): Promise<void>;
}

export function createLaneScheduler(options: LaneSchedulerOptions): LaneScheduler {
  const { concurrency, maxQueued } = options;
  /** Accepted, not started, in submission order. */
  let queue: LaneTask[] = [];
  /** Lanes with a task running. */
  const busy = new Set<string>();
  let running = 0;
  let stopped = false;
  let roomWaiters: Array<() => void> = [];
  let idleWaiters: Array<() => void> = [];

  const hasRoom = () => !stopped && running + queue.length < concurrency + maxQueued;

  function notify(): void {
    if (hasRoom() || stopped) {
      const waiters = roomWaiters;
      roomWaiters = [];
      for (const resolve of waiters) resolve();
    }
    if (running === 0 && queue.length === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
    options.onChange?.();
  }

  /** Starts queued tasks whose lane is free, oldest first, while slots are free. */
  function dispatch(): void {
    if (running >= concurrency || queue.length === 0) return;
    // A lane's first queued task is its oldest; later ones of the same lane must wait for it even
    // when the lane is free now (they would overtake it otherwise).
    const blocked = new Set(busy);
    const remaining: LaneTask[] = [];
    const starting: LaneTask[] = [];
    for (const task of queue) {
      if (running < concurrency && !blocked.has(task.lane)) {
        running++;
        busy.add(task.lane);
        starting.push(task);
      } else {
        remaining.push(task);
      }
      blocked.add(task.lane);
    }
    queue = remaining;
    // State is consistent before any task runs, so a task that submits synchronously is safe.
    for (const task of starting) launch(task);
  }

  function launch(task: LaneTask): void {
    const settle = () => {
      running--;
      busy.delete(task.lane);
      dispatch();
      notify();
    };
    let promise: Promise<void>;
    try {
      promise = task.run();
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(settle, (err: unknown) => {
      settle();
      options.onTaskError(err);
    });
  }

  return {
    get running() {
      return running;
    },
    get queued() {
      return queue.length;
    },
    hasRoom,
    room() {
      if (hasRoom() || stopped) return Promise.resolve();
      return new Promise<void>((resolve) => roomWaiters.push(resolve));
    },
    submit(task) {
      if (stopped) return;
      queue.push(task);
      dispatch();
    },
    cancelQueued(match) {
      const before = queue.length;
      queue = queue.filter((t) => !match(t.tag));
      const dropped = before - queue.length;
      if (dropped > 0) {
        dispatch();
        notify();
      }
      return dropped;
    },
    stop() {
      stopped = true;
      queue = [];
      notify();
    },
    idle() {
      if (running === 0 && queue.length === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
