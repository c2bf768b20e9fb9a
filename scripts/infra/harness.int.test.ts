import { spawnSync } from 'node:child_process';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureInstalled, serviceStatus, startService, stopService } from './harness.js';
import type { HarnessOptions } from './harness.js';
import { isAlive, isPortFree } from './process-control.js';

// Away from the defaults, so a stack started with `npm run infra` does not get in the way.
const NGINX_PORT = 18080;
const BUSY_PORT = 18081;
const PROMETHEUS_PORT = 19090;

const NGINX_CONF = `worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path tmp/client_body;
  proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi;
  scgi_temp_path tmp/scgi;
  server {
    listen 127.0.0.1:\${NGINX_PORT};
    location / { return 200 "hello from \${GREETING}\\n"; }
  }
}
`;

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

describe('infra harness (nginx, prometheus)', () => {
  let workDir = '';
  const progress: string[] = [];
  const options = (): HarnessOptions => ({
    // A private work dir: pid files and data never mix with the developer's `.work/`.
    env: { RELAY_WORK_DIR: workDir, GREETING: 'the harness' },
    progress: (line) => progress.push(line),
  });
  const pidFile = (name: string): string => join(workDir, 'run', `${name}.pid`);

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'relay-infra-'));
    await ensureInstalled(['nginx', 'prometheus'], options());
    await writeFile(join(workDir, 'nginx.conf'), NGINX_CONF);
  });

  afterAll(async () => {
    await stopService('nginx', options());
    await stopService('prometheus', options());
    await rm(workDir, { recursive: true, force: true });
  });

  it('stopping a service that is not running is a no-op', async () => {
    await expect(stopService('prometheus', options())).resolves.toBeUndefined();
    expect(await serviceStatus('prometheus', { ...options(), port: PROMETHEUS_PORT })).toEqual({
      name: 'prometheus',
      pid: null,
      port: PROMETHEUS_PORT,
      healthy: false,
    });
  });

  it('treats a pid file naming a dead or unrelated process as stale and never signals it', async () => {
    await mkdir(join(workDir, 'run'), { recursive: true });
    const dead = spawnSync('true').pid;
    await writeFile(pidFile('nginx'), `${dead}\n`);
    expect((await serviceStatus('nginx', options())).pid).toBeNull();
    await stopService('nginx', options());
    expect(await exists(pidFile('nginx'))).toBe(false);

    // A live process that is not nginx (this test runner) must survive stopService.
    await writeFile(pidFile('nginx'), `${process.pid}\n`);
    await stopService('nginx', options());
    expect(await exists(pidFile('nginx'))).toBe(false);
    expect(progress.some((line) => line.includes('removed stale pid file'))).toBe(true);
  });

  it('starts nginx from a conf template, answers HTTP, is idempotent and stops by pid', async () => {
    await mkdir(join(workDir, 'run'), { recursive: true });
    await writeFile(pidFile('nginx'), `${spawnSync('true').pid}\n`);
    const confPath = join(workDir, 'nginx.conf');

    const first = await startService('nginx', { ...options(), port: NGINX_PORT, confPath });
    expect(first).toMatchObject({ name: 'nginx', port: NGINX_PORT, healthy: true, startedNow: true });
    const response = await fetch(`http://127.0.0.1:${NGINX_PORT}/`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('hello from the harness\n');

    const reported: string[] = [];
    const again = await startService('nginx', {
      ...options(),
      port: NGINX_PORT,
      confPath,
      reportStarted: reported,
    });
    expect(again).toMatchObject({ pid: first.pid, startedNow: false });
    expect(reported).toEqual([]);
    expect(await serviceStatus('nginx', options())).toEqual({
      name: 'nginx',
      pid: first.pid,
      port: NGINX_PORT,
      healthy: true,
    });

    await stopService('nginx', options());
    expect(await isAlive(first.pid ?? 0)).toBe(false);
    expect(await isPortFree(NGINX_PORT)).toBe(true);
    expect(await exists(pidFile('nginx'))).toBe(false);
  });

  it('refuses a port held by a process it did not start, naming the port', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(BUSY_PORT, '127.0.0.1', resolve));
    try {
      await expect(
        startService('nginx', { ...options(), port: BUSY_PORT, confPath: join(workDir, 'nginx.conf') }),
      ).rejects.toThrow(`port ${BUSY_PORT}`);
      expect(await exists(pidFile('nginx'))).toBe(false);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('rejects a Prometheus config that promtool finds invalid', async () => {
    const confPath = join(workDir, 'bad-prometheus.yml');
    await writeFile(confPath, 'scrape_configs:\n  - job_name: x\n    scrape_interval: soon\n');
    await expect(
      startService('prometheus', { ...options(), port: PROMETHEUS_PORT, confPath }),
    ).rejects.toThrow('promtool check config');
    expect(await isPortFree(PROMETHEUS_PORT)).toBe(true);
  });

  it('starts Prometheus with a checked config, reports ready, then stops', async () => {
    const confPath = join(workDir, 'prometheus.yml');
    await writeFile(
      confPath,
      `global: { scrape_interval: 1s }\nscrape_configs:\n  - job_name: self\n    static_configs: [{ targets: ['127.0.0.1:${PROMETHEUS_PORT}'] }]\n`,
    );
    const started = await startService('prometheus', { ...options(), port: PROMETHEUS_PORT, confPath });
    expect(started).toMatchObject({ port: PROMETHEUS_PORT, healthy: true, startedNow: true });
    expect((await fetch(`http://127.0.0.1:${PROMETHEUS_PORT}/-/ready`)).status).toBe(200);

    await stopService('prometheus', options());
    expect(await isAlive(started.pid ?? 0)).toBe(false);
    expect(await isPortFree(PROMETHEUS_PORT)).toBe(true);
  });
});
