import { describe, expect, it } from 'vitest';
import { BEGIN, END, median, renderSection, spliceSection, type BenchResults } from './report.js';
import type { CpuRun, LatencyRun } from './scenarios.js';

const summary = (p50: number, p99: number) => ({ count: 10, p50, p90: p50, p99, 'p99.9': p99, max: p99 });

function latency(target: LatencyRun['target'], firstDeltaP50: number): LatencyRun {
  return {
    target,
    rate: 100,
    seconds: 30,
    counts: { sent: 10, answered: 10, lost: 0, unanswered: 0, errors: 0 },
    concurrentStreams: 250,
    overheadMs: {
      firstDelta: summary(firstDeltaP50, firstDeltaP50 * 3),
      deltaGap: summary(1, 8),
      final: summary(firstDeltaP50 + 2, 30),
    },
    ackMs: summary(1, 3),
  };
}

function cpu(target: CpuRun['target'], gatewayUs: number): CpuRun {
  const gateway = target === 'ws' ? 'baseline-gateway' : 'gateway-1';
  return {
    target,
    promptsPerSecond: 100,
    frames: 1000,
    framesPerSecond: 5000,
    usPerFrame: { [gateway]: gatewayUs, kafka: 20 },
    totalUsPerFrame: gatewayUs + 20,
    marginalUsPerFrame: { [gateway]: gatewayUs - 1, kafka: 10 },
    marginalTotalUsPerFrame: gatewayUs + 9,
    excludedUsPerFrame: { 'mock-openai': 30 },
    counts: { sent: 10, answered: 10, lost: 0, unanswered: 0, errors: 0 },
  };
}

function results(partial: Partial<BenchResults>): BenchResults {
  return {
    startedAt: '2026-11-21T00:00:00Z',
    command: 'npm run bench',
    machine: 'test',
    versions: { node: 'v20' },
    runs: 3,
    latency: [],
    throughput: [],
    cpu: [],
    connections: [],
    settings: {},
    ...partial,
  };
}

describe('bench report', () => {
  it('takes the median of odd and even counts and ignores non-finite values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([Number.NaN, 5, Number.POSITIVE_INFINITY])).toBe(5);
    expect(median([])).toBeNaN();
  });

  it('judges a goal on the median of the runs, not on the best run', () => {
    const section = renderSection(
      results({ latency: [latency('stack', 4), latency('stack', 6), latency('stack', 7)] }),
    );
    expect(section).toContain(
      '| pipeline overhead p50 (first delta − TTFT) | ≤ 5 ms | 4.0 / 6.0 / 7.0 | 6.0 ms | **not met** |',
    );
    const met = renderSection(
      results({ latency: [latency('stack', 4), latency('stack', 3), latency('stack', 9)] }),
    );
    expect(met).toContain('| 4.0 ms | met |');
  });

  it('reports the gateway CPU ratio of the baseline over uWS', () => {
    const section = renderSection(results({ cpu: [cpu('uws', 10), cpu('ws', 35)] }));
    expect(section).toContain(
      '| gateway CPU per delivered frame (capacity ∝ 1/CPU) | 10.0 µs | 35.0 µs | 3.50× | ≥ 3× |',
    );
  });

  it('replaces only the text between the markers, and appends them when missing', () => {
    const doc = `# B\n\nhand-written\n\n${BEGIN}\nold figures\n${END}\n\nafter\n`;
    const next = spliceSection(doc, `${BEGIN}\nnew\n${END}`);
    expect(next).toBe(`# B\n\nhand-written\n\n${BEGIN}\nnew\n${END}\n\nafter\n`);
    expect(spliceSection('# B\n', `${BEGIN}\nx\n${END}`)).toBe(`# B\n\n${BEGIN}\nx\n${END}\n`);
  });
});
