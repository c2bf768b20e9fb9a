/**
 * npm run bench:kafka -- [--runs 3] [--records 100000] [--warmup 10000] [--users 1000] [--bytes 200]
 *   [--concurrency 64] [--inflight 2000] [--timeout-s 120] [--out scripts/bench/results/kafka-clients.json]
 *
 * Both Kafka Bus adapters side by side on the same broker (`KAFKA_PORT`; the harness' Kafka, started
 * when it is not running and stopped again only then): many small records (~`--bytes` of JSON,
 * keyed by `--users` users) published one per `publish` call with up to `--inflight` calls in flight
 * (the relay's pattern: one publish per delta), then consumed by a fresh group with key-ordered
 * lanes (`--concurrency` handlers, as the relay subscribes). Per phase: records/s and CPU µs per
 * record of the client process (`process.cpuUsage`) and of the broker (its /proc stat).
 *
 * Each measurement runs in a child process of its own (fresh JIT and heap, one adapter loaded), after
 * a warm-up of `--warmup` records; adapters alternate within a run and swap order between runs, so
 * both see the same machine state. Medians of the runs are printed as a table and written with every
 * run's figures to `--out`. Progress lines go to stderr. Every phase is bounded by `--timeout-s`.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  createKafkaClientBus,
  KAFKA_CLIENTS,
  type Bus,
  type BusRecord,
  type KafkaClientName,
} from '@relay/common';
import { pino } from 'pino';
import { serviceEndpoints, startService, stopService } from '../infra/harness.js';
import { repoRoot } from '../infra/paths.js';
import { cpuSecondsByGroup, machineDescription } from './proc-stats.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    records: { type: 'string', default: '100000' },
    warmup: { type: 'string', default: '10000' },
    users: { type: 'string', default: '1000' },
    bytes: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '64' },
    inflight: { type: 'string', default: '2000' },
    'timeout-s': { type: 'string', default: '120' },
    out: { type: 'string', default: 'scripts/bench/results/kafka-clients.json' },
    // Internal: run one measurement in this process and print its JSON on stdout.
    child: { type: 'string' },
    run: { type: 'string' },
    'broker-pid': { type: 'string' },
  },
});

const positive = (name: keyof typeof values): number => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n <= 0)
    throw new Error(`--${name} must be a positive integer (got ${String(values[name])})`);
  return n;
};

const settings = {
  runs: positive('runs'),
  records: positive('records'),
  warmup: positive('warmup'),
  users: positive('users'),
  bytes: positive('bytes'),
  concurrency: positive('concurrency'),
  inflight: positive('inflight'),
  timeoutMs: positive('timeout-s') * 1000,
  partitions: 6,
};

interface PhaseResult {
  records: number;
  seconds: number;
  recordsPerSecond: number;
  /** Client process CPU (user + system) per record. */
  cpuUsPerRecord: number;
  /** Broker process CPU per record over the same window. */
  brokerCpuUsPerRecord: number | null;
}

interface Measurement {
  client: KafkaClientName;
  run: number;
  produce: PhaseResult;
  consume: PhaseResult;
}

const progress = (line: string) => process.stderr.write(`[bench:kafka] ${line}\n`);

/** A JSON value of about `bytes` characters, as the relay's events are. */
function recordFor(i: number): BusRecord {
  const userid = `user-${i % settings.users}`;
  const head = `{"v":1,"type":"response.delta","userid":"${userid}","request_id":"r-${i}","seq":${i},"delta":"`;
  const pad = Math.max(0, settings.bytes - head.length - 2);
  return { key: userid, value: `${head}${'x'.repeat(pad)}"}`, headers: { correlation_id: `c-${i}` } };
}

async function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} took over ${settings.timeoutMs} ms`)),
          settings.timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Publishes records [from, to) one per call, at most `inflight` calls outstanding. */
async function produce(bus: Bus, topic: string, from: number, to: number): Promise<void> {
  let next = from;
  const worker = async () => {
    while (next < to) await bus.publish(topic, [recordFor(next++)]);
  };
  await Promise.all(Array.from({ length: Math.min(settings.inflight, to - from) }, worker));
}

async function brokerCpuSeconds(pid: number | undefined): Promise<number | null> {
  if (pid === undefined) return null;
  const cpu = await cpuSecondsByGroup({ kafka: [pid] });
  return cpu.kafka ?? null;
}

function phase(records: number, ms: number, cpuUs: number, brokerS: number | null): PhaseResult {
  return {
    records,
    seconds: ms / 1000,
    recordsPerSecond: records / (ms / 1000),
    cpuUsPerRecord: cpuUs / records,
    brokerCpuUsPerRecord: brokerS === null ? null : (brokerS * 1e6) / records,
  };
}

/** One adapter, one run: warm up, produce, consume; in this (child) process. */
async function measure(
  client: KafkaClientName,
  run: number,
  brokerPid: number | undefined,
): Promise<Measurement> {
  const brokers = serviceEndpoints().kafkaBrokers.split(',');
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const tag = `${client}-${Date.now().toString(36)}-${run}`;
  const fatal: Error[] = [];
  const bus = await createKafkaClientBus({
    client,
    brokers,
    clientId: `bench-${tag}`,
    logger,
    onFatal: (e) => fatal.push(e),
  });
  await bus.connect();
  try {
    // Warm-up: the same path once on its own topic, not measured.
    const warmTopic = `bench-warm-${tag}`;
    const topic = `bench-${tag}`;
    await bus.ensureTopics([
      { topic: warmTopic, partitions: settings.partitions },
      { topic, partitions: settings.partitions },
    ]);
    await withDeadline(produce(bus, warmTopic, 0, settings.warmup), 'warm-up produce');
    await withDeadline(consume(bus, warmTopic, settings.warmup, `warm-${tag}`), 'warm-up consume');

    const cpu0 = process.cpuUsage();
    const broker0 = await brokerCpuSeconds(brokerPid);
    const t0 = performance.now();
    await withDeadline(produce(bus, topic, 0, settings.records), 'produce');
    const produceMs = performance.now() - t0;
    const produceCpu = process.cpuUsage(cpu0);
    const broker1 = await brokerCpuSeconds(brokerPid);

    const consumed = await withDeadline(
      consume(bus, topic, settings.records, `g-${tag}`, brokerPid),
      'consume',
    );
    if (fatal.length > 0) throw fatal[0];
    return {
      client,
      run,
      produce: phase(
        settings.records,
        produceMs,
        produceCpu.user + produceCpu.system,
        broker0 === null || broker1 === null ? null : broker1 - broker0,
      ),
      consume: consumed,
    };
  } finally {
    await bus.close();
  }
}

/**
 * Reads `count` records with a new group from the start; the clock and CPU counters start at the
 * first record (so the group join is not counted) and stop at the last.
 */
async function consume(
  bus: Bus,
  topic: string,
  count: number,
  groupId: string,
  brokerPid?: number,
): Promise<PhaseResult> {
  let seen = 0;
  let started: { t: number; cpu: NodeJS.CpuUsage; broker: Promise<number | null> } | undefined;
  let finish: (r: PhaseResult) => void = () => {};
  const done = new Promise<PhaseResult>((resolve) => (finish = resolve));
  const subscription = await bus.subscribe({
    groupId,
    topics: [topic],
    fromBeginning: true,
    concurrency: settings.concurrency,
    ordering: 'key',
    handler: async () => {
      if (!started)
        started = { t: performance.now(), cpu: process.cpuUsage(), broker: brokerCpuSeconds(brokerPid) };
      if (++seen === count) {
        const s = started;
        const ms = performance.now() - s.t;
        const cpu = process.cpuUsage(s.cpu);
        void Promise.all([s.broker, brokerCpuSeconds(brokerPid)]).then(([b0, b1]) =>
          // The first record started the clock: count the other count - 1.
          finish(phase(count - 1, ms, cpu.user + cpu.system, b0 === null || b1 === null ? null : b1 - b0)),
        );
      }
    },
  });
  try {
    return await done;
  } finally {
    await subscription.close();
  }
}

function runChild(client: KafkaClientName, run: number, brokerPid: number | undefined): Promise<Measurement> {
  const self = fileURLToPath(import.meta.url);
  const args = ['--import', 'tsx', '--conditions=source', self, '--child', client, '--run', String(run)];
  for (const [k, v] of Object.entries(values)) {
    if (k === 'child' || k === 'run' || k === 'out' || k === 'broker-pid' || v === undefined) continue;
    args.push(`--${k}`, String(v));
  }
  if (brokerPid !== undefined) args.push('--broker-pid', String(brokerPid));
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    // Hard bound: warm-up, produce and consume phases, plus start-up.
    const killer = setTimeout(() => child.kill('SIGKILL'), settings.timeoutMs * 5 + 30_000);
    child.once('exit', (code, signal) => {
      clearTimeout(killer);
      if (code !== 0) {
        reject(new Error(`measurement ${client} run ${run} exited with ${signal ?? code}`));
        return;
      }
      try {
        resolvePromise(JSON.parse(out.trim().split('\n').pop() ?? '') as Measurement);
      } catch (err) {
        reject(new Error(`measurement ${client} run ${run} printed no result`, { cause: err }));
      }
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

type Figure = 'recordsPerSecond' | 'cpuUsPerRecord' | 'brokerCpuUsPerRecord';

function summarise(measurements: Measurement[]) {
  const out: Record<
    string,
    Record<'produce' | 'consume', Record<Figure, { median: number | null; runs: Array<number | null> }>>
  > = {};
  for (const client of KAFKA_CLIENTS) {
    const mine = measurements.filter((m) => m.client === client);
    if (mine.length === 0) continue;
    const per = (p: 'produce' | 'consume', f: Figure) => {
      const runs = mine.map((m) => m[p][f]);
      const known = runs.filter((v): v is number => v !== null);
      return { median: known.length ? median(known) : null, runs };
    };
    out[client] = {
      produce: {
        recordsPerSecond: per('produce', 'recordsPerSecond'),
        cpuUsPerRecord: per('produce', 'cpuUsPerRecord'),
        brokerCpuUsPerRecord: per('produce', 'brokerCpuUsPerRecord'),
      },
      consume: {
        recordsPerSecond: per('consume', 'recordsPerSecond'),
        cpuUsPerRecord: per('consume', 'cpuUsPerRecord'),
        brokerCpuUsPerRecord: per('consume', 'brokerCpuUsPerRecord'),
      },
    };
  }
  return out;
}

function table(summary: ReturnType<typeof summarise>): string {
  const fmt = (v: number | null, digits: number) => (v === null ? '–' : v.toFixed(digits));
  const runs = (xs: Array<number | null>, digits: number) => xs.map((x) => fmt(x, digits)).join(' / ');
  const lines = [
    '| client | phase | records/s (median) | runs | client CPU µs/record (median) | runs | broker CPU µs/record (median) |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const [client, phases] of Object.entries(summary)) {
    for (const p of ['produce', 'consume'] as const) {
      const f = phases[p];
      lines.push(
        `| ${client} | ${p} | ${fmt(f.recordsPerSecond.median, 0)} | ${runs(f.recordsPerSecond.runs, 0)} | ${fmt(f.cpuUsPerRecord.median, 2)} | ${runs(f.cpuUsPerRecord.runs, 2)} | ${fmt(f.brokerCpuUsPerRecord.median, 2)} |`,
      );
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (values.child) {
    const client = values.child as KafkaClientName;
    if (!KAFKA_CLIENTS.includes(client)) throw new Error(`unknown client ${client}`);
    const brokerPid = values['broker-pid'] ? Number(values['broker-pid']) : undefined;
    const result = await measure(client, Number(values.run ?? 1), brokerPid);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }

  const kafka = await startService('kafka');
  progress(
    `kafka at ${serviceEndpoints().kafkaBrokers} (pid ${kafka.pid ?? '?'}${kafka.startedNow ? ', started for this run' : ''})`,
  );
  const started = new Date();
  const measurements: Measurement[] = [];
  try {
    for (let run = 1; run <= settings.runs; run++) {
      const order = run % 2 === 1 ? [...KAFKA_CLIENTS] : [...KAFKA_CLIENTS].reverse();
      for (const client of order) {
        progress(
          `run ${run}/${settings.runs}: ${client} (${settings.warmup} warm-up + ${settings.records} records) …`,
        );
        const m = await runChild(client, run, kafka.pid ?? undefined);
        measurements.push(m);
        progress(
          `run ${run}/${settings.runs}: ${client} produce ${m.produce.recordsPerSecond.toFixed(0)} rec/s, ${m.produce.cpuUsPerRecord.toFixed(2)} µs/rec; consume ${m.consume.recordsPerSecond.toFixed(0)} rec/s, ${m.consume.cpuUsPerRecord.toFixed(2)} µs/rec`,
        );
      }
    }
  } finally {
    if (kafka.startedNow) await stopService('kafka');
  }
  const summary = summarise(measurements);
  const out = resolve(repoRoot, values.out);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(
    out,
    `${JSON.stringify(
      {
        startedAt: started.toISOString(),
        machine: await machineDescription(),
        node: process.version,
        settings,
        measurements,
        medians: summary,
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`${table(summary)}\n`);
  progress(`results in ${values.out}`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `[bench:kafka] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
