import { describe, expect, it } from 'vitest';
import { BEGIN, END, median, renderSection, spliceSection, type BenchResults } from './report.js';
import type { AnsweredCpuRun, CpuRun, LatencyRun, OriginalCapacityRun } from './scenarios.js';

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

function answered(totalUs: number): AnsweredCpuRun {
  return {
    target: 'stack',
    promptsPerSecond: 50,
    answered: 1000,
    usPerAnswer: { 'gateway-1': totalUs / 2, kafka: totalUs / 2 },
    totalUsPerAnswer: totalUs,
    marginalUsPerAnswer: { 'gateway-1': totalUs / 4, kafka: totalUs / 4 },
    marginalTotalUsPerAnswer: totalUs / 2,
    excludedUsPerAnswer: { 'mock-openai': 100 },
    counts: { sent: 1000, answered: 1000, lost: 0, unanswered: 0, errors: 0 },
  };
}

/** A ramp of 200, 400, … msg/s passing up to `passUpTo` and failing on the next step. */
function ramp(passUpTo: number): OriginalCapacityRun {
  const steps = [200, 400, 600, 800]
    .filter((r) => r <= passUpTo + 200)
    .map((rate) => ({
      promptsPerSecond: rate,
      counts: { sent: rate * 15, answered: rate * 15, lost: 0, unanswered: 0, errors: 0 },
      finalP50Ms: 700,
      finalP99Ms: rate <= passUpTo ? 900 : 2000,
      pass: rate <= passUpTo,
      ...(rate > passUpTo && { reason: 'p99 2000 ms' }),
    }));
  return {
    target: 'stack',
    users: 1000,
    steps,
    sustainedPromptsPerSecond: steps.filter((s) => s.pass).at(-1)?.promptsPerSecond ?? 0,
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

  it('judges the original-protocol goals on the medians and names the first failing step', () => {
    const section = renderSection(
      results({
        answered: [answered(1500), answered(2500), answered(1900)],
        original: [ramp(400), ramp(600), ramp(800)],
      }),
    );
    expect(section).toContain('| 1500 / 2500 / 1900 | 1900 µs | met |');
    expect(section).toMatch(
      /highest rate with nothing lost .*\| ≥ 600 msg\/s \| 400 \/ 600 \/ 800 \| 600 msg\/s \| met \|/,
    );
    expect(section).toContain('800/s: p99 2000 ms<br>');
    const slow = renderSection(results({ answered: [answered(2100)], original: [ramp(400)] }));
    expect(slow).toContain('| 2100 | 2100 µs | **not met** |');
    expect(slow).toMatch(/\| 400 \| 400 msg\/s \| \*\*not met\*\* \|/);
  });

  it('replaces only the text between the markers, and appends them when missing', () => {
    const doc = `# B\n\nhand-written\n\n${BEGIN}\nold figures\n${END}\n\nafter\n`;
    const next = spliceSection(doc, `${BEGIN}\nnew\n${END}`);
    expect(next).toBe(`# B\n\nhand-written\n\n${BEGIN}\nnew\n${END}\n\nafter\n`);
    expect(spliceSection('# B\n', `${BEGIN}\nx\n${END}`)).toBe(`# B\n\n${BEGIN}\nx\n${END}\n`);
  });
});
