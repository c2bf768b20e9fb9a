// Process entry of the mock OpenAI server (`npm run mock-openai -w @relay/ai-consumer`), used by the local
// stack. The only file here that touches `process`.
//
// Env: MOCK_OPENAI_HOST (default 127.0.0.1), MOCK_OPENAI_PORT (default 8090), MOCK_OPENAI_TTFT_MS,
// MOCK_OPENAI_TOKEN_MS, MOCK_OPENAI_MIN_TOKENS, MOCK_OPENAI_FAIL_RATE (0..1), MOCK_OPENAI_SEED, MOCK_OPENAI_MODEL; unset or empty
// means the default of `options.ts`.
import { z } from 'zod';

import { createMockOpenAI } from './mock-openai-server.js';
import type { MockOpenAIOptions } from './options.js';

const SHUTDOWN_DEADLINE_MS = 5_000;

const nonNegativeInteger = (name: string) =>
  z
    .string()
    .regex(/^\d+$/u, `${name} must be a non-negative integer`)
    .transform(Number)
    .refine(Number.isSafeInteger, `${name} must be a non-negative integer`);

const envSchema = z.object({
  MOCK_OPENAI_HOST: z.string().optional(),
  MOCK_OPENAI_PORT: nonNegativeInteger('MOCK_OPENAI_PORT')
    .refine((port) => port <= 65535, 'MOCK_OPENAI_PORT must be an integer between 0 and 65535')
    .optional(),
  MOCK_OPENAI_TTFT_MS: nonNegativeInteger('MOCK_OPENAI_TTFT_MS').optional(),
  MOCK_OPENAI_TOKEN_MS: nonNegativeInteger('MOCK_OPENAI_TOKEN_MS').optional(),
  MOCK_OPENAI_MIN_TOKENS: nonNegativeInteger('MOCK_OPENAI_MIN_TOKENS').optional(),
  MOCK_OPENAI_FAIL_RATE: z
    .string()
    .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/u, 'MOCK_OPENAI_FAIL_RATE must be a number between 0 and 1')
    .transform(Number)
    .optional(),
  MOCK_OPENAI_SEED: nonNegativeInteger('MOCK_OPENAI_SEED').optional(),
  MOCK_OPENAI_MODEL: z.string().optional(),
});

function log(msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(
    `${JSON.stringify({ level: 30, time: Date.now(), service: 'mock-openai', msg, ...fields })}\n`,
  );
}

function fail(line: string): never {
  process.stderr.write(`${line}\n`);
  process.exit(1);
}

// Empty strings count as unset, so `MOCK_OPENAI_PORT=` in an env file falls back to the default.
const rawEnv = Object.fromEntries(
  Object.keys(envSchema.shape).flatMap((name) => {
    const value = process.env[name];
    return value === undefined || value.trim() === '' ? [] : [[name, value.trim()]];
  }),
);
const parsed = envSchema.safeParse(rawEnv);
if (!parsed.success) {
  const issue = parsed.error.issues[0];
  fail(`config error: ${issue?.message ?? 'invalid MOCK_OPENAI_* environment'}`);
}
const env = parsed.data;
const options: MockOpenAIOptions = {
  host: env.MOCK_OPENAI_HOST,
  port: env.MOCK_OPENAI_PORT,
  ttftMs: env.MOCK_OPENAI_TTFT_MS,
  tokenMs: env.MOCK_OPENAI_TOKEN_MS,
  minTokens: env.MOCK_OPENAI_MIN_TOKENS,
  failRate: env.MOCK_OPENAI_FAIL_RATE,
  seed: env.MOCK_OPENAI_SEED,
  model: env.MOCK_OPENAI_MODEL,
};

const mock = createMockOpenAI(options);
let url: string;
try {
  ({ url } = await mock.start());
} catch (error) {
  fail(`mock OpenAI server failed to start: ${error instanceof Error ? error.message : String(error)}`);
}
log('mock OpenAI server listening', { url, baseURL: `${url}/v1` });

let shuttingDown = false;
function shutdown(signal: NodeJS.Signals): void {
  // A second signal means "now": skip the graceful path.
  if (shuttingDown) process.exit(1);
  shuttingDown = true;
  const deadline = setTimeout(
    () => fail(`mock OpenAI server did not close within ${SHUTDOWN_DEADLINE_MS} ms`),
    SHUTDOWN_DEADLINE_MS,
  );
  deadline.unref();
  mock.close().then(
    () => {
      log('mock OpenAI server closed', { signal, ...mock.stats() });
      process.exit(0);
    },
    (error: unknown) =>
      fail(`mock OpenAI server failed to close: ${error instanceof Error ? error.message : String(error)}`),
  );
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
