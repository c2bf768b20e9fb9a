import type { BusMessage } from '@relay/common';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createQueuePositions, type QueuePositionUpdate, type WaitingPrompt } from './queue-positions.js';

function message(request_id: string, stream = true, userid = 'alice'): BusMessage {
  return {
    topic: 'incoming',
    partition: 0,
    offset: request_id,
    key: userid,
    value: JSON.stringify({ request_id, userid, stream }),
    headers: {},
    timestamp: 0,
  };
}
/** Not a prompt: described as undefined. */
const garbage = (offset: string): BusMessage => ({ ...message(offset), value: '{oops' });

function setup(intervalMs = 500) {
  const rounds: Array<Array<Pick<QueuePositionUpdate, 'request_id' | 'position'>>> = [];
  const described: string[] = [];
  let line: BusMessage[] = [];
  const positions = createQueuePositions({
    intervalMs,
    describe: (m) => {
      described.push(m.offset);
      try {
        return JSON.parse(m.value) as WaitingPrompt;
      } catch {
        return undefined;
      }
    },
    publish: (updates) =>
      rounds.push(updates.map((u) => ({ request_id: u.request_id, position: u.position }))),
    now: () => Date.now(),
  });
  /** The bus's line changed to `next`. */
  const change = (...next: BusMessage[]) => {
    line = next;
    positions.changed(() => line);
  };
  return { positions, rounds, described, change };
}

describe('queue positions', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('costs no timer while nothing waits', () => {
    const h = setup();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(5000);
    expect(h.rounds).toEqual([]);
  });

  it('tells streaming prompts how many wait ahead of them; others count but are not told', () => {
    const h = setup();
    const a = message('a', false);
    const b = garbage('b');
    const c = message('c');
    const d = message('d', true, 'bob');
    h.change(a, b, c, d);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(0);
    expect(h.rounds).toEqual([
      [
        { request_id: 'c', position: 2 },
        { request_id: 'd', position: 3 },
      ],
    ]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('folds changes into one round per interval and sends a position only when it changed', () => {
    const h = setup(500);
    const [a, b, c] = [message('a'), message('b'), message('c')];
    h.change(a, b);
    vi.advanceTimersByTime(0);
    expect(h.rounds).toHaveLength(1);

    // Three changes within the interval: one round, at its end, with the line as it is then.
    h.change(a, b, c);
    vi.advanceTimersByTime(100);
    h.change(b, c);
    vi.advanceTimersByTime(100);
    h.change(c);
    expect(h.rounds).toHaveLength(1);
    vi.advanceTimersByTime(299);
    expect(h.rounds).toHaveLength(1);
    vi.advanceTimersByTime(1);
    // b and a started meanwhile: neither is told anything more; c moved from 2 (never sent) to 0.
    expect(h.rounds[1]).toEqual([{ request_id: 'c', position: 0 }]);

    // A change that leaves c where it was sends nothing.
    h.change(c, message('e', false));
    vi.advanceTimersByTime(500);
    expect(h.rounds).toHaveLength(2);
  });

  it('reads each waiting message once, and forgets the ones that left the line', () => {
    const h = setup(10);
    const [a, b] = [message('a'), message('b')];
    h.change(a, b);
    vi.advanceTimersByTime(10);
    h.change(b);
    vi.advanceTimersByTime(10);
    h.change(b, a);
    vi.advanceTimersByTime(10);
    // a came back (a redelivery after a rebalance is a new message anyway): read and told again.
    expect(h.described).toEqual(['a', 'b', 'a']);
    expect(h.rounds).toEqual([
      [
        { request_id: 'a', position: 0 },
        { request_id: 'b', position: 1 },
      ],
      [{ request_id: 'b', position: 0 }],
      [{ request_id: 'a', position: 1 }],
    ]);
  });

  it('sends nothing after close, and leaves no timer behind', () => {
    const h = setup();
    h.change(message('a'));
    h.positions.close();
    expect(vi.getTimerCount()).toBe(0);
    h.change(message('b'));
    vi.advanceTimersByTime(1000);
    expect(h.rounds).toEqual([]);
    h.positions.close();
  });
});
