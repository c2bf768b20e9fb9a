import { describe, expect, it } from 'vitest';
import { streams } from './options.js';
import { curve, judge, median } from './verdict.js';

const MB = 1024 * 1024;
const rule = { warmupS: 120, windowSamples: 5, tolerancePct: 10 };
/** One sample a minute for `minutes`, from `mb(minute)`. */
const series = (minutes: number, mb: (m: number) => number) =>
  Array.from({ length: minutes + 1 }, (_, m) => ({ elapsedS: m * 60, bytes: mb(m) * MB }));

describe('soak verdict', () => {
  it('compares minutes 2–6 with the last five samples of a 30-minute run', () => {
    const v = judge(
      series(30, (m) => (m < 2 ? 100 : 150)),
      rule,
    );
    expect(v.verdict).toBe('flat');
    expect(v.early).toMatchObject({ fromS: 120, toS: 360, medianBytes: 150 * MB });
    expect(v.late).toMatchObject({ fromS: 26 * 60, toS: 30 * 60 });
    expect(v.rule).toContain('last 5 samples');
  });

  it('warm-up growth does not count; steady growth after it does', () => {
    expect(
      judge(
        series(30, (m) => 100 + m * 50),
        rule,
      ).verdict,
    ).toBe('growing');
    // 0.2 MB a minute on 150 MB: 5.6 MB between the windows, under the 10 % tolerance.
    expect(
      judge(
        series(30, (m) => 150 + m * 0.2),
        rule,
      ).verdict,
    ).toBe('flat');
    // One high sample in the last window (a GC about to happen) does not move the median.
    const spiky = series(30, (m) => (m === 29 ? 400 : 150));
    expect(judge(spiky, rule).verdict).toBe('flat');
  });

  it('a short run uses halves of what it has after warm-up, and too short a one is inconclusive', () => {
    const short = judge(
      series(3, () => 100),
      { ...rule, warmupS: 36 },
    );
    expect(short.verdict).toBe('flat');
    expect(short.rule).toContain('last 1 samples');
    expect(judge([{ elapsedS: 0, bytes: MB }], rule).verdict).toBe('inconclusive');
  });

  it('curve: start, every 5 minutes, end; every point for short runs', () => {
    const points = [...series(30, () => 1), { elapsedS: 1830, bytes: MB }];
    expect(curve(points, 300).map((p) => p.elapsedS)).toEqual([0, 300, 600, 900, 1200, 1500, 1800, 1830]);
    expect(
      curve(
        series(3, () => 1),
        300,
      ),
    ).toHaveLength(4);
    expect(
      curve(
        series(30, () => 1),
        0,
      ),
    ).toHaveLength(31);
  });

  it('median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });

  it('streams an even spread of users', () => {
    const flags = Array.from({ length: 10 }, (_, i) => streams(i, 0.5));
    expect(flags.filter(Boolean)).toHaveLength(5);
    expect(flags).toEqual([false, true, false, true, false, true, false, true, false, true]);
    expect(Array.from({ length: 7 }, (_, i) => streams(i, 1)).every(Boolean)).toBe(true);
    expect(Array.from({ length: 7 }, (_, i) => streams(i, 0)).some(Boolean)).toBe(false);
  });
});
