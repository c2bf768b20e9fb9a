/**
 * npm run bench:side-by-side -- --baseline <dir> [--runs 3] [bench options: --only …, --targets …]
 *
 * The same scenarios on this checkout and on another one (a baseline commit checked out in a
 * second folder, with this checkout's scripts/bench/{cli,scenarios,report}.ts copied over so both
 * run identical scenarios), one run at a time, alternating, so both see the same machine state.
 * Each run is a `npm run bench -- --runs 1 …` in that folder; its results file is kept in
 * scripts/bench/results/side-by-side/, and the medians and the ratios current ÷ baseline are
 * printed and written to scripts/bench/results/side-by-side/summary.md.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../infra/paths.js';
import { median, type BenchResults } from './report.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  strict: false,
  options: { baseline: { type: 'string' }, runs: { type: 'string', default: '3' } },
});
const baseline = typeof values.baseline === 'string' ? resolve(values.baseline) : undefined;
const runs = Number(values.runs);
if (!baseline || !Number.isInteger(runs) || runs < 1) {
  console.error('usage: npm run bench:side-by-side -- --baseline <dir> [--runs 3] [bench options]');
  process.exit(2);
}
// Everything that is not ours goes to each bench run (`--only`, `--targets`, `--quick`, …).
const passThrough = process.argv.slice(2).filter((arg, i, all) => {
  if (arg === '--baseline' || arg === '--runs') return false;
  return !(all[i - 1] === '--baseline' || all[i - 1] === '--runs');
});
void positionals;

const outDir = join(repoRoot, 'scripts', 'bench', 'results', 'side-by-side');
mkdirSync(outDir, { recursive: true });
const trees = { current: repoRoot, baseline } as const;
const collected: Record<keyof typeof trees, BenchResults[]> = { current: [], baseline: [] };

for (let run = 1; run <= runs; run++) {
  // Swap who goes first each run, so neither always gets the cooler machine.
  const order = run % 2 === 1 ? (['current', 'baseline'] as const) : (['baseline', 'current'] as const);
  for (const name of order) {
    const dir = trees[name];
    process.stderr.write(`[side-by-side] run ${run} of ${runs}: ${name} (${dir})\n`);
    const args = ['run', 'bench', '--', '--runs', '1', '--out', join(outDir, `${name}.md`), ...passThrough];
    const result = spawnSync('npm', args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    if (result.status !== 0) {
      console.error(`[side-by-side] ${name} run ${run} failed (exit ${result.status})`);
      process.exit(1);
    }
    const file = join(outDir, `${name}-${run}.json`);
    copyFileSync(join(dir, 'scripts', 'bench', 'results', 'latest.json'), file);
    collected[name].push(JSON.parse(readFileSync(file, 'utf8')) as BenchResults);
  }
}

/** Each headline figure of the stack target, one value per run. */
function figures(results: BenchResults[]): Record<string, number[]> {
  const stack = <T extends { target: string }>(list: T[] | undefined) =>
    (list ?? []).filter((r) => r.target === 'stack');
  const out: Record<string, number[]> = {};
  const add = (name: string, value: number | undefined) => {
    if (value !== undefined) (out[name] ??= []).push(value);
  };
  for (const r of results) {
    for (const l of stack(r.latency)) {
      add('first-delta overhead p50, ms', l.overheadMs.firstDelta.p50);
      add('first-delta overhead p99, ms', l.overheadMs.firstDelta.p99);
      add('per-token added latency p99, ms', l.overheadMs.deltaGap.p99);
    }
    for (const t of stack(r.throughput)) add('capacity, frames/s', t.capacityFramesPerSecond);
    for (const c of stack(r.cpu)) add('CPU per delivered frame, µs', c.totalUsPerFrame);
    for (const a of stack(r.answered))
      add('CPU per answered message (original protocol), µs', a.totalUsPerAnswer);
    for (const o of stack(r.original))
      add(
        'original protocol, highest rate (nothing lost, p99 < 2× model), msg/s',
        o.sustainedPromptsPerSecond,
      );
  }
  return out;
}

const current = figures(collected.current);
const base = figures(collected.baseline);
const fmt = (v: number) => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1)) : '–');
const lines = [
  `Side by side, ${runs} run(s) each, alternating (${new Date().toISOString()}); current: ${repoRoot}, baseline: ${baseline}.`,
  `Bench options: \`${passThrough.join(' ') || '(defaults)'}\`. Figures of the stack target (nginx → two gateways), medians (runs after them).`,
  '',
  '| measure | current | baseline | current ÷ baseline |',
  '|---|---|---|---|',
];
for (const name of Object.keys({ ...current, ...base })) {
  const c = current[name] ?? [];
  const b = base[name] ?? [];
  lines.push(
    `| ${name} | ${fmt(median(c))} (${c.map(fmt).join(' / ')}) | ${fmt(median(b))} (${b.map(fmt).join(' / ')}) | ${(median(c) / median(b)).toFixed(2)}× |`,
  );
}
const summary = `${lines.join('\n')}\n`;
writeFileSync(join(outDir, 'summary.md'), summary);
console.log(summary);
