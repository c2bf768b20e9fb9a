import { describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../testing/silent-logger.js';
import { once, runAll } from './once.js';
import { createShutdown } from './shutdown.js';

describe('createShutdown', () => {
  it('closes in reverse order of registration and exits 0', async () => {
    const order: string[] = [];
    const exit = vi.fn();
    const s = createShutdown({ logger: silentLogger, deadlineMs: 1000, exit });
    s.add('kafka', () => void order.push('kafka'));
    s.add('redis', async () => void order.push('redis'));
    s.add('http', () => void order.push('http'));
    await s.shutdown('test');
    expect(order).toEqual(['http', 'redis', 'kafka']);
    expect(exit).toHaveBeenCalledWith(0);
  });

  it('keeps closing after a failure and exits 1', async () => {
    const order: string[] = [];
    const exit = vi.fn();
    const s = createShutdown({ logger: silentLogger, deadlineMs: 1000, exit });
    s.add('a', () => void order.push('a'));
    s.add('b', () => {
      throw new Error('b broke');
    });
    await s.shutdown('test');
    expect(order).toEqual(['a']);
    expect(exit).toHaveBeenCalledWith(1);
  });

  it('is idempotent, and a second signal exits at once', async () => {
    const exit = vi.fn();
    let release: () => void = () => {};
    const s = createShutdown({ logger: silentLogger, deadlineMs: 5000, exit });
    const closeFn = vi.fn(() => new Promise<void>((r) => (release = r)));
    s.add('slow', closeFn);
    s.onSignal('SIGTERM');
    expect(s.draining).toBe(true);
    const again = s.shutdown('again');
    s.onSignal('SIGTERM');
    expect(exit).toHaveBeenCalledWith(130);
    release();
    await again;
    expect(closeFn).toHaveBeenCalledTimes(1);
  });

  it('exits 1 when the deadline passes', async () => {
    vi.useFakeTimers();
    try {
      const exit = vi.fn();
      const s = createShutdown({ logger: silentLogger, deadlineMs: 100, exit });
      s.add('stuck', () => new Promise(() => {}));
      void s.shutdown('test');
      await vi.advanceTimersByTimeAsync(150);
      expect(exit).toHaveBeenCalledWith(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('once / runAll', () => {
  it('once memoises the promise', async () => {
    const fn = vi.fn(async () => 7);
    const close = once(fn);
    expect(await Promise.all([close(), close()])).toEqual([7, 7]);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('runAll runs every step and reports failures together', async () => {
    const ran: string[] = [];
    await expect(
      runAll([
        ['one', () => void ran.push('one')],
        ['two', () => Promise.reject(new Error('nope'))],
        ['three', () => void ran.push('three')],
      ]),
    ).rejects.toThrow(/1 close step/);
    expect(ran).toEqual(['one', 'three']);
  });
});
