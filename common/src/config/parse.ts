import { z } from 'zod';
import { ConfigError } from '../errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** A small piece of configuration: the env variables it reads (a zod shape) and how it builds its section. */
export interface ConfigFragment<S extends z.ZodRawShape, T> {
  readonly shape: S;
  build(env: z.output<z.ZodObject<S>>): T;
}

export function fragment<S extends z.ZodRawShape, T>(
  shape: S,
  build: (env: z.output<z.ZodObject<S>>) => T,
): ConfigFragment<S, T> {
  return { shape, build };
}

type AnyFragment = ConfigFragment<z.ZodRawShape, unknown>;
export type ConfigOf<F extends Record<string, AnyFragment>> = {
  [K in keyof F]: ReturnType<F[K]['build']>;
};

/**
 * Parses the environment once against the union of the fragments' variables and returns one
 * section per fragment. The first invalid variable becomes a ConfigError with a one-line message.
 */
export function loadConfig<F extends Record<string, AnyFragment>>(fragments: F, env: Env): ConfigOf<F> {
  const shape: z.ZodRawShape = {};
  for (const f of Object.values(fragments)) Object.assign(shape, f.shape);
  // Empty strings count as unset, as they do in docker-compose files and shells.
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') cleaned[k] = v;
  const result = z.object(shape).safeParse(cleaned);
  if (!result.success) {
    const issue = result.error.issues[0];
    const variable = String(issue?.path[0] ?? 'environment');
    const got = cleaned[variable];
    // OTEL_EXPORTER_OTLP_HEADERS usually holds an API key.
    const shown =
      got === undefined
        ? 'unset'
        : /KEY|SECRET|PASSWORD|TOKEN|HEADERS/i.test(variable)
          ? '***'
          : JSON.stringify(got);
    throw new ConfigError(
      variable,
      `config error: ${variable} ${issue?.message ?? 'is invalid'} (got ${shown})`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(fragments)) out[name] = f.build(result.data);
  return out as ConfigOf<F>;
}

// ---- value parsers shared by the fragments ----

export const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^-?\d+$/, { message: `must be an integer between ${min} and ${max}` })
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, { message: `must be >= ${min}` })
        .max(max, { message: `must be <= ${max}` }),
    );

export const port = () => int(0, 65535);

/** Booleans are explicit: "true"/"false"/"1"/"0" (never z.coerce.boolean(), which reads "false" as true). */
export const bool = () =>
  z
    .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
    .transform((v) => v === 'true' || v === '1');

export const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    },
    { message: `must be a ${protocols.join('/')} URL` },
  );

export const list = () =>
  z.string().transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

/**
 * For main.ts: loads the config or reports the one-line error through `fail` (which writes it and
 * exits). Other errors are bugs and propagate.
 */
export function loadConfigOrFail<F extends Record<string, AnyFragment>>(
  fragments: F,
  env: Env,
  fail: (line: string) => never,
): ConfigOf<F> {
  try {
    return loadConfig(fragments, env);
  } catch (err) {
    if (err instanceof ConfigError) return fail(err.message);
    throw err;
  }
}
