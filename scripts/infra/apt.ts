import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { InfraError } from './errors.js';
import type { Progress } from './progress.js';
import { scoped, seconds } from './progress.js';
import { run, runChecked } from './process-control.js';

/** Where Debian puts daemons; not always on a non-root PATH. */
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of an executable found on PATH or in the system dirs, or null. */
export async function findBinary(name: string): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory; keep looking.
    }
  }
  return null;
}

export async function requireBinary(name: string, installHint: string): Promise<string> {
  const path = await findBinary(name);
  if (!path) throw new InfraError(`${name} not found; run \`npm run infra -- install ${installHint}\``);
  return path;
}

/**
 * A Debian package to install when `binary` is missing. `packages` are alternatives, first
 * available wins (nginx-light is gone from newer releases, where plain nginx replaces it).
 */
export interface AptRequirement {
  binary: string;
  packages: readonly string[];
}

let updated = false;
let queue: Promise<unknown> = Promise.resolve();

/** Installs the packages of the requirements whose binary is missing; one apt-get call for all. */
export function ensurePackages(requirements: readonly AptRequirement[], progress: Progress): Promise<void> {
  // apt holds a global lock: serialise callers within this process instead of failing on it.
  const next = queue.then(() => installMissing(requirements, progress));
  queue = next.catch(() => undefined);
  return next;
}

async function installMissing(requirements: readonly AptRequirement[], progress: Progress): Promise<void> {
  const missing: AptRequirement[] = [];
  for (const requirement of requirements) {
    if (!(await findBinary(requirement.binary))) missing.push(requirement);
  }
  if (missing.length === 0) return;

  const say = scoped(progress, 'apt');
  const asRoot = await rootPrefix(missing.map((m) => m.binary));
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const started = performance.now();
  if (!updated) {
    say('apt-get update …');
    await runChecked('apt-get update', ...command(asRoot, 'apt-get', ['update']), { env });
    updated = true;
  }
  const packages: string[] = [];
  for (const requirement of missing) packages.push(await pickAvailable(requirement));
  const unique = [...new Set(packages)];
  say(`installing ${unique.join(' ')} (missing: ${missing.map((m) => m.binary).join(', ')}) …`);
  await withoutServiceStarts(asRoot, async () => {
    await runChecked(
      `apt-get install ${unique.join(' ')}`,
      ...command(asRoot, 'apt-get', ['install', '-y', '--no-install-recommends', ...unique]),
      { env, onLine: (line) => line.startsWith('Setting up ') && say(line.trim()) },
    );
  });
  for (const requirement of missing) {
    if (!(await findBinary(requirement.binary))) {
      throw new InfraError(`installed ${unique.join(' ')} but ${requirement.binary} is still not found`);
    }
  }
  say(`installed in ${seconds(started)}`);
}

/** `[]` when root, `['sudo', '-n']` when sudo can be used, otherwise a clear error. */
async function rootPrefix(binaries: readonly string[]): Promise<string[]> {
  if (process.getuid?.() === 0) return [];
  if (await findBinary('sudo')) return ['sudo', '-n'];
  throw new InfraError(`${binaries.join(', ')} missing and installing needs root (no sudo found)`);
}

function command(prefix: readonly string[], program: string, args: readonly string[]): [string, string[]] {
  const [head, ...rest] = [...prefix, program, ...args];
  return [head ?? program, rest];
}

async function pickAvailable(requirement: AptRequirement): Promise<string> {
  if (requirement.packages.length === 1) return requirement.packages[0] ?? requirement.binary;
  for (const name of requirement.packages) {
    const result = await run('apt-cache', ['show', '--no-all-versions', name]);
    if (result.code === 0 && result.output.includes('Package:')) return name;
  }
  throw new InfraError(`none of the packages ${requirement.packages.join(', ')} is available from apt`);
}

const POLICY = '/usr/sbin/policy-rc.d';

/**
 * Installing redis-server, nginx or prometheus would start their system services on the very
 * ports the harness uses; a policy-rc.d that answers 101 tells the package scripts not to.
 */
async function withoutServiceStarts(asRoot: readonly string[], fn: () => Promise<void>): Promise<void> {
  const exists = await access(POLICY).then(
    () => true,
    () => false,
  );
  if (exists) return fn();
  await runChecked(
    'writing policy-rc.d',
    ...command(asRoot, 'sh', ['-c', `printf '#!/bin/sh\\nexit 101\\n' > ${POLICY} && chmod 755 ${POLICY}`]),
  );
  try {
    await fn();
  } finally {
    await runChecked('removing policy-rc.d', ...command(asRoot, 'rm', ['-f', POLICY]));
  }
}
