import { access, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { requireBinary } from './apt.js';
import { repoRoot } from './paths.js';
import { checkPort, defaultPorts, portFromEnv } from './ports.js';
import { runChecked } from './process-control.js';
import { httpStatus } from './probes.js';
import type { ServiceDefinition } from './service.js';

const DEFAULT_CONFIG = join(repoRoot, 'prometheus', 'prometheus.yml');

/** Starting point when the repo has no config yet: Prometheus scraping itself. */
export function minimalConfig(port: number): string {
  return [
    'global:',
    '  scrape_interval: 15s',
    '  evaluation_interval: 15s',
    '',
    'scrape_configs:',
    '  - job_name: prometheus',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${port}']`,
    '',
  ].join('\n');
}

export const prometheus: ServiceDefinition = {
  name: 'prometheus',
  processMarker: 'prometheus',
  portVariables: ['PROMETHEUS_PORT'],
  startTimeoutMs: 20_000,
  stopTimeoutMs: 10_000,
  // Debian's prometheus package ships promtool too.
  requirements: [
    { binary: 'prometheus', packages: ['prometheus'] },
    { binary: 'promtool', packages: ['prometheus'] },
  ],

  ports(context, options) {
    const port =
      options.port !== undefined
        ? checkPort(options.port, 'prometheus port')
        : portFromEnv(context.env, 'PROMETHEUS_PORT', defaultPorts.prometheus);
    return { port, all: [port] };
  },

  async prepare(context, options, ports) {
    const binary = await requireBinary('prometheus', 'prometheus');
    const promtool = await requireBinary('promtool', 'prometheus');
    const config = resolve(options.confPath ?? context.env.PROMETHEUS_CONFIG ?? DEFAULT_CONFIG);
    if (
      config === DEFAULT_CONFIG &&
      !(await access(config).then(
        () => true,
        () => false,
      ))
    ) {
      await mkdir(join(repoRoot, 'prometheus'), { recursive: true });
      await writeFile(config, minimalConfig(defaultPorts.prometheus));
      context.say(`created a minimal ${config}`);
    }
    await runChecked(`promtool check config ${config}`, promtool, ['check', 'config', config], {
      env: context.env,
    });
    const storage = context.files.dataDir;
    await mkdir(storage, { recursive: true });
    return {
      command: binary,
      args: [
        `--config.file=${config}`,
        `--storage.tsdb.path=${storage}`,
        `--web.listen-address=127.0.0.1:${ports.port}`,
      ],
      cwd: storage,
    };
  },

  async probe(port) {
    return (await httpStatus(`http://127.0.0.1:${port}/-/ready`)) === 200;
  },
};
