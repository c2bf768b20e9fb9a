/**
 * npm run bench -- [--runs 3] [--only latency,throughput,cpu,answered,original,connections]
 *   [--targets stack,uws,ws]
 *   [--quick] [--rates 250,500,…] [--levels 10000,50000,100000] [--out BENCHMARKS.md] [--keep-stack]
 *
 * Starts its own stack on ports away from the defaults (Kafka and Redis are shared with the harness
 * and reused when running), plus the `ws` baseline gateway, runs every scenario `--runs` times
 * (targets interleaved, so uWS and baseline see the same machine state), writes the raw results to
 * scripts/bench/results/latest.json and the medians into BENCHMARKS.md, and stops what it started.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { definitionStatus, serviceEndpoints, startDefinition, stopDefinition } from '../infra/harness.js';
import type { ServiceDefinition } from '../infra/harness.js';
import { KAFKA_VERSION } from '../infra/kafka.js';
import { repoRoot } from '../infra/paths.js';
import { stackDefinitions, stackDir, stackPorts, jwtSecret } from '../stack/services.js';
import type { StackServiceName } from '../stack/services.js';
import { stackUp } from '../stack/stack.js';
import { expandAddresses } from '../load-test/options.js';
import { baselineGateway } from './baseline-gateway/service.js';
import { machineDescription } from './proc-stats.js';
import { renderSection, spliceSection, type BenchResults } from './report.js';
import {
  answeredCpuScenario,
  connectionsScenario,
  cpuScenario,
  originalCapacityScenario,
  latencyScenario,
  throughputScenario,
  warmUp,
  type BenchContext,
  type ModelTiming,
  type Target,
} from './scenarios.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    only: { type: 'string' },
    targets: { type: 'string' },
    quick: { type: 'boolean' },
    rates: { type: 'string' },
    levels: { type: 'string' },
    'original-rates': { type: 'string' },
    out: { type: 'string', default: 'BENCHMARKS.md' },
    'keep-stack': { type: 'boolean' },
    profile: { type: 'boolean' },
    merge: { type: 'boolean' },
  },
});

const SCENARIOS = ['latency', 'throughput', 'cpu', 'answered', 'original', 'connections'] as const;
type Scenario = (typeof SCENARIOS)[number];
const list = (text: string | undefined) =>
  (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const numbers = (text: string | undefined, fallback: number[]) =>
  text ? list(text).map((s) => Number(s)) : fallback;

const quick = values.quick ?? false;
const runs = Number(values.runs ?? (quick ? 1 : 3));
const only = (values.only ? list(values.only) : SCENARIOS) as Scenario[];
const targets = (values.targets ? list(values.targets) : ['stack', 'uws', 'ws']) as Target[];
for (const name of only) if (!SCENARIOS.includes(name)) fail(`--only: unknown scenario ${name}`);
for (const t of targets) if (!['stack', 'uws', 'ws'].includes(t)) fail(`--targets: unknown target ${t}`);
if (!Number.isInteger(runs) || runs < 1) fail('--runs must be a positive integer');

const settings = {
  latency: { rate: 100, seconds: quick ? 15 : 30 },
  throughput: {
    // Prompts/s; × ~62 frames per answer.
    rates: numbers(values.rates, quick ? [50, 75, 100] : [25, 50, 75, 100, 125, 150, 200, 300, 400]),
    seconds: quick ? 10 : 15,
  },
  // Below the capacity (~75 prompts/s here), so no tokens are merged and frames are what they should be.
  cpu: { rate: 50, seconds: quick ? 10 : 20 },
  // The original protocol (no deltas): CPU per answered message at 50 msg/s, and the highest rate
  // 1000 users get with nothing lost and p99 under twice the model's time.
  answered: { rate: 50, seconds: quick ? 10 : 20 },
  original: {
    rates: numbers(
      values['original-rates'],
      quick ? [100, 300, 600] : [50, 100, 200, 300, 400, 500, 600, 800, 1000],
    ),
    seconds: quick ? 10 : 15,
    users: 1000,
  },
  connections: { levels: numbers(values.levels, [10_000, 50_000, 100_000]), settleMs: 3000 },
};

function fail(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}

/** The bench stack: its own ports, generous limits (the load is the point), quiet logs. */
const env: Record<string, string | undefined> = {
  ...process.env,
  NGINX_PORT: '28280',
  GATEWAY_1_PORT: '28281',
  GATEWAY_2_PORT: '28282',
  BASELINE_GATEWAY_PORT: '28283',
  MOCK_OPENAI_PORT: '28290',
  AI_CONSUMER_PORT: '29201',
  MESSAGE_RELAY_PORT: '29202',
  PROMETHEUS_PORT: '29290',
  ALERTMANAGER_PORT: '29293',
  LOG_LEVEL: 'warn',
  MAX_WORKERS: '5000',
  RATE_LIMIT_MESSAGES: '1000000',
  TOKEN_RATE_LIMIT_PER_MINUTE: '100000',
  // The load generator gets its users' tokens with POST /token?userid= (dev tokens, loopback).
  DEV_TOKENS: 'true',
  // The idle-connections scenario opens tens of thousands of sockets from a few loopback addresses.
  MAX_CONNECTIONS_PER_IP: '10000000',
  MAX_CONNECTIONS: '10000000',
  MOCK_OPENAI_TTFT_MS: '0',
  MOCK_OPENAI_TOKEN_MS: '0',
  // --profile: every Node service writes a V8 CPU profile when it stops (npm run bench:profile).
  ...(values.profile && {
    STACK_NODE_FLAGS: `--cpu-prof --cpu-prof-dir=${join(repoRoot, '.work', 'bench', 'profiles')}`,
  }),
};
const progress = (line: string) => process.stderr.write(`${line.replace(/^\[stack\]/, '[bench]')}\n`);
const harness = () => ({ env, progress });

const started: Array<{ name: string; definition: ServiceDefinition }> = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    if (values['keep-stack']) return;
    for (const { name, definition } of [...started].reverse()) {
      progress(`[bench] stopping ${name}`);
      await stopDefinition(definition, harness()).catch((err: unknown) => progress(`[bench] ${String(err)}`));
    }
  })();
  return cleaning;
}
// A second Ctrl-C while stopping must not leave services running: it is ignored until done.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (cleaning) return;
    progress(`[bench] ${signal}: stopping what the bench started`);
    void cleanup().finally(() => process.exit(130));
  });
}

let model: ModelTiming | undefined;
async function pid(definition: ServiceDefinition): Promise<number> {
  const status = await definitionStatus(definition, harness());
  if (status.pid === null) throw new Error(`${definition.name} is not running`);
  return status.pid;
}
async function groups(names: StackServiceName[]): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of names) out[name] = [await pid(stackDefinitions[name])];
  return out;
}
async function restart(definition: ServiceDefinition): Promise<void> {
  await stopDefinition(definition, harness());
  await startDefinition(definition, harness());
}

const ports = stackPorts(env);
const context: BenchContext = {
  url(target) {
    const port = { stack: ports.nginx, uws: ports['gateway-1'], ws: Number(env.BASELINE_GATEWAY_PORT) }[
      target
    ];
    return `http://127.0.0.1:${port}`;
  },
  async pipelineGroups(target) {
    const common: StackServiceName[] = ['ai-consumer', 'message-relay', 'kafka', 'redis'];
    if (target === 'stack') return groups(['gateway-1', 'gateway-2', 'nginx', ...common]);
    if (target === 'uws') return groups(['gateway-1', ...common]);
    return { 'baseline-gateway': [await pid(baselineGateway)], ...(await groups(common)) };
  },
  otherGroups: () => groups(['mock-openai']),
  gatewayPid: (target) => pid(target === 'uws' ? stackDefinitions['gateway-1'] : baselineGateway),
  nginxPid: () => pid(stackDefinitions.nginx),
  restartGateway: (target) => restart(target === 'uws' ? stackDefinitions['gateway-1'] : baselineGateway),
  async useModel(timing) {
    if (JSON.stringify(timing) === JSON.stringify(model)) return;
    env.MOCK_OPENAI_TTFT_MS = String(timing.ttftMs);
    env.MOCK_OPENAI_TOKEN_MS = String(timing.tokenMs);
    env.MOCK_OPENAI_MIN_TOKENS = String(timing.minTokens);
    progress(
      `[bench] mock model: TTFT ${timing.ttftMs} ms, token interval ${timing.tokenMs} ms, answers ≥ ${timing.minTokens} tokens`,
    );
    await restart(stackDefinitions['mock-openai']);
    model = timing;
  },
  kafkaBrokers: serviceEndpoints(env).kafkaBrokers.split(','),
  secretFile: join(stackDir(env), 'jwt-secret'),
  sourceAddresses: expandAddresses('127.0.0.1-127.0.0.8'),
  progress,
};

function versions(): Record<string, string> {
  // The installed package.json (some packages do not export it; openai sits in its workspace).
  const pkg = (name: string, workspace = '.') =>
    (
      JSON.parse(readFileSync(join(repoRoot, workspace, 'node_modules', name, 'package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
  // Some tools print their version on stderr (nginx -v): read both.
  const tool = (cmd: string, args: string[], pattern: RegExp) => {
    const result = spawnSync(cmd, args, { encoding: 'utf8' });
    return pattern.exec(`${result.stdout ?? ''}${result.stderr ?? ''}`)?.[1] ?? 'unknown';
  };
  return {
    node: process.version,
    kafka: KAFKA_VERSION,
    redis: tool('redis-server', ['--version'], /v=(\S+)/),
    nginx: tool('nginx', ['-v'], /nginx\/(\S+)/),
    'uWebSockets.js': pkg('uWebSockets.js'),
    ws: pkg('ws'),
    kafkajs: pkg('kafkajs'),
    ioredis: pkg('ioredis'),
    openai: pkg('openai', 'ai-consumer'),
  };
}

const results: BenchResults = {
  startedAt: new Date().toISOString(),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  machine: await machineDescription(),
  versions: versions(),
  runs,
  latency: [],
  throughput: [],
  cpu: [],
  answered: [],
  original: [],
  connections: [],
  settings: { ...settings, targets },
};

try {
  await jwtSecret(env);
  const up = await stackUp({ env, progress });
  for (const name of up.started) started.push({ name, definition: stackDefinitions[name] });
  const baseline = await startDefinition(baselineGateway, harness());
  if (baseline.startedNow) started.push({ name: baselineGateway.name, definition: baselineGateway });

  // A freshly started broker JITs for over a minute at this load: measured on its threads, the C2
  // compiler took as much CPU as the request handlers 20–40 s in and a tenth of it after 60 s, so
  // a short warm-up charged Kafka ~4× its steady cost per message. The first warm-up is long.
  for (const [i, target] of targets.entries()) await warmUp(context, target, quick ? 5 : i === 0 ? 60 : 10);

  for (let run = 1; run <= runs; run++) {
    progress(`[bench] ===== run ${run} of ${runs} =====`);
    if (only.includes('latency')) {
      for (const target of targets) {
        progress(
          `[bench] latency ${target}: ${settings.latency.rate} prompts/s for ${settings.latency.seconds} s`,
        );
        const r = await latencyScenario(context, target, settings.latency);
        results.latency.push(r);
        progress(
          `[bench] latency ${target}: overhead first delta p50 ${r.overheadMs.firstDelta.p50} p99 ${r.overheadMs.firstDelta.p99} ms, gap p99 ${r.overheadMs.deltaGap.p99} ms, ~${r.concurrentStreams} streams`,
        );
      }
    }
    if (only.includes('throughput')) {
      for (const target of targets)
        results.throughput.push(await throughputScenario(context, target, settings.throughput));
    }
    if (only.includes('cpu')) {
      for (const target of targets) {
        const r = await cpuScenario(context, target, settings.cpu);
        results.cpu.push(r);
        progress(
          `[bench] cpu ${target}: ${r.totalUsPerFrame.toFixed(1)} µs/frame at ${r.framesPerSecond.toFixed(0)} frames/s`,
        );
      }
    }
    if (only.includes('answered')) {
      for (const target of targets) {
        const r = await answeredCpuScenario(context, target, settings.answered);
        (results.answered ??= []).push(r);
        progress(
          `[bench] answered ${target}: ${r.totalUsPerAnswer.toFixed(0)} µs per answered message at ${r.promptsPerSecond.toFixed(0)} msg/s`,
        );
      }
    }
    if (only.includes('original')) {
      for (const target of targets) {
        const r = await originalCapacityScenario(context, target, settings.original);
        (results.original ??= []).push(r);
        progress(`[bench] original ${target}: sustained ${r.sustainedPromptsPerSecond.toFixed(0)} msg/s`);
      }
    }
    if (only.includes('connections')) {
      for (const target of targets) {
        results.connections.push(await connectionsScenario(context, target, settings.connections));
      }
    }
  }

  const dir = join(repoRoot, 'scripts', 'bench', 'results');
  await mkdir(dir, { recursive: true });
  if (values.merge) {
    // --merge: scenarios not run now keep the figures of the previous results file.
    const previous = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')) as BenchResults;
    for (const name of SCENARIOS) {
      if (!only.includes(name)) (results[name] as unknown) = previous[name] ?? [];
    }
    results.command = `${previous.command}; then ${results.command}`;
    results.settings = { ...previous.settings, ...results.settings };
  }
  await writeFile(join(dir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  const section = renderSection(results);
  const outPath = resolve(repoRoot, values.out);
  const existing = await readFile(outPath, 'utf8').catch(() => '# Benchmarks\n');
  await writeFile(outPath, spliceSection(existing, section));
  console.log(section);
  progress(`[bench] wrote ${values.out} and scripts/bench/results/latest.json`);
} finally {
  await cleanup();
}
