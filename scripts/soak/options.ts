import { z } from 'zod';

const positive = z.coerce.number().positive();
const positiveInt = z.coerce.number().int().positive();

/** Soak options; CLI flags are parsed into this and validated once. */
export const soakOptionsSchema = z.object({
  /** How long the load runs, minutes (fractions allowed). @default 30 */
  minutes: positive.default(30),
  /** Messages per second over all users, open loop. @default 50 */
  rate: positive.default(50),
  /**
   * Users, each with one socket, sent to in turn: each sends `rate / users` messages per second,
   * so keep that well under the per-user limit (RATE_LIMIT_MESSAGES per RATE_LIMIT_WINDOW_MS,
   * 20 per 10 s by default). @default 100
   */
  users: positiveInt.default(100),
  /** Share of the users that opt in to `response.delta` frames. @default 0.5 */
  streamShare: z.coerce.number().min(0).max(1).default(0.5),
  /**
   * A running deployment (`npm start`, the stack's nginx, …). Without it the soak starts `npm start`
   * itself and stops it at the end.
   */
  url: z.string().url().optional(),
  /** Processes to sample with `url`; default: the local process listening on the URL's port. */
  pids: z.array(z.coerce.number().int().positive()).default([]),
  /** With `url`: sample every service of the local stack (`npm run stack -- status --json`). */
  stack: z.boolean().default(false),
  /** Port for the `npm start` the soak starts (0: any free one). @default 0 */
  port: z.coerce.number().int().min(0).max(65535).default(0),
  /** Checkout to run that `npm start` in, e.g. a worktree at an older commit for a baseline. */
  serverCwd: z.string().optional(),
  /** NODE_OPTIONS for that server only (e.g. `--heapsnapshot-signal=SIGUSR2`). */
  serverNodeOptions: z.string().optional(),
  /** Seconds between RSS samples. @default 60 */
  sampleSeconds: positive.default(60),
  /** After the last message, seconds to wait for answers before counting them lost. @default 30 */
  grace: positive.default(30),
  /**
   * Minutes of warm-up the verdict ignores (JIT, pools, caches filling up to their caps); at most a
   * fifth of the run. @default 2
   */
  warmupMinutes: z.coerce.number().nonnegative().default(2),
  /** Growth still counted as flat, percent (see `judge`). @default 10 */
  tolerancePct: z.coerce.number().nonnegative().default(10),
  /** `post`: POST /token per user; `secret:<file>`: sign tokens locally with the gateways' JWT secret. */
  tokenSource: z
    .string()
    .regex(/^(post|secret:.+)$/)
    .default('post'),
  /** Characters of content per message. @default 40 */
  contentLength: positiveInt.default(40),
  /** Result file (JSON). @default .work/soak/result.json */
  json: z.string().default('.work/soak/result.json'),
  /** Where the started server's output goes. @default .work/soak/server.log */
  serverLog: z.string().default('.work/soak/server.log'),
});

export type SoakOptions = z.infer<typeof soakOptionsSchema>;

/**
 * Environment for the server the soak starts, so the soak measures the pipeline, not a limiter:
 * the per-IP token limit out of the way (every user fetches its token from one address), a
 * per-user message limit with twice the headroom the schedule needs, and model slots for twice
 * the rate (the bundled mock takes ~0.7 s per answer, so the default MAX_WORKERS=10 caps the
 * pipeline near 15 answers/s and a faster schedule would only measure a growing backlog). Variables
 * set in the environment win.
 */
export function serverLimitsEnv(
  options: Pick<SoakOptions, 'rate' | 'users'>,
  env: NodeJS.ProcessEnv = {},
): Record<string, string> {
  const windowMs = Number(env.RATE_LIMIT_WINDOW_MS ?? 10_000);
  const perWindow = Math.ceil((options.rate / options.users) * (windowMs / 1000) * 2);
  return {
    TOKEN_RATE_LIMIT_PER_MINUTE: env.TOKEN_RATE_LIMIT_PER_MINUTE ?? '100000',
    RATE_LIMIT_MESSAGES: env.RATE_LIMIT_MESSAGES ?? String(Math.max(20, perWindow)),
    RATE_LIMIT_WINDOW_MS: String(windowMs),
    MAX_WORKERS: env.MAX_WORKERS ?? String(Math.max(10, Math.ceil(options.rate * 2))),
  };
}

/** Whether user `i` of `users` streams: spread evenly, `share × users` of them. */
export function streams(i: number, share: number): boolean {
  return Math.floor((i + 1) * share) > Math.floor(i * share);
}
