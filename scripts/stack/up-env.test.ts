import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InfraError } from '../infra/errors.js';
import { forgetUpEnv, saveUpEnv, withUpEnv } from './up-env.js';

async function workDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'relay-up-env-'));
}

describe('the environment up was given', () => {
  it('is under a later command: what the command sets again wins, the rest comes from up', async () => {
    const RELAY_WORK_DIR = await workDir();
    await saveUpEnv({
      RELAY_WORK_DIR,
      NGINX_PORT: '9000',
      TOKEN_RATE_LIMIT_PER_MINUTE: '5',
      npm_config_cache: '/somewhere',
    });
    const env = await withUpEnv({ RELAY_WORK_DIR, NGINX_PORT: '9100' });
    expect(env).toMatchObject({ NGINX_PORT: '9100', TOKEN_RATE_LIMIT_PER_MINUTE: '5' });
    // npm's own lowercase variables are not the stack's settings.
    expect(env.npm_config_cache).toBeUndefined();
    const file = join(RELAY_WORK_DIR, 'stack', 'up-env.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('is replaced by the next up and gone after down', async () => {
    const RELAY_WORK_DIR = await workDir();
    await saveUpEnv({ RELAY_WORK_DIR, LOG_LEVEL: 'debug', MAX_WORKERS: '7' });
    await saveUpEnv({ RELAY_WORK_DIR, LOG_LEVEL: 'warn' });
    expect(await withUpEnv({ RELAY_WORK_DIR })).toEqual({ RELAY_WORK_DIR, LOG_LEVEL: 'warn' });
    await forgetUpEnv({ RELAY_WORK_DIR });
    expect(await withUpEnv({ RELAY_WORK_DIR })).toEqual({ RELAY_WORK_DIR });
  });

  it('refuses a file it did not write, naming it', async () => {
    const RELAY_WORK_DIR = await workDir();
    await saveUpEnv({ RELAY_WORK_DIR });
    const file = join(RELAY_WORK_DIR, 'stack', 'up-env.json');
    await writeFile(file, '{"PORT": 5}');
    await expect(withUpEnv({ RELAY_WORK_DIR })).rejects.toBeInstanceOf(InfraError);
    await expect(withUpEnv({ RELAY_WORK_DIR })).rejects.toThrow(file);
    expect(await readFile(file, 'utf8')).toBe('{"PORT": 5}');
  });
});
