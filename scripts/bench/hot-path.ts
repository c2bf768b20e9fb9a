/**
 * npm run bench:hot-path -- [--rounds 7] [--only delivery,relay,intake] [--allocations] [--trace]
 *
 * Per-frame cost of three hot paths, on the in-process transports (no sockets, no broker):
 * - delivery: a user-channel payload → Connection.live → socket.send (one streaming socket);
 * - relay: a `responses` delta event → replay append → user channel publish;
 * - intake: a client message frame → checks, rate limit → Kafka publish → ack.
 * Prints CPU µs per frame (median of the rounds), or with `--allocations` the bytes allocated per
 * frame, collected or not (V8's sampling heap profiler; CPU figures are skewed meanwhile). With
 * `--trace` the gateway intake gets a real OpenTelemetry tracer (always sampled, spans dropped at
 * export) to show what tracing on costs; without it no tracer is passed, as in production with
 * OTEL_* unset. Written for before/after comparisons of changes to these paths: run it in both
 * checkouts (it uses no API newer than the paths themselves), a few times, alternating.
 */
import { Session } from 'node:inspector/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  TOPICS,
  attachEventId,
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  loadConfig,
  serializeFrame,
  type PubSub,
  type Tracer,
} from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import { createRelay } from '../../message-relay/src/relay.js';
import { configFragments, sitesFor } from '../../websocket-server/src/config.js';
import { createSocketSessions } from '../../websocket-server/src/socket-sessions.js';
import { fakeSocket, type FakeSocket } from '../../websocket-server/src/testing/fake-socket.js';
import { createTokenService } from '../../websocket-server/src/token-service.js';
import { createUserSockets } from '../../websocket-server/src/user-sockets.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    only: { type: 'string', default: 'delivery,relay,intake' },
    allocations: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const only = values.only.split(',');

interface ProfileNode {
  selfSize: number;
  children: ProfileNode[];
}
const totalSize = (node: ProfileNode): number =>
  node.selfSize + node.children.reduce((sum, child) => sum + totalSize(child), 0);
const session = new Session();
session.connect();

/** CPU µs per frame, or bytes allocated per frame with --allocations. */
async function measure(n: number, run: () => Promise<void> | void): Promise<number> {
  await sleep(20);
  if (values.allocations) {
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await run();
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as {
      profile: { head: ProfileNode };
    };
    return totalSize(profile.head) / n;
  }
  const before = process.cpuUsage();
  await run();
  const cpu = process.cpuUsage(before);
  return (cpu.user + cpu.system) / n;
}

async function traceOn(): Promise<Tracer> {
  // Loaded only for --trace, as startTracing does (and so the script also runs on a checkout from
  // before tracing existed).
  const { createOtelTracer } = await import('../../common/src/tracing/otel-tracer.js');
  const { tracingFragment } = await import('../../common/src/tracing/options.js');
  const settings = loadConfig(
    { tracing: tracingFragment({ service: 'bench' }) },
    { OTEL_TRACES_EXPORTER: 'console' },
  ).tracing;
  return createOtelTracer({
    settings,
    instance: 'bench',
    exporter: { export: (_spans, done) => done({ code: 0 }), shutdown: () => Promise.resolve() },
  });
}

async function delivery(n: number): Promise<number> {
  let listener: ((payload: string, channel: string) => void) | undefined;
  const pubsub: PubSub = {
    kind: 'memory',
    publish: () => Promise.resolve(0),
    subscribe: (_channel, l) => Promise.resolve(void (listener = l)),
    unsubscribe: () => Promise.resolve(),
    channels: () => [],
    close: () => Promise.resolve(),
  };
  const sockets = createUserSockets<FakeSocket>({
    pubsub,
    logger: silentLogger,
    deliver: (socket, payload) => socket.connection.live(payload),
  });
  const socket = fakeSocket({ userid: 'alice', stream: true });
  // The path is measured, not an array of n sent strings.
  socket.send = () => 1;
  await sockets.add(socket);
  const frames = Array.from({ length: n }, (_, i) =>
    attachEventId(
      serializeFrame({ type: 'response.delta', request_id: 'r', seq: i, delta: 'tok ', userid: 'alice' }),
      `${1_000_000 + i}-0`,
    ),
  );
  const deliver = listener;
  if (!deliver) throw new Error('not subscribed');
  return measure(n, () => {
    for (const frame of frames) deliver(frame, 'user:alice');
  });
}

async function relay(n: number): Promise<number> {
  const bus = createMemoryBus({ defaultPartitions: 1 });
  await bus.connect();
  const hub = createMemoryPubSubHub();
  const topics = { responses: uniqueName('responses'), responsesDlq: uniqueName('responses.dlq') };
  const relayer = createRelay({
    config: {
      kafka: { partitions: 1 },
      relay: { groupId: uniqueName('relay'), concurrency: 16 },
      delivery: { replayMaxEvents: 1000, replayTtlMs: 3_600_000, dedupeTtlMs: 86_400_000 },
    },
    logger: silentLogger,
    metrics: createMetrics({ service: 'message-relay', instance: 'bench', defaultMetrics: false }),
    bus,
    store: createMemoryStore(),
    pubsub: hub.client(),
    topics,
  });
  let received = 0;
  await hub.client().subscribe('user:alice', () => void received++);
  await relayer.start();
  const records = Array.from({ length: n }, (_, seq) => ({
    key: 'alice',
    value: JSON.stringify({ v: 1, type: 'delta', userid: 'alice', request_id: 'r', seq, delta: 'tok ' }),
    headers: { correlation_id: 'r' },
  }));
  const result = await measure(n, async () => {
    await bus.publish(topics.responses, records);
    await waitFor(() => received === n, { timeoutMs: 120_000, intervalMs: 5 });
  });
  await relayer.close();
  await bus.close();
  return result;
}

async function intake(n: number, tracer: Tracer | undefined): Promise<number> {
  const config = loadConfig(configFragments, {
    JWT_SECRET: 'x'.repeat(32),
    DEV_TOKENS: 'true',
    RATE_LIMIT_MESSAGES: '1000000',
    RATE_LIMIT_FRAMES: '10000000',
    MAX_QUEUED_FRAMES: '100000',
  });
  const tokens = createTokenService({ secret: config.gateway.jwtSecret, ttlSeconds: 600 });
  const bus = createMemoryBus();
  await bus.connect();
  let published = 0;
  await bus.subscribe({
    groupId: uniqueName('bench'),
    topics: [TOPICS.incoming],
    handler: () => Promise.resolve(void published++),
  });
  const sessions = createSocketSessions<FakeSocket>({
    settings: config.gateway,
    serverId: 'bench',
    logger: silentLogger,
    metrics: createMetrics({ service: 'websocket-server', instance: 'bench', defaultMetrics: false }),
    bus,
    store: createMemoryStore(),
    pubsub: createMemoryPubSubHub().client(),
    tokens,
    sites: sitesFor(config.gateway, '127.0.0.1'),
    ...(tracer ? { tracer } : {}),
  });
  const admission = sessions.admit({
    query: new URLSearchParams(`token=${(await tokens.issue('alice')).token}`),
    origin: '',
    ip: '127.0.0.1',
  });
  if (!admission.ok) throw new Error(admission.reason);
  const socket: FakeSocket = {
    ...fakeSocket({ open: false }),
    connection: admission.data.connection,
    getUserData: () => admission.data,
    send: () => 1,
  };
  sessions.open(socket);
  await waitFor(() => admission.data.connection.state === 'live');
  const payloads = Array.from({ length: n }, (_, i) =>
    Buffer.from(JSON.stringify({ type: 'message', content: `hello ${i}` })),
  );
  const result = await measure(n, async () => {
    for (const payload of payloads) sessions.message(socket, payload, false);
    await waitFor(() => published === n, { timeoutMs: 120_000, intervalMs: 5 });
  });
  await bus.close();
  return result;
}

const tracer = values.trace ? await traceOn() : undefined;
const runs: Record<string, (n: number) => Promise<number>> = {
  delivery: (n) => delivery(n),
  relay: (n) => relay(n),
  intake: (n) => intake(n, tracer),
};
const sizes: Record<string, number> = { delivery: 200_000, relay: 10_000, intake: 5_000 };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const results: Record<string, number[]> = {};
for (const name of only) {
  const run = runs[name];
  if (!run) throw new Error(`--only: unknown path ${name}`);
  // Warm-up (JIT), not counted.
  await run(Math.ceil((sizes[name] ?? 1000) / 4));
  results[name] = [];
}
for (let r = 0; r < rounds; r++) {
  for (const name of only)
    results[name]?.push(await (runs[name] as (n: number) => Promise<number>)(sizes[name] ?? 1000));
}
const unit = values.allocations ? 'bytes/frame' : 'cpu µs/frame';
for (const [name, xs] of Object.entries(results)) {
  const shown = xs.map((x) => (values.allocations ? Math.round(x) : x.toFixed(2))).join(' ');
  process.stdout.write(
    `${name}: ${unit} median ${median(xs).toFixed(values.allocations ? 0 : 2)} (${shown})\n`,
  );
}
await tracer?.close();
session.disconnect();
