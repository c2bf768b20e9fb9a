/**
 * The stack's own services, as harness `ServiceDefinition`s: the four Node processes (each
 * `node --import tsx --conditions=source <pkg>/src/main.ts` from the repo root) and stack flavours
 * of the harness' nginx and Prometheus (gateway upstreams, UI root, scrape targets on the ports in use),
 * and the harness' Alertmanager as it is.
 */
import { randomBytes } from 'node:crypto';
import { access, lstat, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { isScalar, isSeq, parseDocument, Scalar } from 'yaml';
import { InfraError } from '../infra/errors.js';
import { alertmanager } from '../infra/alertmanager.js';
import { serviceEndpoints } from '../infra/harness.js';
import type { ServiceContext, ServiceDefinition } from '../infra/harness.js';
import { kafka } from '../infra/kafka.js';
import { nginx } from '../infra/nginx.js';
import { buildWeb } from '../../web/build.js';
import { infraPaths, repoRoot } from '../infra/paths.js';
import type { Env } from '../infra/paths.js';
import { checkPort, defaultPorts, portFromEnv } from '../infra/ports.js';
import { readyBodySchema } from '@relay/common/ops';
import { httpJson, httpStatus } from '../infra/probes.js';
import { prometheus } from '../infra/prometheus.js';
import { redis } from '../infra/redis.js';

export const stackNodeNames = [
  'mock-openai',
  'message-relay',
  'ai-consumer',
  'gateway-1',
  'gateway-2',
] as const;
export type StackNodeName = (typeof stackNodeNames)[number];

/** Every stack service, in start order (`down` goes the other way). */
export const stackServiceNames = [
  'kafka',
  'redis',
  'mock-openai',
  'message-relay',
  'ai-consumer',
  'gateway-1',
  'gateway-2',
  'nginx',
  'alertmanager',
  'prometheus',
] as const;
export type StackServiceName = (typeof stackServiceNames)[number];

export function isStackServiceName(name: string): name is StackServiceName {
  return (stackServiceNames as readonly string[]).includes(name);
}

/** Port variable and default of each Node service. */
export const nodePorts: Readonly<Record<StackNodeName, { variable: string; port: number }>> = {
  'mock-openai': { variable: 'MOCK_OPENAI_PORT', port: 8090 },
  'message-relay': { variable: 'MESSAGE_RELAY_PORT', port: 9102 },
  'ai-consumer': { variable: 'AI_CONSUMER_PORT', port: 9101 },
  'gateway-1': { variable: 'GATEWAY_1_PORT', port: 8081 },
  'gateway-2': { variable: 'GATEWAY_2_PORT', port: 8082 },
};

/** Where each stack service listens, from the same env the services start with. */
export type StackPorts = Record<StackServiceName, number>;

export function stackPorts(env: Env): StackPorts {
  const node = Object.fromEntries(
    stackNodeNames.map((name) => [name, portFromEnv(env, nodePorts[name].variable, nodePorts[name].port)]),
  ) as Record<StackNodeName, number>;
  return {
    kafka: portFromEnv(env, 'KAFKA_PORT', defaultPorts.kafka),
    redis: portFromEnv(env, 'REDIS_PORT', defaultPorts.redis),
    nginx: portFromEnv(env, 'NGINX_PORT', defaultPorts.nginx),
    prometheus: portFromEnv(env, 'PROMETHEUS_PORT', defaultPorts.prometheus),
    alertmanager: portFromEnv(env, 'ALERTMANAGER_PORT', defaultPorts.alertmanager),
    ...node,
  };
}

/** With a real key the user's OPENAI_* settings are used as given and no mock is started. */
export function usesMockModel(env: Env): boolean {
  return !env.OPENAI_API_KEY;
}

/** Files the stack keeps beside the harness' under the work dir. */
export function stackDir(env: Env): string {
  return join(infraPaths(env).workDir, 'stack');
}

/**
 * One signing secret per work dir, so both gateways (and every restart) accept each other's
 * tokens. `JWT_SECRET` in the environment wins.
 */
export async function jwtSecret(env: Env): Promise<string> {
  if (env.JWT_SECRET) return env.JWT_SECRET;
  const dir = stackDir(env);
  const file = join(dir, 'jwt-secret');
  await mkdir(dir, { recursive: true });
  try {
    // `wx`: two concurrent starts cannot both write; the loser reads the winner's secret.
    await writeFile(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const secret = (await readFile(file, 'utf8')).trim();
  if (secret.length < 32) {
    throw new InfraError(`${file} holds a secret shorter than 32 characters; delete it to get a new one`);
  }
  return secret;
}

export interface NodeServiceSpec {
  name: string;
  /** The env variable that sets its port, and the port without it. */
  port: { variable: string; port: number };
  /** Repo-relative entry point; also the process marker that pid files are checked against. */
  entry: string;
  /** 200 on this path means ready. */
  readyPath: string;
  /** Settings of this service on top of the inherited environment. */
  env(context: ServiceContext, port: number): Promise<Record<string, string>>;
}

function nodeFlags(env: Env): string[] {
  return (env.STACK_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
}

export function nodeService(spec: NodeServiceSpec): ServiceDefinition {
  const { variable, port: fallback } = spec.port;
  return {
    name: spec.name,
    processMarker: spec.entry,
    portVariables: [variable],
    // A cold tsx start plus joining a Kafka consumer group.
    startTimeoutMs: 60_000,
    // Above the services' own shutdown deadline (SHUTDOWN_TIMEOUT_MS, 10 s by default).
    stopTimeoutMs: 15_000,
    requirements: [],

    ports(context, options) {
      const port =
        options.port !== undefined
          ? checkPort(options.port, `${spec.name} port`)
          : portFromEnv(context.env, variable, fallback);
      return { port, all: [port] };
    },

    async prepare(context, _options, ports) {
      const { kafkaBrokers, redisUrl } = serviceEndpoints(context.env);
      return {
        command: process.execPath,
        // STACK_NODE_FLAGS: extra node flags for every Node service, e.g. `--cpu-prof` (which
        // NODE_OPTIONS does not allow) for `npm run bench -- --profile`.
        args: [...nodeFlags(context.env), '--import', 'tsx', '--conditions=source', spec.entry],
        cwd: repoRoot,
        env: {
          ...context.env,
          PORT: String(ports.port),
          HOST: '127.0.0.1',
          SERVER_ID: spec.name,
          KAFKA_BOOTSTRAP_SERVERS: kafkaBrokers,
          REDIS_URL: redisUrl,
          ...(await spec.env(context, ports.port)),
        },
      };
    },

    async probe(port) {
      return (await httpStatus(`http://127.0.0.1:${port}${spec.readyPath}`)) === 200;
    },
  };
}

function gateway(name: 'gateway-1' | 'gateway-2'): ServiceDefinition {
  return nodeService({
    name,
    port: nodePorts[name],
    entry: 'websocket-server/src/main.ts',
    readyPath: '/ready',
    async env(context) {
      // nginx in front sets X-Real-IP; per-IP token limits need the client's address, not nginx's.
      // The production profile (docs/identity.md): the demo site on, dev tokens only when the
      // environment asks for them (DEV_TOKENS=true, as the tests and the bench do).
      return {
        JWT_SECRET: await jwtSecret(context.env),
        TRUST_PROXY: 'true',
        DEMO_SITE: context.env.DEMO_SITE ?? 'true',
        DEV_TOKENS: context.env.DEV_TOKENS ?? 'false',
      };
    },
  });
}

const nodeDefinitions: Record<StackNodeName, ServiceDefinition> = {
  'mock-openai': nodeService({
    name: 'mock-openai',
    port: nodePorts['mock-openai'],
    entry: 'ai-consumer/src/mock-openai/main.ts',
    readyPath: '/v1/models',
    env: (_context, port) =>
      Promise.resolve({ MOCK_OPENAI_HOST: '127.0.0.1', MOCK_OPENAI_PORT: String(port) }),
  }),
  'message-relay': nodeService({
    name: 'message-relay',
    port: nodePorts['message-relay'],
    entry: 'message-relay/src/main.ts',
    readyPath: '/ready',
    env: () => Promise.resolve({}),
  }),
  'ai-consumer': nodeService({
    name: 'ai-consumer',
    port: nodePorts['ai-consumer'],
    entry: 'ai-consumer/src/main.ts',
    readyPath: '/ready',
    env(context) {
      const mock = `http://127.0.0.1:${stackPorts(context.env)['mock-openai']}/v1`;
      // With a real key the user's OPENAI_* settings pass through untouched.
      return Promise.resolve<Record<string, string>>(
        usesMockModel(context.env) ? { OPENAI_BASE_URL: mock } : {},
      );
    },
  }),
  'gateway-1': gateway('gateway-1'),
  'gateway-2': gateway('gateway-2'),
};

/** The stack's services whose `/ready` answers with the common readiness body (`readyBodySchema`). */
const readinessServices: ReadonlySet<StackServiceName> = new Set<StackServiceName>([
  'message-relay',
  'ai-consumer',
  'gateway-1',
  'gateway-2',
]);

/** A check a service's `/ready` reports failing, and why (never a secret: the services redact). */
export interface FailingCheck {
  check: string;
  reason: string;
}

/**
 * Why a running service is not ready, from its own `/ready`: the failing checks (`redis`, `kafka`,
 * `model`, …). Undefined for services without that body (Kafka, nginx, …: the probe is all there
 * is). A process that does not answer at all (still starting, or hung) gets one check, `http`.
 */
export async function failingChecks(
  name: StackServiceName,
  port: number,
): Promise<FailingCheck[] | undefined> {
  if (!readinessServices.has(name)) return undefined;
  const answer = await httpJson(`http://127.0.0.1:${port}/ready`);
  if (answer === null) return [{ check: 'http', reason: `no answer on 127.0.0.1:${port}/ready` }];
  const parsed = readyBodySchema.safeParse(answer.body);
  if (!parsed.success)
    return [{ check: 'http', reason: `/ready answered ${answer.status} without a readiness body` }];
  return parsed.data.failing.map((check) => ({
    check,
    reason: parsed.data.checks[check]?.reason ?? 'failing',
  }));
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The docker conf made local: `listen 8080;` becomes `listen 127.0.0.1:${NGINX_PORT};` (the
 * harness fills in the stack's port, and nothing listens beyond loopback) unless the conf already
 * uses `${NGINX_PORT}`; `/dev/stdout` and `/dev/stderr` become `logFile`, because the harness'
 * `nginx -t` runs with socket stdio, which nginx cannot open by path (ENXIO).
 */
export function localNginxConf(template: string, logFile: string): string {
  const streams = template.replace(/\/dev\/std(?:out|err)\b/g, logFile);
  if (streams.includes('${NGINX_PORT}')) return streams;
  return streams.replace(
    /^(\s*listen\s+)(?:\S+:)?\d+(?=[\s;])/gm,
    (_whole, head: string) => `${head}127.0.0.1:\${NGINX_PORT}`,
  );
}

export function upstreamsConf(gatewayPorts: readonly number[]): string {
  return (
    gatewayPorts.map((port) => `server 127.0.0.1:${port} max_fails=3 fail_timeout=10s;`).join('\n') + '\n'
  );
}

/**
 * Before the harness renders and checks the conf: `upstreams.conf` beside it (a relative
 * `include` resolves against the conf's directory, `<prefix>/conf/`), and `<prefix>/html` (the
 * conf's `root html;`) pointing at the UI in `websocket-server/public/`, its bundles built first.
 */
const stackNginx: ServiceDefinition = {
  ...nginx,
  async prepare(context, options, plan) {
    const ports = stackPorts(context.env);
    const prefix = context.files.dataDir;
    await mkdir(join(prefix, 'conf'), { recursive: true });
    await writeFile(
      join(prefix, 'conf', 'upstreams.conf'),
      upstreamsConf([ports['gateway-1'], ports['gateway-2']]),
    );

    const ui = join(repoRoot, 'websocket-server', 'public');
    await mkdir(ui, { recursive: true });
    // widget.js and chat.js are built, not committed: nginx serves them from a clean clone too.
    const built = await buildWeb({ outDir: ui });
    context.say(`built ${Object.keys(built).join(', ')} into ${ui}`);
    const html = join(prefix, 'html');
    const current = await lstat(html).catch(() => null);
    if (current === null || current.isSymbolicLink()) {
      await rm(html, { force: true });
      await symlink(ui, html);
    } else {
      context.say(`${html} is not a symlink; serving it instead of ${ui}`);
    }

    const source = resolve(
      options.confPath ?? context.env.NGINX_CONF ?? join(repoRoot, 'nginx', 'nginx.conf'),
    );
    const template = await readFile(source, 'utf8').catch((error: unknown) => {
      throw new InfraError(`nginx: cannot read config ${source}; set NGINX_CONF`, undefined, {
        cause: error,
      });
    });
    const dir = stackDir(context.env);
    await mkdir(dir, { recursive: true });
    const local = join(dir, 'nginx.conf');
    await writeFile(
      local,
      `# generated by npm run stack from ${source}\n${localNginxConf(template, context.files.logFile)}`,
    );
    return nginx.prepare(context, { ...options, confPath: local }, plan);
  },
};

/**
 * Points `127.0.0.1:<default port>` scrape targets at the ports this stack uses, so overriding
 * a port (as the tests do) does not leave Prometheus scraping whatever else holds the default.
 */
export function retargetScrapeConfig(text: string, moves: ReadonlyMap<number, number>): string {
  return text.replace(/\b127\.0\.0\.1:(\d+)\b/g, (whole, port: string) => {
    const to = moves.get(Number(port));
    return to === undefined ? whole : `127.0.0.1:${to}`;
  });
}

function portMoves(ports: StackPorts): Map<number, number> {
  const defaults: Partial<Record<StackServiceName, number>> = {
    prometheus: defaultPorts.prometheus,
    alertmanager: defaultPorts.alertmanager,
    ...Object.fromEntries(stackNodeNames.map((name) => [name, nodePorts[name].port])),
  };
  const moves = new Map<number, number>();
  for (const [name, from] of Object.entries(defaults)) {
    const to = ports[name as StackServiceName];
    if (from !== undefined && from !== to) moves.set(from, to);
  }
  return moves;
}

const LOCAL_PROMETHEUS_CONFIG = join(repoRoot, 'prometheus', 'prometheus.local.yml');

/**
 * The rule files of a Prometheus config made absolute against `dir` (the template's directory), so
 * the config works from wherever the stack writes it.
 */
export function absoluteRuleFiles(text: string, dir: string): string {
  const doc = parseDocument(text);
  const files = doc.get('rule_files');
  if (!isSeq(files)) return text;
  files.items = files.items.map((item) =>
    isScalar(item) && typeof item.value === 'string' ? new Scalar(resolve(dir, item.value)) : item,
  );
  return doc.toString();
}

/**
 * The harness' Prometheus with a config made from a template: `PROMETHEUS_CONFIG`, else
 * `prometheus/prometheus.local.yml`. Its loopback targets follow the ports this stack uses, and its
 * rule files resolve against the template's directory.
 */
const stackPrometheus: ServiceDefinition = {
  ...prometheus,
  async prepare(context, options, plan) {
    const template =
      options.confPath ??
      context.env.PROMETHEUS_CONFIG ??
      ((await exists(LOCAL_PROMETHEUS_CONFIG)) ? LOCAL_PROMETHEUS_CONFIG : undefined);
    if (template === undefined) return prometheus.prepare(context, options, plan);
    const source = resolve(template);
    const moves = portMoves({ ...stackPorts(context.env), prometheus: plan.port });
    const text = await readFile(source, 'utf8');
    const dir = stackDir(context.env);
    await mkdir(dir, { recursive: true });
    const confPath = join(dir, 'prometheus.yml');
    await writeFile(
      confPath,
      `# generated by npm run stack from ${source}\n${absoluteRuleFiles(retargetScrapeConfig(text, moves), dirname(source))}`,
    );
    return prometheus.prepare(context, { ...options, confPath }, plan);
  },
};

export const stackDefinitions: Readonly<Record<StackServiceName, ServiceDefinition>> = {
  kafka,
  redis,
  ...nodeDefinitions,
  nginx: stackNginx,
  alertmanager,
  prometheus: stackPrometheus,
};
