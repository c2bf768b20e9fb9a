import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDependencyWatch } from './dependency-watch.js';

describe('createDependencyWatch', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is failing before the first check, then follows the checks: down, and back up', async () => {
    vi.useFakeTimers();
    let up = true;
    const check = vi.fn(() =>
      up ? Promise.resolve() : Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379')),
    );
    const watch = createDependencyWatch({ check, intervalMs: 1000 });
    expect(watch.current).toEqual({ ok: false, reason: 'not checked yet' });
    await watch.start();
    expect(watch.current).toEqual({ ok: true });

    up = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(watch.current).toEqual({ ok: false, reason: 'connect ECONNREFUSED 127.0.0.1:6379' });

    up = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(watch.current).toEqual({ ok: true });
    watch.close();
    const calls = check.mock.calls.length;
    await vi.advanceTimersByTimeAsync(5000);
    expect(check).toHaveBeenCalledTimes(calls);
  });

  it('a check that does not answer in time counts as failing, and checks never overlap', async () => {
    vi.useFakeTimers();
    let pending = 0;
    let most = 0;
    const check = () => {
      pending++;
      most = Math.max(most, pending);
      // Never answers within the timeout (a Redis that accepts the connection but hangs).
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          pending--;
          resolve();
        }, 10_000),
      );
    };
    const watch = createDependencyWatch({ check, intervalMs: 100, timeoutMs: 500 });
    const started = watch.start();
    await vi.advanceTimersByTimeAsync(500);
    await started;
    expect(watch.current).toEqual({ ok: false, reason: 'no answer within 500 ms' });
    await vi.advanceTimersByTimeAsync(30_000);
    watch.close();
    expect(most).toBe(1);
    expect(watch.current).toEqual({ ok: false, reason: 'no answer within 500 ms' });
  });
});
