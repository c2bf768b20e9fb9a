import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { machineDescription } from './proc-stats.js';

/** A whole-number command-line option within [min, max]; exits 2 with one line naming it otherwise. */
export function intOption(name: string, text: string | undefined, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`--${name} must be an integer ${min}-${max} (got ${String(text)})\n`);
    process.exit(2);
  }
  return n;
}

/**
 * A bench's results file: the date, the machine, its options, the medians and every run, at
 * `path` (its folder made if needed); the medians also go to stdout.
 */
export async function writeResults(
  path: string,
  results: { options: Record<string, unknown>; medians: unknown; runs: unknown[] },
): Promise<void> {
  const { options, medians, runs } = results;
  const out = { date: new Date().toISOString(), machine: await machineDescription(), options, medians, runs };
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(medians, null, 2)}\n`);
}
