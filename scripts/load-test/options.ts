import { z } from 'zod';

/** Common small scenarios (users × messages per user) and larger ones. */
export const PRESETS = {
  '5x1': { users: 5, messages: 1 },
  '10x3': { users: 10, messages: 3 },
  '100x1': { users: 100, messages: 1 },
  '100x10': { users: 100, messages: 10 },
  '200x1': { users: 200, messages: 1 },
  '1000x5': { users: 1000, messages: 5 },
  '5000x1': { users: 5000, messages: 1 },
} as const;

export type PresetName = keyof typeof PRESETS;

const positiveInt = z.coerce.number().int().positive();

/** Load-test options; CLI flags are parsed into this and validated once. */
export const loadTestOptionsSchema = z.object({
  /** HTTP base of the deployment (nginx of the stack, `npm start`, any URL). */
  url: z.string().url().default('http://127.0.0.1:8080'),
  users: positiveInt.default(10),
  /** Messages each user sends. */
  messages: positiveInt.default(3),
  /** Open-loop arrival rate of messages over all users, per second (0 = all at once). */
  rate: z.coerce.number().nonnegative().default(50),
  /** Opt in to `response.delta` frames (time to first delta, gaps between deltas). */
  stream: z.boolean().default(true),
  /** Hard stop for the whole run, seconds. */
  duration: positiveInt.default(120),
  /** After the last message is sent, how long to wait for answers before counting them lost. */
  grace: positiveInt.default(30),
  /** New connections per second while connecting. */
  connectRate: positiveInt.default(500),
  /** Source addresses to spread connections over (each gives ~28k ephemeral ports), e.g. 127.0.0.1-127.0.0.8. */
  sourceAddresses: z.array(z.string()).default([]),
  /** `post`: POST /token per user; `secret:<file>`: sign tokens locally with the gateways' JWT secret. */
  tokenSource: z
    .string()
    .regex(/^(post|secret:.+)$/)
    .default('post'),
  /** Characters of content per message. */
  contentLength: positiveInt.default(40),
  /**
   * The mock model's configured time to first token and token interval (MOCK_OPENAI_TTFT_MS,
   * MOCK_OPENAI_TOKEN_MS): when given, the pipeline's own cost is reported beside the raw latencies
   * (first delta − TTFT, delta gap − token interval, final − the answer's model time).
   */
  modelTtftMs: z.coerce.number().nonnegative().optional(),
  modelTokenMs: z.coerce.number().nonnegative().optional(),
  /** Write the summary as JSON to this file. */
  json: z.string().optional(),
});

export type LoadTestOptions = z.infer<typeof loadTestOptionsSchema>;

/** `127.0.0.1-127.0.0.4` → four addresses; a plain comma list passes through. */
export function expandAddresses(spec: string): string[] {
  const out: string[] = [];
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const range = /^(\d+\.\d+\.\d+\.)(\d+)-(?:\d+\.\d+\.\d+\.)?(\d+)$/.exec(part);
    if (!range) {
      out.push(part);
      continue;
    }
    const [, prefix, from, to] = range;
    for (let i = Number(from); i <= Number(to); i++) out.push(`${prefix}${i}`);
  }
  return out;
}
