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
  /**
   * Called when the set of waiting tasks changed: one was submitted and could not start, waiting
   * ones started, or were dropped. Not called for a task that starts at once, so a scheduler with
   * free slots pays nothing for it. Read the set with `waiting()`.
   */
  onWaitingChange?: () => void;
}

export interface LaneTask<T = unknown> {
  /** Tasks of one lane run one after another, in submission order. */
  lane: string;
  /** Groups tasks for `cancelQueued` (the partition they came from). */
  tag: string;
  run: () => Promise<void>;
  /** What `waiting()` reports for this task (the message it handles). */
  item?: T;
}

export interface LaneScheduler<T = unknown> {
  /** Tasks running now. */
  readonly running: number;
  /** Tasks accepted and not yet running. */
  readonly queued: number;
  /** Another task may be submitted without exceeding `concurrency + maxQueued`. */
  hasRoom(): boolean;
  /** Resolves once `hasRoom()` is true or the scheduler stopped. */
  room(): Promise<void>;
  /** Accepts a task (the caller checked `hasRoom()`); starts it when its lane and a slot are free. */
  submit(task: LaneTask<T>): void;
  /**
   * The items of the tasks accepted and not started, oldest first (submission order). O(n log n) in
   * the tasks waiting, which `maxQueued` bounds; meant for an occasional look, not for every task.
   */
  waiting(): T[];
  /** Drops queued tasks with a matching tag; they never run. Running ones are not affected. */
  cancelQueued(match: (tag: string) => boolean): number;
  /** Drops every queued task and refuses new ones; running tasks finish. Idempotent. */
  stop(): void;
  /** Resolves once no task is running and none is queued. */
  idle(): Promise<void>;
}

/** A lane whose oldest queued task may start, keyed by that task's submission number. */
interface ReadyLane {
  seq: number;
  lane: string;
}

/** Binary min-heap of ready lanes by `seq`: the oldest startable task first, in O(log n). */
function createReadyHeap() {
  const heap: ReadyLane[] = [];
  const less = (i: number, j: number) => (heap[i]?.seq ?? 0) < (heap[j]?.seq ?? 0);
  const swap = (i: number, j: number) => {
    const t = heap[i] as ReadyLane;
    heap[i] = heap[j] as ReadyLane;
    heap[j] = t;
  };
  return {
    get size() {
      return heap.length;
    },
    push(entry: ReadyLane): void {
      heap.push(entry);
      for (let i = heap.length - 1; i > 0;) {
        const parent = (i - 1) >> 1;
        if (!less(i, parent)) break;
        swap(i, parent);
        i = parent;
      }
    },
    pop(): ReadyLane | undefined {
      const top = heap[0];
      const last = heap.pop();
      if (heap.length > 0 && last) {
        heap[0] = last;
        for (let i = 0; ;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < heap.length && less(l, m)) m = l;
          if (r < heap.length && less(r, m)) m = r;
          if (m === i) break;
          swap(i, m);
          i = m;
        }
      }
      return top;
    },
    clear(): void {
      heap.length = 0;
    },
  };
}

interface Queued<T> extends LaneTask<T> {
  seq: number;
}

/**
 * Each lane keeps its own FIFO of waiting tasks; a heap holds the lanes that are free and have
 * one, by the age of that task. Starting or finishing a task costs O(log lanes), whatever the
 * number running: the consumer runs thousands of generations at once, and an earlier version that
 * walked the whole queue (copying the set of busy lanes) on every finish showed up in profiles.
 */
export function createLaneScheduler<T = unknown>(options: LaneSchedulerOptions): LaneScheduler<T> {
  const { concurrency, maxQueued } = options;
  /** Accepted, not started, per lane in submission order. */
  const waiting = new Map<string, Queued<T>[]>();
  const ready = createReadyHeap();
  /** Lanes with a task running. */
  const busy = new Set<string>();
  let queued = 0;
  let nextSeq = 0;
  let running = 0;
  let stopped = false;
  let roomWaiters: Array<() => void> = [];
  let idleWaiters: Array<() => void> = [];

  const hasRoom = () => !stopped && running + queued < concurrency + maxQueued;

  function notify(): void {
    if (hasRoom() || stopped) {
      const waiters = roomWaiters;
      roomWaiters = [];
      for (const resolve of waiters) resolve();
    }
    if (running === 0 && queued === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
    options.onChange?.();
  }

  /** Marks a free lane with waiting tasks as ready, keyed by its oldest task. */
  function offer(lane: string): void {
    const head = waiting.get(lane)?.[0];
    if (head && !busy.has(lane)) ready.push({ seq: head.seq, lane });
  }

  /** Starts the oldest tasks whose lane is free, while slots are free; returns how many started. */
  function dispatch(): number {
    const starting: LaneTask<T>[] = [];
    while (running < concurrency && ready.size > 0) {
      const entry = ready.pop() as ReadyLane;
      const tasks = waiting.get(entry.lane);
      // Stale: the lane started that task already, or it was cancelled.
      if (!tasks || tasks[0]?.seq !== entry.seq || busy.has(entry.lane)) continue;
      const task = tasks.shift() as Queued<T>;
      if (tasks.length === 0) waiting.delete(entry.lane);
      queued--;
      running++;
      busy.add(entry.lane);
      starting.push(task);
    }
    // State is consistent before any task runs, so a task that submits synchronously is safe.
    for (const task of starting) launch(task);
    return starting.length;
  }

  function launch(task: LaneTask<T>): void {
    const settle = () => {
      running--;
      busy.delete(task.lane);
      offer(task.lane);
      // Every task started here had waited.
      if (dispatch() > 0) options.onWaitingChange?.();
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
      return queued;
    },
    hasRoom,
    room() {
      if (hasRoom() || stopped) return Promise.resolve();
      return new Promise<void>((resolve) => roomWaiters.push(resolve));
    },
    submit(task) {
      if (stopped) return;
      const entry: Queued<T> = { ...task, seq: nextSeq++ };
      const tasks = waiting.get(task.lane);
      if (tasks) tasks.push(entry);
      else {
        waiting.set(task.lane, [entry]);
        offer(task.lane);
      }
      const before = queued++;
      dispatch();
      // Only this task can have started (every other waiting one was blocked before it came).
      if (queued > before) options.onWaitingChange?.();
    },
    waiting() {
      const all: Queued<T>[] = [];
      for (const tasks of waiting.values()) all.push(...tasks);
      all.sort((a, b) => a.seq - b.seq);
      const items: T[] = [];
      for (const task of all) if (task.item !== undefined) items.push(task.item);
      return items;
    },
    cancelQueued(match) {
      let dropped = 0;
      for (const [lane, tasks] of waiting) {
        const kept = tasks.filter((t) => !match(t.tag));
        dropped += tasks.length - kept.length;
        if (kept.length === tasks.length) continue;
        if (kept.length === 0) waiting.delete(lane);
        else {
          waiting.set(lane, kept);
          offer(lane);
        }
      }
      queued -= dropped;
      if (dropped > 0) {
        dispatch();
        options.onWaitingChange?.();
        notify();
      }
      return dropped;
    },
    stop() {
      stopped = true;
      const dropped = queued;
      waiting.clear();
      ready.clear();
      queued = 0;
      if (dropped > 0) options.onWaitingChange?.();
      notify();
    },
    idle() {
      if (running === 0 && queued === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
