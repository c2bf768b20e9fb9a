import { describe, expect, it } from 'vitest';
import { createWorkScheduler } from './user-queue.js';

/** A promise resolved from outside, for driving concurrency by hand. */
function deferred() {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('work scheduler', () => {
  it("runs one user's requests strictly in order, other users in parallel", async () => {
    const scheduler = createWorkScheduler({ maxWorkers: 10 });
    const log: string[] = [];
    const gates = { a1: deferred(), a2: deferred(), b1: deferred() };
    const task = (name: keyof typeof gates) => async () => {
      log.push(`start ${name}`);
      await gates[name].promise;
      log.push(`end ${name}`);
      return name;
    };
    const a1 = scheduler.forUser('a', task('a1'));
    const a2 = scheduler.forUser('a', task('a2'));
    const b1 = scheduler.forUser('b', task('b1'));
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['start a1', 'start b1']);
    gates.b1.resolve();
    await b1;
    expect(log).not.toContain('start a2');
    gates.a2.resolve();
    gates.a1.resolve();
    expect(await Promise.all([a1, a2])).toEqual(['a1', 'a2']);
    expect(log).toEqual(['start a1', 'start b1', 'end b1', 'end a1', 'start a2', 'end a2']);
    expect(scheduler.users).toBe(0);
  });

  it("a failed request does not block the user's next one", async () => {
    const scheduler = createWorkScheduler({ maxWorkers: 1 });
    const failed = scheduler.forUser('a', async () => {
      throw new Error('boom');
    });
    const next = scheduler.forUser('a', async () => 'next');
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe('next');
  });

  it('caps concurrent limited calls at maxWorkers while keeping per-user order', async () => {
    const maxWorkers = 3;
    const scheduler = createWorkScheduler({ maxWorkers });
    let running = 0;
    let maxRunning = 0;
    const perUser = new Map<string, number[]>();
    const perUserRunning = new Map<string, number>();
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < 40; i++) {
      const user = `u${i % 8}`;
      jobs.push(
        scheduler.forUser(user, async () => {
          perUserRunning.set(user, (perUserRunning.get(user) ?? 0) + 1);
          expect(perUserRunning.get(user)).toBe(1);
          await scheduler.limited(async () => {
            running++;
            maxRunning = Math.max(maxRunning, running);
            expect(scheduler.active).toBeLessThanOrEqual(maxWorkers);
            await new Promise((r) => setTimeout(r, 1 + (i % 3)));
            running--;
          });
          perUser.set(user, [...(perUser.get(user) ?? []), i]);
          perUserRunning.set(user, (perUserRunning.get(user) ?? 0) - 1);
        }),
      );
    }
    await Promise.all(jobs);
    expect(maxRunning).toBe(maxWorkers);
    for (const [user, order] of perUser) {
      const n = Number(user.slice(1));
      expect(order).toEqual([n, n + 8, n + 16, n + 24, n + 32]);
    }
  });
});
