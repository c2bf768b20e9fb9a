import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { findBinary, requireBinary } from './apt.js';
import { repoRoot } from './paths.js';
import { checkPort, defaultPorts, portFromEnv } from './ports.js';
import { runChecked } from './process-control.js';
import { httpStatus } from './probes.js';
import type { ServiceDefinition } from './service.js';

const DEFAULT_CONFIG = join(repoRoot, 'prometheus', 'alertmanager.yml');

/** Debian names the binary after its package; the upstream tarball calls it `alertmanager`. */
const BINARIES = ['prometheus-alertmanager', 'alertmanager'] as const;

async function alertmanagerBinary(): Promise<string> {
  for (const name of BINARIES) {
    const path = await findBinary(name);
    if (path) return path;
  }
  return requireBinary(BINARIES[0], 'alertmanager');
}

export const alertmanager: ServiceDefinition = {
  name: 'alertmanager',
  processMarker: 'alertmanager',
  portVariables: ['ALERTMANAGER_PORT'],
  startTimeoutMs: 20_000,
  stopTimeoutMs: 10_000,
  // Debian's package ships amtool too.
  requirements: [{ binary: 'prometheus-alertmanager', packages: ['prometheus-alertmanager'] }],

  ports(context, options) {
    const port =
      options.port !== undefined
        ? checkPort(options.port, 'alertmanager port')
        : portFromEnv(context.env, 'ALERTMANAGER_PORT', defaultPorts.alertmanager);
    return { port, all: [port] };
  },

  async prepare(context, options, ports) {
    const binary = await alertmanagerBinary();
    const config = resolve(options.confPath ?? context.env.ALERTMANAGER_CONFIG ?? DEFAULT_CONFIG);
    const amtool = await findBinary('amtool');
    if (amtool) {
      await runChecked(`amtool check-config ${config}`, amtool, ['check-config', config], {
        env: context.env,
      });
    }
    const storage = context.files.dataDir;
    await mkdir(storage, { recursive: true });
    return {
      command: binary,
      args: [
        `--config.file=${config}`,
        `--storage.path=${storage}`,
        `--web.listen-address=127.0.0.1:${ports.port}`,
        // One instance: no gossip cluster, so nothing binds its default port 9094 on all interfaces.
        '--cluster.listen-address=',
      ],
      cwd: storage,
    };
  },

  async probe(port) {
    return (await httpStatus(`http://127.0.0.1:${port}/-/ready`)) === 200;
  },
};
