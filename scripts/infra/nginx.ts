import { access, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { requireBinary } from './apt.js';
import { InfraError } from './errors.js';
import { repoRoot } from './paths.js';
import { checkPort, defaultPorts, portFromEnv } from './ports.js';
import { runChecked } from './process-control.js';
import { httpStatus } from './probes.js';
import type { ServiceDefinition } from './service.js';
import { renderTemplate } from './template.js';

const TEMP_DIRS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'];

/**
 * The conf is a template: `${NGINX_PORT}`, `${NGINX_PREFIX}`, `${REPO_ROOT}`, `${RELAY_WORK_DIR}`
 * and any upper-case environment variable are filled in, and the result is written to
 * `<work>/nginx/conf/nginx.conf`. Relative paths in it resolve against the prefix `<work>/nginx/`
 * (so `client_body_temp_path tmp/client_body;` stays inside the work dir); it must not set
 * `daemon` or `pid`, which the harness passes on the command line.
 */
export const nginx: ServiceDefinition = {
  name: 'nginx',
  processMarker: 'nginx',
  portVariables: ['NGINX_PORT'],
  startTimeoutMs: 20_000,
  stopTimeoutMs: 10_000,
  requirements: [{ binary: 'nginx', packages: ['nginx-light', 'nginx'] }],

  ports(context, options) {
    const port =
      options.port !== undefined
        ? checkPort(options.port, 'nginx port')
        : portFromEnv(context.env, 'NGINX_PORT', defaultPorts.nginx);
    return { port, all: [port] };
  },

  async prepare(context, options, ports) {
    const binary = await requireBinary('nginx', 'nginx');
    const prefix = context.files.dataDir;
    const source = resolve(
      options.confPath ?? context.env.NGINX_CONF ?? join(repoRoot, 'nginx', 'nginx.conf'),
    );
    const template = await readFile(source, 'utf8').catch((error: unknown) => {
      throw new InfraError(
        `nginx: cannot read config ${source}; pass confPath or set NGINX_CONF`,
        undefined,
        {
          cause: error,
        },
      );
    });
    const confDir = join(prefix, 'conf');
    await Promise.all(
      ['logs', confDir, ...TEMP_DIRS.map((d) => join('tmp', d))].map((d) =>
        mkdir(resolve(prefix, d), { recursive: true }),
      ),
    );
    const rendered = renderTemplate(
      template,
      {
        ...context.env,
        NGINX_PORT: String(ports.port),
        NGINX_PREFIX: prefix,
        REPO_ROOT: repoRoot,
        RELAY_WORK_DIR: context.paths.workDir,
      },
      source,
    );
    const conf = join(confDir, 'nginx.conf');
    await writeFile(conf, rendered);
    // `include mime.types;` is relative to the conf dir; keep the distribution's file at hand.
    const mimeTypes = '/etc/nginx/mime.types';
    if (
      await access(mimeTypes).then(
        () => true,
        () => false,
      )
    )
      await copyFile(mimeTypes, join(confDir, 'mime.types'));

    const args = [
      '-p',
      `${prefix}/`,
      '-e',
      'stderr',
      '-c',
      conf,
      '-g',
      `daemon off; pid ${join(prefix, 'nginx.pid')};`,
    ];
    // nginx -t names the offending line; far clearer than a process that exits during start-up.
    await runChecked(`nginx -t (${source})`, binary, ['-t', '-q', ...args], { env: context.env });
    return { command: binary, args, cwd: prefix };
  },

  async probe(port) {
    return (await httpStatus(`http://127.0.0.1:${port}/`)) !== null;
  },
};
