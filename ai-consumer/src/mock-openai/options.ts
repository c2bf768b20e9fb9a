import { z } from 'zod';

/** Options of {@link createMockOpenAI}. Every field is optional; the defaults suit local development. */
export interface MockOpenAIOptions {
  /**
   * Interface to listen on. An unspecified address (`0.0.0.0`, `::`) is reported as loopback in `url`.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * TCP port; `0` picks a free ephemeral port (read it back from `start()` or `url`).
   * @default 8090
   */
  port?: number;
  /**
   * Time to first token: how long a completion waits before its first content token.
   * A non-zero default so the UI visibly streams.
   * @default 200
   */
  ttftMs?: number;
  /**
   * Pause between two streamed tokens; `0` streams as fast as the socket takes them.
   * @default 25
   */
  tokenMs?: number;
  /**
   * Shortest answer, in tokens: the answer is padded with picked words up to this length, for load
   * tests that want realistic answer lengths (the natural mock answer is 6 to ~18 tokens).
   * @default 0
   */
  minTokens?: number;
  /**
   * Probability (0..1) that a chat completion answers 500 with an OpenAI-style error body.
   * Drawn from a PRNG seeded with `seed`, so a given server instance fails on the same requests every run.
   * @default 0
   */
  failRate?: number;
  /**
   * Seed of the PRNG behind `failRate`.
   * @default 1
   */
  seed?: number;
  /**
   * Model id listed by `GET /v1/models`. Completions echo whatever model the request names.
   * @default 'mock-gpt'
   */
  model?: string;
}

export const MOCK_OPENAI_DEFAULTS = {
  host: '127.0.0.1',
  port: 8090,
  ttftMs: 200,
  tokenMs: 25,
  minTokens: 0,
  failRate: 0,
  seed: 1,
  model: 'mock-gpt',
} as const satisfies Required<MockOpenAIOptions>;

export const mockOpenAIOptionsSchema = z.object({
  host: z.string().min(1).default(MOCK_OPENAI_DEFAULTS.host),
  port: z.number().int().min(0).max(65535).default(MOCK_OPENAI_DEFAULTS.port),
  ttftMs: z.number().min(0).default(MOCK_OPENAI_DEFAULTS.ttftMs),
  tokenMs: z.number().min(0).default(MOCK_OPENAI_DEFAULTS.tokenMs),
  minTokens: z.number().int().min(0).max(100_000).default(MOCK_OPENAI_DEFAULTS.minTokens),
  failRate: z.number().min(0).max(1).default(MOCK_OPENAI_DEFAULTS.failRate),
  seed: z.number().int().default(MOCK_OPENAI_DEFAULTS.seed),
  model: z.string().min(1).default(MOCK_OPENAI_DEFAULTS.model),
});

export type ResolvedMockOpenAIOptions = z.output<typeof mockOpenAIOptionsSchema>;

// Compile-time guard: the documented interface and the schema must accept the same input.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _optionsMatchSchema: Same<MockOpenAIOptions, z.input<typeof mockOpenAIOptionsSchema>> = true;

/** Applies defaults and validates; throws a `ZodError` on a bad value (a programming error, not user input). */
export function resolveMockOpenAIOptions(options: MockOpenAIOptions): ResolvedMockOpenAIOptions {
  return mockOpenAIOptionsSchema.parse(options);
}
