import * as hdr from 'hdr-histogram-js';

/** A latency histogram in microseconds (HDR, 3 significant digits, up to one hour). */
export function latencyHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

export const PERCENTILES = [50, 90, 99, 99.9] as const;

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  'p99.9': number;
  max: number;
}

/** Milliseconds, from a histogram recorded in microseconds. */
export function summarize(h: hdr.Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    'p99.9': ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  };
}

export function formatTable(rows: Record<string, LatencySummary>): string {
  const head = ['', 'count', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms'];
  const lines = [head];
  for (const [name, s] of Object.entries(rows)) {
    lines.push([name, String(s.count), ...[s.p50, s.p90, s.p99, s['p99.9'], s.max].map((v) => v.toFixed(2))]);
  }
  const widths = head.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  return lines
    .map((l) => l.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '))
    .join('\n');
}
