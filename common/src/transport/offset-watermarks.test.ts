import { describe, expect, it } from 'vitest';
import { createOffsetWatermarks, type WatermarkTicket } from './offset-watermarks.js';

function trackAll(w: ReturnType<typeof createOffsetWatermarks>, slot: string, offsets: number[]) {
  return offsets.map((o) => w.track(slot, BigInt(o)) as WatermarkTicket);
}

describe('offset watermarks', () => {
  it('stays at the lowest unfinished offset when later messages finish first', () => {
    const w = createOffsetWatermarks();
    const [t0, t1, t2, t3] = trackAll(w, 'a|0', [0, 1, 2, 3]);
    expect(w.watermark('a|0')).toBe(0n);
    expect(w.finish(t1!)).toBeUndefined();
    expect(w.finish(t3!)).toBeUndefined();
    expect(w.finish(t2!)).toBeUndefined();
    expect(w.watermark('a|0')).toBe(0n);
    expect(w.unfinished('a|0')).toBe(1);
    // The slow first message finishing releases everything behind it at once.
    expect(w.finish(t0!)).toBe(4n);
    expect(w.watermark('a|0')).toBe(4n);
    expect(w.unfinished('a|0')).toBe(0);
  });

  it('advances step by step when messages finish in order', () => {
    const w = createOffsetWatermarks();
    const tickets = trackAll(w, 'a|0', [10, 11, 12]);
    expect(tickets.map((t) => w.finish(t))).toEqual([11n, 12n, 13n]);
  });

  it('moves to the next tracked offset across gaps in the log', () => {
    const w = createOffsetWatermarks();
    const [t5, t7, t9] = trackAll(w, 'a|0', [5, 7, 9]);
    expect(w.finish(t5!)).toBe(7n);
    expect(w.finish(t9!)).toBeUndefined();
    expect(w.watermark('a|0')).toBe(7n);
    expect(w.finish(t7!)).toBe(10n);
  });

  it('keeps partitions independent', () => {
    const w = createOffsetWatermarks();
    const [a0] = trackAll(w, 'a|0', [0]);
    const [b0, b1] = trackAll(w, 'a|1', [100, 101]);
    expect(w.finish(b1!)).toBeUndefined();
    expect(w.finish(a0!)).toBe(1n);
    expect(w.watermark('a|1')).toBe(100n);
    expect(w.finish(b0!)).toBe(102n);
    expect(w.slots().sort()).toEqual(['a|0', 'a|1']);
  });

  it('refuses offsets below the next one (already taken before a rebalance kept the partition)', () => {
    const w = createOffsetWatermarks();
    trackAll(w, 'a|0', [0, 1, 2]);
    expect(w.nextOffset('a|0')).toBe(3n);
    expect(w.track('a|0', 1n)).toBeUndefined();
    expect(w.track('a|0', 3n)).toBeDefined();
  });

  it('drops a revoked partition: its tickets no longer count, new tracking starts fresh', () => {
    const w = createOffsetWatermarks();
    const [old0, old1] = trackAll(w, 'a|0', [0, 1]);
    w.drop('a|0');
    expect(w.watermark('a|0')).toBeUndefined();
    expect(w.finish(old1!)).toBeUndefined();
    // The partition comes back (redelivered from the committed offset 0).
    const [new0, new1] = trackAll(w, 'a|0', [0, 1]);
    // A handler of the old assignment finishing late must not mark the redelivered message done.
    expect(w.finish(old0!)).toBeUndefined();
    expect(w.watermark('a|0')).toBe(0n);
    expect(w.finish(new0!)).toBe(1n);
    expect(w.finish(new1!)).toBe(2n);
  });

  it('ignores a second finish of the same ticket', () => {
    const w = createOffsetWatermarks();
    const [t0, t1] = trackAll(w, 'a|0', [0, 1]);
    expect(w.finish(t0!)).toBe(1n);
    expect(w.finish(t0!)).toBeUndefined();
    expect(w.finish(t1!)).toBe(2n);
  });
});
