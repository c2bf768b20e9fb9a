/**
 * Medians over the runs and the Markdown section of BENCHMARKS.md. The section between the bench
 * markers is rewritten by every `npm run bench`; everything around it (history, notes) is kept.
 */
import type {
  AnsweredCpuRun,
  ConnectionsRun,
  CpuRun,
  LatencyRun,
  OriginalCapacityRun,
  Target,
  ThroughputRun,
} from './scenarios.js';
import { FINAL_OVERHEAD_LIMIT_MS, ORIGINAL_MODEL_MS } from './scenarios.js';

export interface BenchResults {
  startedAt: string;
  command: string;
  machine: string;
  versions: Record<string, string>;
  runs: number;
  latency: LatencyRun[];
  throughput: ThroughputRun[];
  cpu: CpuRun[];
  /** Absent in results files from before these scenarios. */
  answered?: AnsweredCpuRun[];
  original?: OriginalCapacityRun[];
  connections: ConnectionsRun[];
  /** Settings the scenarios ran with (rates, durations, model timing). */
  settings: Record<string, unknown>;
}

export const BEGIN = '<!-- bench:begin (written by npm run bench) -->';
export const END = '<!-- bench:end -->';

export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 === 1 ? (finite[mid] ?? 0) : ((finite[mid - 1] ?? 0) + (finite[mid] ?? 0)) / 2;
}

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const runsOf = (values: readonly number[], digits = 1) => values.map((v) => fmt(v, digits)).join(' / ');
const verdict = (met: boolean) => (met ? 'met' : '**not met**');

function byTarget<T extends { target: Target }>(runs: readonly T[], target: Target): T[] {
  return runs.filter((r) => r.target === target);
}

export function renderSection(results: BenchResults): string {
  const out: string[] = [BEGIN, ''];
  out.push(
    `Latest run: ${results.startedAt}, ${results.runs} run(s) of each scenario; figures are medians of the runs (each run's own value after the slash-separated list where shown).`,
  );
  out.push('');
  out.push(
    `- Machine: ${results.machine}; everything on it (Kafka, Redis, nginx, Prometheus, the services, the mock model and the load generator).`,
  );
  out.push(
    `- Versions: ${Object.entries(results.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
  );
  out.push(`- Command: \`${results.command}\``);
  out.push(`- Settings: \`${JSON.stringify(results.settings)}\``);
  out.push('');

  // Goals table.
  const lat = byTarget(results.latency, 'stack');
  const tp = byTarget(results.throughput, 'stack');
  const cpu = byTarget(results.cpu, 'stack');
  const uwsConn = results.connections.filter((c) => c.target === 'uws');
  const wsConn = results.connections.filter((c) => c.target === 'ws');
  const p = (runs: LatencyRun[], key: 'firstDelta' | 'deltaGap' | 'final', q: 'p50' | 'p99') =>
    runs.map((r) => r.overheadMs[key][q]);
  out.push('### Against the goals (the stack: nginx → two uWS gateways)');
  out.push('');
  out.push('| measure | goal | runs | median | verdict |');
  out.push('|---|---|---|---|---|');
  if (lat.length > 0) {
    const fd50 = p(lat, 'firstDelta', 'p50');
    const fd99 = p(lat, 'firstDelta', 'p99');
    const gap99 = p(lat, 'deltaGap', 'p99');
    out.push(
      `| pipeline overhead p50 (first delta − TTFT) | ≤ 5 ms | ${runsOf(fd50)} | ${fmt(median(fd50))} ms | ${verdict(median(fd50) <= 5)} |`,
    );
    out.push(
      `| pipeline overhead p99 | ≤ 15 ms | ${runsOf(fd99)} | ${fmt(median(fd99))} ms | ${verdict(median(fd99) <= 15)} |`,
    );
    out.push(
      `| per-token added latency p99 (delta gap − token interval) | ≤ 10 ms | ${runsOf(gap99)} | ${fmt(median(gap99))} ms | ${verdict(median(gap99) <= 10)} |`,
    );
  }
  if (tp.length > 0) {
    const fps = tp.map((r) => r.sustainedFramesPerSecond);
    out.push(
      `| sustained throughput (flat lag, final p99 overhead < ${FINAL_OVERHEAD_LIMIT_MS} ms, nothing lost) | ≥ 20,000 frames/s | ${runsOf(fps, 0)} | ${fmt(median(fps), 0)} frames/s | ${verdict(median(fps) >= 20_000)} |`,
    );
    const cap = tp.map((r) => r.capacityFramesPerSecond);
    out.push(
      `| capacity (flat lag, nothing lost, any latency) | (≥ 20,000 frames/s) | ${runsOf(cap, 0)} | ${fmt(median(cap), 0)} frames/s | ${verdict(median(cap) >= 20_000)} |`,
    );
  }
  if (cpu.length > 0) {
    const us = cpu.map((r) => r.totalUsPerFrame);
    out.push(
      `| CPU per delivered frame, all pipeline processes | ≤ 60 µs | ${runsOf(us)} | ${fmt(median(us))} µs | ${verdict(median(us) <= 60)} |`,
    );
    const marginal = cpu.map((r) => r.marginalTotalUsPerFrame);
    out.push(
      `| … less each process's idle CPU (what the frames added) | ≤ 60 µs | ${runsOf(marginal)} | ${fmt(median(marginal))} µs | ${verdict(median(marginal) <= 60)} |`,
    );
  }
  const answered = byTarget(results.answered ?? [], 'stack');
  if (answered.length > 0) {
    const us = answered.map((r) => r.totalUsPerAnswer);
    out.push(
      `| CPU per answered message, original protocol, 50 msg/s, all pipeline processes | ≤ 2,000 µs | ${runsOf(us, 0)} | ${fmt(median(us), 0)} µs | ${verdict(median(us) <= 2000)} |`,
    );
  }
  const original = byTarget(results.original ?? [], 'stack');
  if (original.length > 0) {
    const rates = original.map((r) => r.sustainedPromptsPerSecond);
    out.push(
      `| original protocol, 1000 users: highest rate with nothing lost and p99 < ${fmt(2 * ORIGINAL_MODEL_MS, 0)} ms (2× the model) | ≥ 600 msg/s | ${runsOf(rates, 0)} | ${fmt(median(rates), 0)} msg/s | ${verdict(median(rates) >= 600)} |`,
    );
  }
  for (const level of levelsOf(uwsConn)) {
    const per = uwsConn.map(
      (c) => c.levels.find((l) => l.requested === level)?.rssPerConnectionBytes ?? Number.NaN,
    );
    out.push(
      `| uWS gateway RSS per idle connection at ${level.toLocaleString('en')} | ≤ 2 KB | ${runsOf(per, 0)} | ${fmt(median(per), 0)} B | ${verdict(median(per) <= 2048)} |`,
    );
  }
  const nginxConn = results.connections.filter((c) => c.target === 'stack');
  for (const level of levelsOf(nginxConn)) {
    const failed = nginxConn.map((c) => c.levels.find((l) => l.requested === level)?.failed ?? Number.NaN);
    out.push(
      `| idle connections through nginx at ${level.toLocaleString('en')}: failed to open | 0 | ${runsOf(failed, 0)} | ${fmt(median(failed), 0)} | ${verdict(median(failed) === 0)} |`,
    );
  }
  for (const skip of uwsConn[0]?.skipped ?? []) {
    out.push(
      `| idle connections at ${skip.requested.toLocaleString('en')} | ≤ 2 KB/conn | – | not run | not measured: ${skip.reason} |`,
    );
  }
  out.push('');

  if (lat.length > 0) {
    out.push("### Latency at 100 prompts/s (pipeline cost: the mock model's time subtracted)");
    out.push('');
    out.push(
      '| target | streams open | first delta p50 / p99 | delta gap p50 / p99 | final p50 / p99 | ack p50 / p99 | lost |',
    );
    out.push('|---|---|---|---|---|---|---|');
    for (const target of ['stack', 'uws', 'ws'] as const) {
      const runs = byTarget(results.latency, target);
      if (runs.length === 0) continue;
      const m = (f: (r: LatencyRun) => number) => fmt(median(runs.map(f)));
      out.push(
        `| ${target} | ${m((r) => r.concurrentStreams)} | ${m((r) => r.overheadMs.firstDelta.p50)} / ${m((r) => r.overheadMs.firstDelta.p99)} ms | ${m((r) => r.overheadMs.deltaGap.p50)} / ${m((r) => r.overheadMs.deltaGap.p99)} ms | ${m((r) => r.overheadMs.final.p50)} / ${m((r) => r.overheadMs.final.p99)} ms | ${m((r) => r.ackMs.p50)} / ${m((r) => r.ackMs.p99)} ms | ${m((r) => r.counts.lost + r.counts.unanswered)} |`,
      );
    }
    out.push('');
  }

  if (results.throughput.length > 0) {
    out.push('### Throughput ramp');
    out.push('');
    out.push(
      '"Sustained" needs every criterion of the goal, the p99 final overhead < 25 ms included. "Capacity" is the highest step carried without loss or growing consumer lag, whatever its latency; the ramp stops past it.',
    );
    out.push('');
    out.push(
      '| target | runs: sustained frames/s | median | runs: capacity frames/s | median | final p99 overhead at capacity | first step failing the goal |',
    );
    out.push('|---|---|---|---|---|---|---|');
    for (const target of ['stack', 'uws', 'ws'] as const) {
      const runs = byTarget(results.throughput, target);
      if (runs.length === 0) continue;
      const failing = runs
        .map((r) => r.steps.find((s) => !s.pass))
        .map((s) => (s ? `${fmt(s.promptsPerSecond, 0)}/s: ${s.reason ?? ''}` : 'none (top of ramp)'));
      const sustained = runs.map((r) => r.sustainedFramesPerSecond);
      const capacity = runs.map((r) => r.capacityFramesPerSecond);
      const tail = runs.map(
        (r) => r.steps.filter((s) => s.capacityPass).at(-1)?.finalOverheadP99Ms ?? Number.NaN,
      );
      out.push(
        `| ${target} | ${runsOf(sustained, 0)} | ${fmt(median(sustained), 0)} | ${runsOf(capacity, 0)} | ${fmt(median(capacity), 0)} | ${fmt(median(tail))} ms | ${failing.join('<br>')} |`,
      );
    }
    out.push('');
  }

  if (results.cpu.length > 0) {
    out.push('### CPU per delivered frame (µs, medians)');
    out.push('');
    const names = [...new Set(results.cpu.flatMap((r) => Object.keys(r.usPerFrame)))];
    const excluded = [...new Set(results.cpu.flatMap((r) => Object.keys(r.excludedUsPerFrame)))];
    out.push(
      `| target | frames/s | ${names.join(' | ')} | **total** | total less idle | ${excluded.map((n) => `(${n})`).join(' | ')} |`,
    );
    out.push(`|---|---|${names.map(() => '---|').join('')}---|---|${excluded.map(() => '---|').join('')}`);
    for (const target of ['stack', 'uws', 'ws'] as const) {
      const runs = byTarget(results.cpu, target);
      if (runs.length === 0) continue;
      const m = (f: (r: CpuRun) => number) => fmt(median(runs.map(f)));
      out.push(
        `| ${target} | ${m((r) => r.framesPerSecond)} | ${names.map((n) => m((r) => r.usPerFrame[n] ?? Number.NaN)).join(' | ')} | **${m((r) => r.totalUsPerFrame)}** | ${m((r) => r.marginalTotalUsPerFrame ?? Number.NaN)} | ${excluded.map((n) => m((r) => r.excludedUsPerFrame[n] ?? Number.NaN)).join(' | ')} |`,
      );
    }
    out.push('');
  }

  out.push(...originalProtocolSection(results));

  if (results.connections.length > 0) {
    out.push('### Idle connections on one gateway');
    out.push('');
    out.push(
      '| target | connections | RSS per connection | marginal (since previous level) | connects/s | gateway RSS | failed |',
    );
    out.push('|---|---|---|---|---|---|---|');
    for (const [target, runs] of [
      ['stack (nginx RSS)', results.connections.filter((c) => c.target === 'stack')],
      ['uws', uwsConn],
      ['ws', wsConn],
    ] as const) {
      for (const level of levelsOf(runs)) {
        const at = runs.map((c) => c.levels.find((l) => l.requested === level));
        const m = (f: (l: NonNullable<(typeof at)[number]>) => number, digits = 0) =>
          fmt(median(at.map((l) => (l ? f(l) : Number.NaN))), digits);
        out.push(
          `| ${target} | ${level.toLocaleString('en')} | ${m((l) => l.rssPerConnectionBytes)} B | ${m((l) => l.marginalBytesPerConnection)} B | ${m((l) => l.connectsPerSecond)} | ${m((l) => l.rssBytes / 2 ** 20, 1)} MiB | ${m((l) => l.failed)} |`,
        );
      }
    }
    out.push('');
  }

  // Side by side.
  out.push(
    '### Side by side: uWS gateway vs the `ws` baseline (same intake, delivery, Kafka and Redis path)',
  );
  out.push('');
  out.push('| measure | uWS | ws | ratio | goal |');
  out.push('|---|---|---|---|---|');
  const tpU = median(byTarget(results.throughput, 'uws').map((r) => r.capacityFramesPerSecond));
  const tpW = median(byTarget(results.throughput, 'ws').map((r) => r.capacityFramesPerSecond));
  if (Number.isFinite(tpU) && Number.isFinite(tpW)) {
    out.push(
      `| frames/s carried through one gateway (capacity) | ${fmt(tpU, 0)} | ${fmt(tpW, 0)} | ${fmt(tpU / tpW, 2)}× | ≥ 3× |`,
    );
  }
  const gwU = median(byTarget(results.cpu, 'uws').map((r) => r.usPerFrame['gateway-1'] ?? Number.NaN));
  const gwW = median(byTarget(results.cpu, 'ws').map((r) => r.usPerFrame['baseline-gateway'] ?? Number.NaN));
  if (Number.isFinite(gwU) && Number.isFinite(gwW)) {
    out.push(
      `| gateway CPU per delivered frame (capacity ∝ 1/CPU) | ${fmt(gwU)} µs | ${fmt(gwW)} µs | ${fmt(gwW / gwU, 2)}× | ≥ 3× |`,
    );
  }
  for (const level of levelsOf(uwsConn)) {
    const u = median(
      uwsConn.map((c) => c.levels.find((l) => l.requested === level)?.rssPerConnectionBytes ?? Number.NaN),
    );
    const w = median(
      wsConn.map((c) => c.levels.find((l) => l.requested === level)?.rssPerConnectionBytes ?? Number.NaN),
    );
    if (Number.isFinite(u) && Number.isFinite(w)) {
      out.push(
        `| RSS per idle connection at ${level.toLocaleString('en')} | ${fmt(u, 0)} B | ${fmt(w, 0)} B | ${fmt(u / w, 2)}× | ≤ 0.25× |`,
      );
    }
  }
  out.push('');
  out.push(END);
  return out.join('\n');
}

/** CPU per answered message and the capacity ramp of the original protocol (no deltas). */
function originalProtocolSection(results: BenchResults): string[] {
  const out: string[] = [];
  const answered = results.answered ?? [];
  if (answered.length > 0) {
    out.push('### Original protocol: CPU per answered message (µs, medians)');
    out.push('');
    const names = [...new Set(answered.flatMap((r) => Object.keys(r.usPerAnswer)))];
    const excluded = [...new Set(answered.flatMap((r) => Object.keys(r.excludedUsPerAnswer)))];
    out.push(
      `| target | msg/s | ${names.join(' | ')} | **total** | total less idle | ${excluded.map((n) => `(${n})`).join(' | ')} |`,
    );
    out.push(`|---|---|${names.map(() => '---|').join('')}---|---|${excluded.map(() => '---|').join('')}`);
    for (const target of ['stack', 'uws', 'ws'] as const) {
      const runs = byTarget(answered, target);
      if (runs.length === 0) continue;
      const m = (f: (r: AnsweredCpuRun) => number) => fmt(median(runs.map(f)), 0);
      out.push(
        `| ${target} | ${m((r) => r.promptsPerSecond)} | ${names.map((n) => m((r) => r.usPerAnswer[n] ?? Number.NaN)).join(' | ')} | **${m((r) => r.totalUsPerAnswer)}** | ${m((r) => r.marginalTotalUsPerAnswer)} | ${excluded.map((n) => m((r) => r.excludedUsPerAnswer[n] ?? Number.NaN)).join(' | ')} |`,
      );
    }
    out.push('');
  }
  const original = results.original ?? [];
  if (original.length > 0) {
    out.push(
      `### Original protocol: capacity with 1000 users (nothing lost, answer p99 < ${fmt(2 * ORIGINAL_MODEL_MS, 0)} ms)`,
    );
    out.push('');
    out.push(
      '| target | runs: sustained msg/s | median | answer p50 / p99 at that step | first step failing |',
    );
    out.push('|---|---|---|---|---|');
    for (const target of ['stack', 'uws', 'ws'] as const) {
      const runs = byTarget(original, target);
      if (runs.length === 0) continue;
      const sustained = runs.map((r) => r.sustainedPromptsPerSecond);
      const top = runs.map((r) => r.steps.filter((s) => s.pass).at(-1));
      const failing = runs
        .map((r) => r.steps.find((s) => !s.pass))
        .map((s) => (s ? `${fmt(s.promptsPerSecond, 0)}/s: ${s.reason ?? ''}` : 'none (top of ramp)'));
      out.push(
        `| ${target} | ${runsOf(sustained, 0)} | ${fmt(median(sustained), 0)} | ${fmt(median(top.map((s) => s?.finalP50Ms ?? Number.NaN)), 0)} / ${fmt(median(top.map((s) => s?.finalP99Ms ?? Number.NaN)), 0)} ms | ${failing.join('<br>')} |`,
      );
    }
    out.push('');
  }
  return out;
}

function levelsOf(runs: readonly ConnectionsRun[]): number[] {
  return [...new Set(runs.flatMap((r) => r.levels.map((l) => l.requested)))].sort((a, b) => a - b);
}

/** Puts `section` between the markers of `document`, or appends it when they are missing. */
export function spliceSection(document: string, section: string): string {
  const begin = document.indexOf(BEGIN);
  const end = document.indexOf(END);
  if (begin < 0 || end < begin) return `${document.trimEnd()}\n\n${section}\n`;
  return `${document.slice(0, begin)}${section}${document.slice(end + END.length)}`;
}
