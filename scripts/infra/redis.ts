import { mkdir } from 'node:fs/promises';
import { requireBinary } from './apt.js';
import { checkPort, defaultPorts, portFromEnv } from './ports.js';
import { tcpExchange } from './probes.js';
import type { ServiceDefinition } from './service.js';

export const redis: ServiceDefinition = {
  name: 'redis',
  processMarker: 'redis-server',
  portVariables: ['REDIS_PORT'],
  startTimeoutMs: 20_000,
  stopTimeoutMs: 10_000,
  requirements: [{ binary: 'redis-server', packages: ['redis-server'] }],

  ports(context, options) {
    const port =
      options.port !== undefined
        ? checkPort(options.port, 'redis port')
        : portFromEnv(context.env, 'REDIS_PORT', defaultPorts.redis);
    return { port, all: [port] };
  },

  async prepare(context, _options, ports) {
    await mkdir(context.files.dataDir, { recursive: true });
    const binary = await requireBinary('redis-server', 'redis');
    return {
      command: binary,
      // Everything on the command line: the system /etc/redis config is never read.
      args: [
        '--port',
        String(ports.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        context.files.dataDir,
        // Append-only like production (docker-compose): replay logs and dedupe markers must survive
        // a Redis restart, which the chaos suite does on purpose. No RDB snapshots.
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'everysec',
        '--daemonize',
        'no',
        '--logfile',
        '',
      ],
      cwd: context.files.dataDir,
    };
  },

  async probe(port) {
    return (await tcpExchange(port, 'PING\r\n'))?.startsWith('+PONG') ?? false;
  },
};
