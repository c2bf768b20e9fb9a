import { describe, expect, it } from 'vitest';
import { createLaneScheduler, type LaneScheduler } from './lane-scheduler.js';
import { waitFor } from '../testing/wait-for.js';

/** A task whose completion the test controls. */
function gate() {
  let open: () => void = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

function harness(concurrency: number, maxQueued: number) {
  const started: string[] = [];
  const gates = new Map<string, ReturnType<typeof gate>>();
  const errors: unknown[] = [];
  const scheduler: LaneScheduler = createLaneScheduler({
    concurrency,
    maxQueued,
    onTaskError: (e) => errors.push(e),
  });
  const submit = (name: string, lane: string, tag = 'p0') => {
    const g = gate();
    gates.set(name, g);
    scheduler.submit({
      lane,
      tag,
      run: async () => {
        started.push(name);
        await g.promise;
      },
    });
  };
  const finish = (name: string) => gates.get(name)?.open();
  return { scheduler, started, submit, finish, errors };
}

describe('lane scheduler', () => {
  it('runs different lanes concurrently up to the limit, one task per lane at a time', async () => {
    const h = harness(2, 10);
    h.submit('a1', 'a');
    h.submit('a2', 'a');
    h.submit('b1', 'b');
    h.submit('c1', 'c');
    expect(h.started).toEqual(['a1', 'b1']);
    expect(h.scheduler.running).toBe(2);
    expect(h.scheduler.queued).toBe(2);
    h.finish('a1');
    // a2 is the oldest task whose lane is free now; c1 waits for a slot.
    await waitFor(() => h.started.length === 3);
    expect(h.started).toEqual(['a1', 'b1', 'a2']);
    h.finish('b1');
    await waitFor(() => h.started.length === 4);
    expect(h.started[3]).toBe('c1');
  });

  it('never lets a later task of a lane overtake an earlier queued one', async () => {
    const h = harness(1, 10);
    h.submit('x', 'x');
    h.submit('a1', 'a');
    h.submit('a2', 'a');
    h.finish('x');
    await waitFor(() => h.started.length === 2);
    expect(h.started).toEqual(['x', 'a1']);
    h.finish('a1');
    await waitFor(() => h.started.length === 3);
    expect(h.started).toEqual(['x', 'a1', 'a2']);
  });

  it('runs a lane again after its queued tasks were cancelled and a new one came', async () => {
    const h = harness(1, 10);
    h.submit('x', 'x');
    h.submit('a1', 'a', 'p1');
    expect(h.scheduler.cancelQueued((tag) => tag === 'p1')).toBe(1);
    h.submit('a2', 'a');
    h.finish('x');
    await waitFor(() => h.started.length === 2);
    expect(h.started).toEqual(['x', 'a2']);
    expect(h.scheduler.queued).toBe(0);
  });

  it('reports room by running + queued against concurrency + maxQueued', async () => {
    const h = harness(1, 1);
    expect(h.scheduler.hasRoom()).toBe(true);
    h.submit('a1', 'a');
    h.submit('a2', 'a');
    expect(h.scheduler.hasRoom()).toBe(false);
    let roomy = false;
    void h.scheduler.room().then(() => (roomy = true));
    h.finish('a1');
    await waitFor(() => roomy);
    expect(h.started).toEqual(['a1', 'a2']);
  });

  it('cancels queued tasks of a tag and leaves running ones alone', async () => {
    const h = harness(1, 10);
    h.submit('p0-a', 'a', 'p0');
    h.submit('p0-b', 'b', 'p0');
    h.submit('p1-c', 'c', 'p1');
    expect(h.scheduler.cancelQueued((tag) => tag === 'p0')).toBe(1);
    h.finish('p0-a');
    await waitFor(() => h.started.length === 2);
    expect(h.started).toEqual(['p0-a', 'p1-c']);
  });

  it('stop drops the queue, refuses new tasks, and idle waits for running ones', async () => {
    const h = harness(1, 10);
    h.submit('a1', 'a');
    h.submit('a2', 'a');
    h.scheduler.stop();
    h.submit('a3', 'a');
    expect(h.scheduler.queued).toBe(0);
    let idle = false;
    void h.scheduler.idle().then(() => (idle = true));
    await new Promise((r) => setImmediate(r));
    expect(idle).toBe(false);
    h.finish('a1');
    await waitFor(() => idle);
    expect(h.started).toEqual(['a1']);
  });

  it('hands a rejected task to onTaskError and keeps going', async () => {
    const errors: unknown[] = [];
    const ran: string[] = [];
    const s = createLaneScheduler({ concurrency: 1, maxQueued: 5, onTaskError: (e) => errors.push(e) });
    s.submit({ lane: 'a', tag: 't', run: () => Promise.reject(new Error('bug')) });
    s.submit({ lane: 'a', tag: 't', run: async () => void ran.push('next') });
    await waitFor(() => ran.length === 1);
    expect((errors[0] as Error).message).toBe('bug');
  });

  it('tolerates a task that submits synchronously while it starts', async () => {
    const ran: string[] = [];
    const s: LaneScheduler = createLaneScheduler({ concurrency: 2, maxQueued: 5, onTaskError: () => {} });
    s.submit({
      lane: 'a',
      tag: 't',
      run: () => {
        s.submit({ lane: 'b', tag: 't', run: async () => void ran.push('inner') });
        ran.push('outer');
        return Promise.resolve();
      },
    });
    await waitFor(() => ran.length === 2);
    expect(ran).toEqual(['inner', 'outer']);
    await s.idle();
  });
});

describe('lane scheduler under random load', () => {
  it('runs every task once, in order per lane, within the limit, whatever the interleaving', async () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 20; round++) {
      const concurrency = 1 + Math.floor(random() * 5);
      const scheduler = createLaneScheduler({
        concurrency,
        maxQueued: 1000,
        onTaskError: (e) => {
          throw e;
        },
      });
      const started: Array<{ lane: string; n: number }> = [];
      const open = new Map<string, () => void>();
      const busyLanes = new Set<string>();
      let running = 0;
      let maxRunning = 0;
      const total = 60;
      for (let n = 0; n < total; n++) {
        const lane = `l${Math.floor(random() * 6)}`;
        scheduler.submit({
          lane,
          tag: random() < 0.5 ? 'a' : 'b',
          run: () =>
            new Promise<void>((resolve) => {
              expect(busyLanes.has(lane)).toBe(false);
              busyLanes.add(lane);
              running++;
              maxRunning = Math.max(maxRunning, running);
              started.push({ lane, n });
              open.set(`${n}`, () => {
                busyLanes.delete(lane);
                running--;
                resolve();
              });
            }),
        });
        // Finish a random running task now and then, so submits and finishes interleave.
        if (random() < 0.6 && open.size > 0) {
          const keys = [...open.keys()];
          const key = keys[Math.floor(random() * keys.length)] as string;
          open.get(key)?.();
          open.delete(key);
          await Promise.resolve();
        }
      }
      while (started.length < total || open.size > 0) {
        const key = open.keys().next().value;
        if (key === undefined) {
          await new Promise((r) => setTimeout(r, 0));
          if (open.size === 0 && started.length < total)
            throw new Error(`stalled at ${started.length}/${total}`);
          continue;
        }
        open.get(key)?.();
        open.delete(key);
        await new Promise((r) => setTimeout(r, 0));
      }
      await scheduler.idle();
      expect(maxRunning).toBeLessThanOrEqual(concurrency);
      expect(new Set(started.map((s) => s.n)).size).toBe(total);
      for (const lane of new Set(started.map((s) => s.lane))) {
        const ns = started.filter((s) => s.lane === lane).map((s) => s.n);
        expect(ns).toEqual([...ns].sort((a, b) => a - b));
      }
    }
  });
});

describe('lane scheduler: waiting tasks', () => {
  function observed(concurrency: number) {
    const changes: string[][] = [];
    const gates = new Map<string, ReturnType<typeof gate>>();
    const scheduler: LaneScheduler<string> = createLaneScheduler<string>({
      concurrency,
      maxQueued: 10,
      onTaskError: () => {},
      onWaitingChange: () => changes.push(scheduler.waiting()),
    });
    const submit = (name: string, lane: string, tag = 'p0') => {
      const g = gate();
      gates.set(name, g);
      scheduler.submit({ lane, tag, item: name, run: () => g.promise });
    };
    const finish = (name: string) => gates.get(name)?.open();
    return { scheduler, changes, submit, finish };
  }

  it('says nothing while every task starts at once', async () => {
    const h = observed(2);
    h.submit('a', 'a');
    h.submit('b', 'b');
    h.finish('a');
    await waitFor(() => h.scheduler.running === 1);
    h.submit('c', 'c');
    await waitFor(() => h.scheduler.running === 2);
    expect(h.changes).toEqual([]);
  });

  it('lists the waiting items oldest first, across lanes, after each change', async () => {
    const h = observed(1);
    h.submit('x', 'x');
    h.submit('a1', 'a');
    h.submit('b1', 'b');
    h.submit('a2', 'a');
    expect(h.changes).toEqual([['a1'], ['a1', 'b1'], ['a1', 'b1', 'a2']]);
    h.finish('x');
    await waitFor(() => h.changes.length === 4);
    expect(h.changes[3]).toEqual(['b1', 'a2']);
    h.finish('a1');
    // a2's lane is free now, but b1 is older: it starts first.
    await waitFor(() => h.changes.length === 5);
    expect(h.changes[4]).toEqual(['a2']);
    h.finish('b1');
    await waitFor(() => h.changes.length === 6);
    expect(h.changes[5]).toEqual([]);
    h.finish('a2');
  });

  it('reports dropped tasks: cancelled ones and a stop', () => {
    const h = observed(1);
    h.submit('x', 'x');
    h.submit('a1', 'a', 'p1');
    h.submit('b1', 'b', 'p2');
    h.scheduler.cancelQueued((tag) => tag === 'p1');
    expect(h.changes.at(-1)).toEqual(['b1']);
    h.scheduler.stop();
    expect(h.changes.at(-1)).toEqual([]);
    const count = h.changes.length;
    // Nothing waited any more: a second stop has nothing to report.
    h.scheduler.stop();
    expect(h.changes).toHaveLength(count);
  });
});
