/** The soak's reading of an RSS series: the curve to print and whether memory stayed flat. */

export interface RssPoint {
  /** Seconds since the load started. */
  elapsedS: number;
  bytes: number;
}

export interface VerdictRule {
  /** Samples before this are warm-up (JIT, pools filling) and ignored. @default 120 */
  warmupS: number;
  /** Samples per window: the early one right after warm-up, the late one at the end. @default 5 */
  windowSamples: number;
  /** Growth of the late median over the early one still counted as flat, percent. @default 10 */
  tolerancePct: number;
}

export interface Verdict {
  verdict: 'flat' | 'growing' | 'inconclusive';
  /** The rule in words, with the numbers it used. */
  rule: string;
  /** Seconds of the first and last sample of each window. */
  early?: { fromS: number; toS: number; medianBytes: number };
  late?: { fromS: number; toS: number; medianBytes: number };
  /** (late − early) / early, percent. */
  growthPct?: number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Flat when the median of the last `windowSamples` samples is at most `tolerancePct` above the
 * median of the first `windowSamples` samples after warm-up (for a 30-minute run sampled every
 * minute: minutes 2–6 against the last five). Medians, so one sample taken just before a major GC
 * moves neither. A run too short for two windows of that size uses two halves of what it has
 * after warm-up; with fewer than two samples there it is inconclusive.
 */
export function judge(points: readonly RssPoint[], rule: VerdictRule): Verdict {
  const after = points.filter((p) => p.elapsedS >= rule.warmupS);
  const k = Math.min(rule.windowSamples, Math.floor(after.length / 2));
  const words = (k1: number) =>
    `flat if the median RSS of the last ${k1} samples is at most ${rule.tolerancePct}% above the median of the first ${k1} samples after ${rule.warmupS} s of warm-up`;
  if (k === 0) {
    return { verdict: 'inconclusive', rule: `${words(rule.windowSamples)}; too few samples after warm-up` };
  }
  const earlyPoints = after.slice(0, k);
  const latePoints = after.slice(-k);
  const window = (ps: RssPoint[]) => ({
    fromS: ps[0]?.elapsedS ?? 0,
    toS: ps.at(-1)?.elapsedS ?? 0,
    medianBytes: median(ps.map((p) => p.bytes)),
  });
  const early = window(earlyPoints);
  const late = window(latePoints);
  const growthPct =
    early.medianBytes > 0 ? ((late.medianBytes - early.medianBytes) / early.medianBytes) * 100 : 0;
  return {
    verdict: growthPct <= rule.tolerancePct ? 'flat' : 'growing',
    rule: words(k),
    early,
    late,
    growthPct,
  };
}

/**
 * The points to print: the first, one per `everyS` (the sample nearest each multiple), and the
 * last. Every point when `everyS` is 0 or the run is shorter than two steps.
 */
export function curve<T extends { elapsedS: number }>(points: readonly T[], everyS: number): T[] {
  const last = points.at(-1);
  if (!last || everyS <= 0 || last.elapsedS < 2 * everyS) return [...points];
  const picked = new Set<T>([points[0] as T]);
  for (let m = everyS; m < last.elapsedS; m += everyS) {
    let best = points[0] as T;
    for (const p of points) if (Math.abs(p.elapsedS - m) < Math.abs(best.elapsedS - m)) best = p;
    picked.add(best);
  }
  picked.add(last);
  return points.filter((p) => picked.has(p));
}
