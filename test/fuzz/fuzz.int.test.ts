import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatSummary, runFuzz } from '../../scripts/fuzz/fuzz.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// Fixed so a failure replays: FUZZ_SEED=<seed> (and the printed --path) reproduce it.
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_201);
const CASES = Number(process.env.FUZZ_CASES ?? 2000);

describe('hostile input (SPEC §2): the real gateway under a property-based fuzz', () => {
  it(
    `survives ${CASES} generated frames, sequences, protocol abuse and HTTP requests (seed ${SEED})`,
    { timeout: 170_000 },
    async () => {
      const logFile = resolve(root, `.work/fuzz/int-${process.pid}.log`);
      mkdirSync(dirname(logFile), { recursive: true });
      console.log(`[fuzz] seed ${SEED}, ${CASES} cases; server log ${logFile}`);
      const summary = await runFuzz({
        cases: CASES,
        seed: SEED,
        cwd: root,
        env: process.env,
        logFile,
        timeLimitMs: 40_000,
        probeEvery: 5,
        workers: 4,
        maxShrinkRuns: 40,
        limits: { maxPayloadBytes: 65_536 },
      });
      const report = formatSummary(summary);
      console.log(report);
      expect(summary.fatal, report).toBeUndefined();
      expect(summary.crashes, report).toEqual([]);
      expect(summary.violations, report).toEqual([]);
      expect(summary.casesRun, report).toBeGreaterThan(0);
    },
  );
});
