import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** Runs a service entry point with extra env and returns its exit code and stderr. */
function runMain(
  entry: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', entry], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('a broken config value stops a service with one clear line', () => {
  it.each([
    ['websocket-server/src/main.ts', 'REDIS_PORT', 'not-a-port'],
    ['websocket-server/src/main.ts', 'JWT_SECRET', 'short'],
    ['ai-consumer/src/main.ts', 'MAX_WORKERS', '0'],
    ['ai-consumer/src/main.ts', 'KNOWLEDGE_SOURCES', '{"demo": "/no/such/knowledge"}'],
    ['ai-consumer/src/main.ts', 'KNOWLEDGE_MIN_SCORE', '2'],
    ['ai-consumer/src/main.ts', 'OPENAI_FALLBACK_API_KEY', 'sk-orphan'],
    ['app/main.ts', 'KNOWLEDGE_SOURCES', 'not json'],
    ['message-relay/src/main.ts', 'KAFKA_BOOTSTRAP_SERVERS', 'nohostport'],
    ['message-relay/src/main.ts', 'KAFKA_CLIENT', 'librdkafka'],
    ['ai-consumer/src/mock-openai/main.ts', 'MOCK_OPENAI_TTFT_MS', '-5'],
  ])('%s with %s=%s', async (entry, variable, value) => {
    // Every other required variable is valid, so the one broken value is what stops the service.
    const { code, stderr } = await runMain(entry, { JWT_SECRET: 'x'.repeat(32), [variable]: value });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^config error: ${variable} `));
  });
});
