import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

/** Runs ai-consumer's main.ts to its exit; returns the exit code, the JSON log lines and stderr. */
function runMain(
  env: Record<string, string>,
): Promise<{ code: number | null; lines: Array<Record<string, unknown>>; stderr: string }> {
  const inherited = { ...process.env };
  delete inherited.OPENAI_API_KEY;
  delete inherited.OPENAI_BASE_URL;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', MAIN], {
      env: { ...inherited, PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const lines = stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, lines, stderr });
    });
  });
}

// Redis on a closed port makes start-up fail right after the model is chosen, so these tests never
// join a consumer group on the shared topics.
const UNREACHABLE_REDIS = 'redis://127.0.0.1:1/0';

describe('ai-consumer main', () => {
  it('without OPENAI_API_KEY starts the bundled mock and says so; a start failure exits 1', async () => {
    const { code, lines } = await runMain({ REDIS_URL: UNREACHABLE_REDIS });
    const warning = lines.find((l) => String(l.msg).startsWith('no OPENAI_API_KEY'));
    expect(warning?.msg).toMatch(
      /^no OPENAI_API_KEY: using the bundled mock model at http:\/\/127\.0\.0\.1:\d+\/v1$/,
    );
    expect(warning?.level).toBe('warn');
    expect(lines.some((l) => l.level === 'fatal' && l.msg === 'ai-consumer failed to start')).toBe(true);
    expect(lines.at(-1)).toMatchObject({ msg: 'shutdown complete', exit_code: 1 });
    expect(code).toBe(1);
  });

  it('a knowledge path that does not exist stops it at once with one line naming the variable', async () => {
    const { code, lines, stderr } = await runMain({
      REDIS_URL: UNREACHABLE_REDIS,
      KNOWLEDGE_SOURCES: JSON.stringify({ demo: './no/such/knowledge' }),
    });
    expect(stderr).toBe('config error: KNOWLEDGE_SOURCES site "demo": ./no/such/knowledge does not exist\n');
    expect(lines).toEqual([]);
    expect(code).toBe(1);
  });

  it('a fallback server without a fallback model stops it with one line', async () => {
    const { code, stderr } = await runMain({ OPENAI_FALLBACK_BASE_URL: 'http://127.0.0.1:9/v1' });
    expect(stderr).toBe('config error: OPENAI_FALLBACK_BASE_URL is set but OPENAI_FALLBACK_MODEL is not\n');
    expect(code).toBe(1);
  });

  it('with only OPENAI_BASE_URL calls that server without a key (no mock)', async () => {
    const { code, lines } = await runMain({
      REDIS_URL: UNREACHABLE_REDIS,
      OPENAI_BASE_URL: 'http://127.0.0.1:9/v1',
    });
    expect(lines.map((l) => l.msg)).toContain(
      'no OPENAI_API_KEY: calling http://127.0.0.1:9/v1 without a key',
    );
    expect(lines.some((l) => String(l.msg).includes('bundled mock'))).toBe(false);
    expect(code).toBe(1);
  });
});
