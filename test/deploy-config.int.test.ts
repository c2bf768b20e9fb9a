/**
 * Keeps the deployment files beside the code honest: nginx and Prometheus accept their configs (and
 * nginx really proxies a WebSocket), the Grafana files parse and chart metrics the code defines, and
 * docker-compose.yml only sets variables our config fragments read, with values they accept.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@relay/common';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { configFragments as consumerFragments } from '../ai-consumer/src/config.js';
import { dataPanels, loadDashboards } from './support/dashboards.js';
import { checkDashboardSchema } from './support/grafana-schema.js';
import { builtinMetricNames, metricNamesInCode, metricNamesOf } from './support/metric-names.js';
import { configFragments as relayFragments } from '../message-relay/src/config.js';
import { configFragments as gatewayFragments } from '../websocket-server/src/config.js';
import { defaultPorts } from '../scripts/infra/ports.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const at = (...parts: string[]) => join(root, ...parts);

type Yaml = Record<string, unknown>;

/** The parts of each file the checks read; anything else may be there. */
const prometheusSchema = z.object({
  global: z.object({ scrape_interval: z.string() }),
  rule_files: z.array(z.string()),
  alerting: z.object({
    alertmanagers: z.array(z.object({ static_configs: z.array(z.object({ targets: z.array(z.string()) })) })),
  }),
  scrape_configs: z.array(
    z.object({ job_name: z.string(), static_configs: z.array(z.object({ targets: z.array(z.string()) })) }),
  ),
});
const datasourcesSchema = z.object({
  datasources: z.array(z.object({ uid: z.string(), type: z.literal('prometheus'), url: z.string() })),
});
const providersSchema = z.object({
  providers: z.array(z.object({ options: z.object({ path: z.string() }) })).min(1),
});
const readYaml = async (...parts: string[]): Promise<unknown> =>
  parseYaml(await readFile(at(...parts), 'utf8'));
const isRecord = (v: unknown): v is Yaml => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Runs a checker and returns its exit status and output. `nullStdout` is for nginx: it reopens
 * /dev/stdout for its access log, which works on a file, pipe or tty but not on the socket node
 * gives a child for `pipe`.
 */
function run(command: string, args: string[], nullStdout = false): { status: number | null; output: string } {
  const r = spawnSync(command, args, {
    encoding: 'utf8',
    stdio: ['ignore', nullStdout ? 'ignore' : 'pipe', 'pipe'],
  });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr}` };
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A prefix as the local stack lays it out: conf/nginx.conf + conf/upstreams.conf, html/ beside. */
async function nginxPrefix(
  upstreams: string,
  listenPort?: number,
): Promise<{ prefix: string; conf: string }> {
  const prefix = await mkdtemp(join(tmpdir(), 'relay-nginx-'));
  // Started as root, nginx's workers run as an unprivileged user: they must be able to read html/.
  await chmod(prefix, 0o755);
  await mkdir(join(prefix, 'conf'));
  await mkdir(join(prefix, 'html'));
  let text = await readFile(at('nginx', 'nginx.conf'), 'utf8');
  if (listenPort !== undefined) {
    expect(text).toMatch(/^\s*listen 8080;$/m);
    text = text.replace(/^(\s*)listen 8080;$/m, `$1listen 127.0.0.1:${listenPort};`);
  }
  const conf = join(prefix, 'conf', 'nginx.conf');
  await writeFile(conf, text);
  await writeFile(join(prefix, 'conf', 'upstreams.conf'), upstreams);
  // `include mime.types;` resolves beside nginx.conf, as it does in the docker image.
  if (existsSync('/etc/nginx/mime.types'))
    await copyFile('/etc/nginx/mime.types', join(prefix, 'conf', 'mime.types'));
  else await writeFile(join(prefix, 'conf', 'mime.types'), 'types { text/html html; }\n');
  return { prefix, conf };
}

const nginxArgs = (prefix: string, conf: string) => [
  '-p',
  `${prefix}/`,
  '-e',
  'stderr',
  '-c',
  conf,
  '-g',
  `daemon off; pid ${join(prefix, 'nginx.pid')};`,
];

describe('nginx/nginx.conf', () => {
  it('passes nginx -t with the docker upstreams and with local ones', async () => {
    const docker = await readFile(at('nginx', 'upstreams.docker.conf'), 'utf8');
    expect(docker).toMatch(/server gateway-1:8080 max_fails=\d+ fail_timeout=\d+s;/);
    expect(docker).toMatch(/server gateway-2:8080 max_fails=\d+ fail_timeout=\d+s;/);
    // The docker names do not resolve here, so the syntax check uses loopback twins of those lines.
    const local = docker.replace(/gateway-(\d):8080/g, (_, n: string) => `127.0.0.1:808${n}`);
    const { prefix, conf } = await nginxPrefix(local);
    try {
      const r = run('nginx', ['-t', ...nginxArgs(prefix, conf)], true);
      expect(r.output).toContain('test is successful');
      expect(r.status).toBe(0);
    } finally {
      await rm(prefix, { recursive: true, force: true });
    }
  });

  describe('a running nginx in front of a fake gateway', () => {
    let nginx: ChildProcess | undefined;
    let gateway: Server | undefined;
    let wss: WebSocketServer | undefined;
    let prefix = '';
    let base = '';
    let nginxLog = '';
    let accessLog = '';
    const seen: Array<{ url: string; headers: IncomingMessage['headers'] }> = [];

    beforeAll(async () => {
      gateway = createServer((req, res) => {
        seen.push({ url: req.url ?? '', headers: req.headers });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
      });
      wss = new WebSocketServer({ server: gateway });
      wss.on('connection', (socket, req) => {
        seen.push({ url: req.url ?? '', headers: req.headers });
        socket.on('message', (data) => socket.send(`echo:${String(data)}`));
      });
      await new Promise<void>((done) => gateway?.listen(0, '127.0.0.1', done));
      const address = gateway.address();
      if (!address || typeof address === 'string') throw new Error('no gateway port');
      const port = await freePort();
      const laidOut = await nginxPrefix(
        `server 127.0.0.1:${address.port} max_fails=3 fail_timeout=10s;\n`,
        port,
      );
      prefix = laidOut.prefix;
      await writeFile(join(prefix, 'html', 'index.html'), '<!doctype html><title>relay test ui</title>');
      // stdout is the access log (nginx.conf: access_log /dev/stdout), a file here so a test reads it.
      accessLog = join(prefix, 'access.log');
      const logFd = openSync(accessLog, 'w');
      nginx = spawn('nginx', nginxArgs(prefix, laidOut.conf), { stdio: ['ignore', logFd, 'pipe'] });
      closeSync(logFd);
      // Read stderr (nginx's error log) as it comes: an unread pipe fills and blocks the workers.
      nginx.stderr?.setEncoding('utf8').on('data', (d: string) => (nginxLog = (nginxLog + d).slice(-4000)));
      base = `http://127.0.0.1:${port}`;
      await waitFor(
        async () => {
          const r = await fetch(`${base}/`, { signal: AbortSignal.timeout(2000) });
          await r.arrayBuffer();
          return r.ok;
        },
        { timeoutMs: 15_000, message: 'nginx serving html/' },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}\nnginx stderr:\n${nginxLog}`);
      });
    });

    afterAll(async () => {
      if (nginx && nginx.exitCode === null) {
        const exited = new Promise((done) => nginx?.once('exit', done));
        nginx.kill('SIGTERM');
        await exited;
      }
      wss?.close();
      await new Promise<void>((done) => (gateway ? gateway.close(() => done()) : done()));
      if (prefix) await rm(prefix, { recursive: true, force: true });
    });

    it('serves the test UI from html/', async () => {
      const r = await fetch(`${base}/`);
      expect(await r.text()).toContain('relay test ui');
      expect(r.headers.get('content-type')).toMatch(/text\/html/);
    });

    it('proxies /token and /health with the client address headers', async () => {
      const token = await fetch(`${base}/token?userid=u1`, { method: 'POST' });
      expect(await token.json()).toEqual({ path: '/token?userid=u1' });
      expect((await fetch(`${base}/health`)).status).toBe(200);
      const hit = seen.find((s) => s.url.startsWith('/token'));
      expect(hit?.headers['x-real-ip']).toBe('127.0.0.1');
      expect(hit?.headers['x-forwarded-for']).toBe('127.0.0.1');
    });

    it('upgrades /ws to a WebSocket through to the gateway', async () => {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?token=t&userid=u1`);
      const reply = await new Promise<string>((done, fail) => {
        ws.once('open', () => ws.send('ping'));
        ws.once('message', (data) => done(String(data)));
        ws.once('error', fail);
      });
      ws.close();
      expect(reply).toBe('echo:ping');
      const upgrade = seen.find((s) => s.url.startsWith('/ws'));
      expect(upgrade?.url).toBe('/ws?token=t&userid=u1');
      expect(upgrade?.headers.upgrade).toBe('websocket');
      expect(upgrade?.headers['x-real-ip']).toBe('127.0.0.1');
      expect(upgrade?.headers['x-forwarded-for']).toBe('127.0.0.1');
    });

    it('never writes a token (or any query string) to the access log', async () => {
      const secret = `secret-${Date.now().toString(36)}`;
      const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?token=${secret}&userid=u1`);
      await new Promise<void>((done, fail) => {
        ws.once('open', () => done());
        ws.once('error', fail);
      });
      ws.close();
      await fetch(`${base}/token?userid=u1&token=${secret}`, { method: 'POST' });
      // nginx writes the line when the connection ends.
      await waitFor(async () => (await readFile(accessLog, 'utf8')).includes('"POST /token'), {
        message: 'access log lines for /ws and /token',
      });
      await waitFor(async () => (await readFile(accessLog, 'utf8')).includes('"GET /ws'));
      const log = await readFile(accessLog, 'utf8');
      expect(log).not.toContain(secret);
      expect(log).not.toContain('?');
      expect(log).toMatch(/"GET \/ws HTTP\/1\.1" 101 .* upstream=127\.0\.0\.1:\d+/);
    });

    it('does not expose /ready or /metrics publicly', async () => {
      const before = seen.length;
      expect((await fetch(`${base}/metrics`)).status).toBe(404);
      expect((await fetch(`${base}/ready`)).status).toBe(404);
      expect(seen.length).toBe(before);
    });
  });
});

describe('prometheus', () => {
  it.each(['prometheus.yml', 'prometheus.local.yml'])(
    'promtool accepts %s and it scrapes every service',
    async (file) => {
      const r = run('promtool', ['check', 'config', at('prometheus', file)]);
      expect(r.output).toContain('SUCCESS');
      expect(r.status).toBe(0);
      const config = prometheusSchema.parse(await readYaml('prometheus', file));
      expect(config.global.scrape_interval).toBe('5s');
      const jobs = Object.fromEntries(
        config.scrape_configs.map((c) => [c.job_name, c.static_configs.flatMap((s) => s.targets)]),
      );
      expect(Object.keys(jobs).sort()).toEqual([
        'ai-consumer',
        'message-relay',
        'prometheus',
        'websocket-server',
      ]);
      expect(jobs['websocket-server']).toHaveLength(2);
      // Both load the alerting rules (test/alerts.int.test.ts tests them) and send to Alertmanager.
      expect(config.rule_files).toEqual(['alerts.yml']);
      const alertmanagers = config.alerting.alertmanagers.flatMap((a) =>
        a.static_configs.flatMap((c) => c.targets),
      );
      expect(alertmanagers).toEqual([
        file === 'prometheus.yml' ? 'alertmanager:9093' : `127.0.0.1:${defaultPorts.alertmanager}`,
      ]);
    },
  );

  it('amtool accepts alertmanager.yml, whose routes lead to receivers it defines', async () => {
    const r = run('amtool', ['check-config', at('prometheus', 'alertmanager.yml')]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('the local config scrapes the ports the services default to', async () => {
    const text = await readFile(at('prometheus', 'prometheus.local.yml'), 'utf8');
    expect(text).toContain(`127.0.0.1:${loadConfig(consumerFragments, {}).http.port}`);
    expect(text).toContain(`127.0.0.1:${loadConfig(relayFragments, {}).http.port}`);
  });
});

describe('grafana', () => {
  it('the provisioning files point at the dashboards and the Prometheus datasource', async () => {
    const providers = providersSchema.parse(
      await readYaml('grafana', 'provisioning', 'dashboards', 'dashboards.yml'),
    );
    expect(providers.providers[0]?.options.path).toBe('/var/lib/grafana/dashboards');
    const files = (await loadDashboards(root)).map((d) => d.file);
    expect(files).toContain('relay.json');
  });

  it("every dashboard satisfies Grafana's schema (@grafana/schema, the compose file's version)", async () => {
    const compose = await readFile(at('docker-compose.yml'), 'utf8');
    const schema = z
      .object({ version: z.string() })
      .parse(JSON.parse(await readFile(at('node_modules', '@grafana', 'schema', 'package.json'), 'utf8')));
    expect(compose).toContain(`image: grafana/grafana:${schema.version}`);
    for (const { file, text } of await loadDashboards(root)) {
      const problems = checkDashboardSchema(text, at('test'));
      expect(problems.map((p) => `${file}:${p.line}: ${p.message}`)).toEqual([]);
    }
  }, 60_000);

  it('every panel has a unique id and title, its own place, the provisioned datasource and known metrics', async () => {
    const datasources = datasourcesSchema.parse(
      await readYaml('grafana', 'provisioning', 'datasources', 'prometheus.yml'),
    );
    const uids = new Set(datasources.datasources.map((d) => d.uid));
    const rules = z
      .object({ groups: z.array(z.object({ rules: z.array(z.object({ record: z.string().optional() })) })) })
      .parse(await readYaml('prometheus', 'alerts.yml'));
    const known = new Set([
      ...(await metricNamesInCode(root)),
      ...builtinMetricNames(),
      ...rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))),
    ]);
    for (const d of await loadDashboards(root)) {
      const { panels } = d.dashboard;
      expect(new Set(panels.map((p) => p.id)).size, `${d.file}: panel ids`).toBe(panels.length);
      expect(new Set(panels.map((p) => p.title)).size, `${d.file}: panel titles`).toBe(panels.length);
      const cells = new Map<string, string>();
      for (const panel of panels) {
        const { x, y, w, h } = panel.gridPos;
        expect(x + w, `${panel.title}: past the 24 columns`).toBeLessThanOrEqual(24);
        for (let i = x; i < x + w; i++) {
          for (let j = y; j < y + h; j++) {
            const other = cells.get(`${i},${j}`);
            expect(other, `${d.file}: "${panel.title}" overlaps "${other ?? ''}"`).toBeUndefined();
            cells.set(`${i},${j}`, panel.title);
          }
        }
      }
      for (const panel of dataPanels(d)) {
        expect(uids.has(panel.datasource?.uid ?? ''), `${panel.title}: datasource`).toBe(true);
        expect(panel.targets.length, `${panel.title}: no query`).toBeGreaterThan(0);
        for (const target of panel.targets) {
          expect(uids.has(target.datasource?.uid ?? ''), `${panel.title} ${target.refId}: datasource`).toBe(
            true,
          );
          for (const metric of metricNamesOf(target.expr)) {
            expect(known, `${d.file}: "${panel.title}" reads ${metric}, which nothing defines`).toContain(
              metric,
            );
          }
        }
      }
    }
  });
});

describe('docker-compose.yml', () => {
  const ours = {
    'gateway-1': gatewayFragments,
    'gateway-2': gatewayFragments,
    'ai-consumer': consumerFragments,
    'message-relay': relayFragments,
  } as const;
  const expected = [
    'kafka',
    'redis',
    'nginx',
    'prometheus',
    'alertmanager',
    'grafana',
    'jaeger',
    'mock-openai',
    'gateway-1',
    'gateway-2',
    'ai-consumer',
    'message-relay',
  ];
  // Values for `${VAR:?…}` (required from the operator), so the env can be checked end to end.
  const required: Record<string, string> = { JWT_SECRET: 'x'.repeat(32) };

  let services: Record<string, Yaml> = {};
  beforeAll(async () => {
    const doc = z
      .object({ services: z.record(z.string(), z.record(z.string(), z.unknown())) })
      .parse(await readYaml('docker-compose.yml'));
    services = doc.services;
  });

  /** Compose interpolation for the forms we use: `${VAR}`, `${VAR:-default}`, `${VAR:?message}`. */
  function interpolate(value: unknown): string {
    return String(value).replace(
      /\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}/g,
      (_, name: string, op?: string, arg?: string) => {
        if (op === '-') return arg ?? '';
        const v = required[name];
        if (v === undefined) throw new Error(`no test value for required \${${name}}`);
        return v;
      },
    );
  }

  function envOf(service: string): Record<string, string> {
    const env = services[service]?.environment;
    if (!isRecord(env)) throw new Error(`${service}: environment must be a map`);
    return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v)]));
  }

  it('names every service, each with a healthcheck', () => {
    expect(Object.keys(services).sort()).toEqual([...expected].sort());
    for (const name of expected) {
      const healthcheck = services[name]?.healthcheck;
      expect(isRecord(healthcheck) && Array.isArray(healthcheck.test), `${name} healthcheck`).toBe(true);
    }
  });

  it('waits for healthy dependencies that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.depends_on === undefined) continue;
      expect(isRecord(service.depends_on), `${name}: depends_on must name conditions`).toBe(true);
      for (const [dep, spec] of Object.entries(service.depends_on as Yaml)) {
        expect(expected).toContain(dep);
        expect(spec).toEqual({ condition: 'service_healthy' });
      }
    }
    for (const name of Object.keys(ours)) {
      expect(Object.keys(services[name]?.depends_on as Yaml)).toEqual(
        expect.arrayContaining(['kafka', 'redis']),
      );
    }
  });

  it.each(Object.keys(ours))('%s sets only variables its config reads, with values it accepts', (service) => {
    const fragments = ours[service as keyof typeof ours];
    const knownVars = new Set(Object.values(fragments).flatMap((f) => Object.keys(f.shape)));
    const env = envOf(service);
    for (const name of Object.keys(env)) expect(knownVars, `${service}: ${name}`).toContain(name);
    const config = loadConfig(fragments, env);
    expect(config.http.serverId).toBe(
      service === 'ai-consumer' || service === 'message-relay' ? `${service}-1` : service,
    );
    expect(config.kafka.brokers).toEqual(['kafka:9092']);
    expect(config.redis.url).toBe('redis://redis:6379/0');
  });

  it.each(Object.keys(ours))('%s sends its traces to the jaeger service over OTLP/HTTP', (service) => {
    const tracing = loadConfig(ours[service as keyof typeof ours], envOf(service)).tracing;
    expect(tracing).toMatchObject({
      enabled: true,
      exporters: { otlp: true },
      otlp: { url: 'http://jaeger:4318/v1/traces', protocol: 'http/protobuf' },
      serviceName: service.startsWith('gateway-') ? 'websocket-server' : service,
    });
    const ports = z.array(z.string()).parse(services.jaeger?.ports);
    expect(ports).toContain('4318:4318');
    // The switch off is one variable.
    expect(
      loadConfig(ours[service as keyof typeof ours], { ...envOf(service), OTEL_SDK_DISABLED: 'true' }).tracing
        .enabled,
    ).toBe(false);
  });

  it('requires JWT_SECRET from the operator and gives each gateway its own SERVER_ID', async () => {
    const text = await readFile(at('docker-compose.yml'), 'utf8');
    for (const gw of ['gateway-1', 'gateway-2']) {
      expect((services[gw]?.environment as Yaml).JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?.+\}$/);
    }
    expect(envOf('gateway-1').SERVER_ID).not.toBe(envOf('gateway-2').SERVER_ID);
    expect(envOf('ai-consumer').OPENAI_BASE_URL).toBe('http://mock-openai:8090/v1');
    expect(text).not.toMatch(/sk-[A-Za-z0-9]{10,}/);
  });

  it('builds our services from Dockerfiles whose entry points exist', async () => {
    for (const [name, service] of Object.entries(services)) {
      if (!isRecord(service.build)) continue;
      expect(service.build.context).toBe('.');
      const dockerfile = String(service.build.dockerfile);
      const text = await readFile(at(dockerfile), 'utf8');
      expect(text).toMatch(/^FROM node:20-bookworm-slim AS build$/m);
      const fromDockerfile = /^CMD (\[.*\])$/m.exec(text)?.[1] ?? '[]';
      const command = z.array(z.string()).parse(service.command ?? JSON.parse(fromDockerfile));
      expect(command[0], name).toBe('node');
      const entry = command[1] ?? '';
      // `<pkg>/dist/x.js` is built from `<pkg>/src/x.ts`.
      expect(
        existsSync(at(entry.replace('/dist/', '/src/').replace(/\.js$/, '.ts'))),
        `${name}: ${entry}`,
      ).toBe(true);
    }
    expect(existsSync(at('.dockerignore'))).toBe(true);
  });

  it('gives nginx the descriptors its config asks for, enough for worker_connections', async () => {
    const conf = await readFile(at('nginx', 'nginx.conf'), 'utf8');
    const directive = (name: string) => Number(new RegExp(`^\\s*${name}\\s+(\\d+);`, 'm').exec(conf)?.[1]);
    const rlimit = directive('worker_rlimit_nofile');
    const connections = directive('worker_connections');
    // Each connection slot is a descriptor; a proxied WebSocket takes two slots.
    expect(rlimit).toBeGreaterThanOrEqual(connections);
    // Enough for a gateway's MAX_CONNECTIONS default (50,000) across two workers.
    expect(connections).toBeGreaterThanOrEqual(50_000);
    const nofile = z
      .object({ nofile: z.object({ soft: z.number(), hard: z.number() }) })
      .parse(services.nginx?.ulimits).nofile;
    expect(nofile.soft).toBeGreaterThanOrEqual(rlimit);
    expect(nofile.hard).toBeGreaterThanOrEqual(rlimit);
  });

  it('mounts files that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of z.array(z.string()).default([]).parse(service.volumes)) {
        const source = volume.split(':')[0] ?? '';
        if (source.startsWith('./')) expect(existsSync(at(source)), `${name}: ${source}`).toBe(true);
      }
    }
  });
});
