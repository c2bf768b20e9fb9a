import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isAlive } from '../infra/process-control.js';
import type { SoakResult } from './soak.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));

describe('npm run soak', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  // Starting npm start (tsx compiling every workspace) takes most of the time on a busy machine.
  it(
    'starts npm start, runs a few seconds, reports the RSS curve and a verdict, stops the server',
    { timeout: 180_000 },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'soak-'));
      cleanup.push(() => rm(dir, { recursive: true, force: true }));
      const json = join(dir, 'result.json');
      // Through the CLI, as `npm run soak` runs it: the server start and stop are part of the test.
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--conditions=source',
          'scripts/soak/cli.ts',
          ...['--minutes', '0.15', '--rate', '20', '--users', '10', '--sample-seconds', '2', '--grace', '15'],
          ...['--json', json, '--server-log', join(dir, 'server.log')],
        ],
        { cwd: repo, env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      // Should the test fail first: Ctrl-C, on which the soak stops the server it started.
      cleanup.push(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
        await exited;
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const code = await exited;

      const result = JSON.parse(await readFile(json, 'utf8')) as SoakResult & { interrupted: boolean };
      // Nothing lost, so the exit code is the verdict's: a few seconds of a fresh process may well
      // still be warming up.
      expect(code, stderr).toBe(result.verdict === 'growing' ? 1 : 0);
      expect(result.interrupted).toBe(false);
      expect(result.messages).toMatchObject({ lost: 0, lostAcked: 0, skipped: 0, errors: {} });
      expect(result.messages.sent).toBeGreaterThanOrEqual(170);
      expect(result.messages.answered).toBe(result.messages.sent);
      expect(result.connections).toMatchObject({ users: 10, streaming: 5, opened: 10, reconnects: 0 });
      expect(result.targets).toEqual([{ name: 'ai-relay', pid: expect.any(Number) }]);
      expect(result.gone).toEqual([]);
      // Start, one every 2 s over 9 s, end.
      expect(result.samples.length).toBeGreaterThanOrEqual(5);
      for (const s of result.samples) expect(s.rssBytes['ai-relay']).toBeGreaterThan(10 * 1024 * 1024);
      expect(result.curve.at(-1)).toEqual(result.samples.at(-1));
      expect(['flat', 'growing']).toContain(result.verdicts['ai-relay']?.verdict);
      expect(result.verdicts['ai-relay']?.rule).toMatch(/^flat if the median RSS/);

      expect(stderr).toMatch(/\[soak\] started npm start in .* on http:\/\/127\.0\.0\.1:\d+/);
      expect(stderr).toMatch(/\[soak\] start: rss \d+\.\d MB/);
      expect(stdout).toContain('RSS (MB):');
      expect(stdout).toMatch(/messages: sent \d+, acked \d+, answered \d+, lost 0/);
      expect(stdout).toMatch(/^verdict: (flat|growing)$/m);
      // The server the soak started is gone.
      expect(await isAlive(result.targets[0]?.pid ?? 0)).toBe(false);
    },
  );
});
