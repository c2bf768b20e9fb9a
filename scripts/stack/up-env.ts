/**
 * The environment `npm run stack -- up` ran with, kept for the commands after it: without it,
 * `start NAME` after `up` restarted a service with the defaults (a gateway lost the token limit it
 * was given, a service its port), and `status`/`kill` looked at default ports. `up` writes it;
 * `start`, `kill`, `status` and `down` put the current environment on top of it (a variable given
 * again wins); `down` removes it. It lives in the stack's work dir (`RELAY_WORK_DIR` must be the
 * same for both calls), readable by its owner only, like the stack's JWT secret beside it.
 */
import { readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Env } from '../infra/paths.js';
import { InfraError } from '../infra/errors.js';
import { stackDir } from './services.js';

const FILE = 'up-env.json';
/** Environment variable names as the services read them; npm's lowercase `npm_*` are left out. */
const NAME = /^[A-Z][A-Z0-9_]*$/;
const savedSchema = z.record(z.string().regex(NAME), z.string());

function fileOf(env: Env): string {
  return join(stackDir(env), FILE);
}

/** Keeps `env`'s variables for later commands (replacing what an earlier `up` kept). */
export async function saveUpEnv(env: Env): Promise<void> {
  const kept = Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => NAME.test(e[0]) && typeof e[1] === 'string'),
  );
  await mkdir(stackDir(env), { recursive: true });
  // Rewritten, not appended: mode 0600 applies to a new file, so remove any old one first.
  await rm(fileOf(env), { force: true });
  await writeFile(fileOf(env), `${JSON.stringify(kept)}\n`, { mode: 0o600 });
}

/** `env` on top of what `up` was given; `env` alone when no `up` ran (or after `down`). */
export async function withUpEnv(env: Env): Promise<Env> {
  let text: string;
  try {
    text = await readFile(fileOf(env), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return env;
    throw err;
  }
  let saved: Record<string, string>;
  try {
    saved = savedSchema.parse(JSON.parse(text));
  } catch (err) {
    throw new InfraError(
      `${fileOf(env)} is not what \`up\` writes (remove it, or run \`down\`): ${String(err)}`,
    );
  }
  return { ...saved, ...env };
}

export async function forgetUpEnv(env: Env): Promise<void> {
  await rm(fileOf(env), { force: true });
}
