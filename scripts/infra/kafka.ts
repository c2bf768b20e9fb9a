import { createHash } from 'node:crypto';
import { access, copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { requireBinary } from './apt.js';
import { InfraError } from './errors.js';
import { checkPort, defaultPorts, portFromEnv } from './ports.js';
import { repoRoot } from './paths.js';
import { seconds } from './progress.js';
import { runChecked } from './process-control.js';
import type { ServiceContext, ServiceDefinition, StartOptions } from './service.js';

export const KAFKA_VERSION = '3.9.1';
const POM = join(repoRoot, 'scripts', 'infra', 'kafka', 'pom.xml');
/** Written last into the jar dir; holds the pom's hash so a changed pom re-resolves. */
const MARKER = '.complete';

export function kafkaLibsDir(context: ServiceContext): string {
  return join(context.paths.cacheDir, `kafka-${KAFKA_VERSION}`, 'libs');
}

async function ensureJars(context: ServiceContext): Promise<void> {
  const libs = kafkaLibsDir(context);
  const pomHash = createHash('sha256')
    .update(await readFile(POM))
    .digest('hex');
  const marker = await readFile(join(libs, MARKER), 'utf8').catch(() => null);
  if (marker?.trim() === pomHash) return;

  const mvn = await requireBinary('mvn', 'kafka');
  const base = join(libs, '..');
  const partial = `${libs}.partial`;
  await mkdir(base, { recursive: true });
  await rm(partial, { recursive: true, force: true });
  // Maven runs on a copy of the pom in the cache, so nothing (target/) is written into the repo.
  await copyFile(POM, join(base, 'pom.xml'));
  context.say(`fetching Kafka ${KAFKA_VERSION} jars with maven into ${libs} …`);
  const started = performance.now();
  await runChecked(
    'mvn dependency:copy-dependencies',
    mvn,
    [
      '-q',
      '-B',
      '-Dstyle.color=never',
      '-f',
      join(base, 'pom.xml'),
      'dependency:copy-dependencies',
      `-DoutputDirectory=${partial}`,
      '-DincludeScope=runtime',
    ],
    { cwd: base, env: context.env },
  );
  await writeFile(join(partial, MARKER), `${pomHash}\n`);
  await rm(libs, { recursive: true, force: true });
  await rename(partial, libs);
  context.say(`jars ready in ${seconds(started)}`);
}

/** Kafka 3.9 needs Java 11+; an older default java would fail with an obscure class error. */
async function requireJava(context: ServiceContext): Promise<string> {
  const java = await requireBinary('java', 'kafka');
  const output = await runChecked('java -version', java, ['-version'], { env: context.env });
  const match = /version "(\d+)(?:\.(\d+))?/.exec(output);
  const major = match ? Number(match[1] === '1' ? match[2] : match[1]) : NaN;
  if (!(major >= 11)) {
    throw new InfraError(
      `Kafka ${KAFKA_VERSION} needs Java 11 or newer; ${java} is: ${output.split('\n')[0]}`,
    );
  }
  return java;
}

export function serverProperties(options: { port: number; controllerPort: number; logDir: string }): string {
  const { port, controllerPort, logDir } = options;
  return [
    '# Written by scripts/infra/kafka.ts on every start; edits are overwritten.',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
    'inter.broker.listener.name=PLAINTEXT',
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    `log.dirs=${logDir}`,
    'num.partitions=1',
    'auto.create.topics.enable=true',
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    // Lets tests use short consumer session timeouts to see a dead member leave quickly.
    'group.min.session.timeout.ms=1000',
    // After a crash (SIGKILL) the restarted broker cannot register until the controller lets
    // the dead incarnation's session lapse: 9 s by default, which made crash tests wait ~14 s.
    'broker.session.timeout.ms=3000',
    'broker.heartbeat.interval.ms=1000',
    '',
  ].join('\n');
}

const LOG4J = [
  'log4j.rootLogger=WARN, stdout',
  'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
  'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
  'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
  // BrokerServer logs the start and shutdown transitions, the lines worth seeing.
  'log4j.logger.kafka.server.BrokerServer=INFO',
  '',
].join('\n');

function kafkaPorts(
  context: ServiceContext,
  options: StartOptions,
): { port: number; controllerPort: number } {
  const port =
    options.port !== undefined
      ? checkPort(options.port, 'kafka port')
      : portFromEnv(context.env, 'KAFKA_PORT', defaultPorts.kafka);
  const controllerPort =
    options.controllerPort !== undefined
      ? checkPort(options.controllerPort, 'kafka controller port')
      : portFromEnv(context.env, 'KAFKA_CONTROLLER_PORT', defaultPorts.kafkaController);
  if (controllerPort === port) {
    throw new InfraError(`kafka: broker and controller port are both ${port}; set KAFKA_CONTROLLER_PORT`);
  }
  return { port, controllerPort };
}

export const kafka: ServiceDefinition = {
  name: 'kafka',
  processMarker: 'kafka.Kafka',
  portVariables: ['KAFKA_PORT', 'KAFKA_CONTROLLER_PORT'],
  startTimeoutMs: 90_000,
  stopTimeoutMs: 30_000,
  requirements: [
    { binary: 'java', packages: ['openjdk-17-jre-headless'] },
    { binary: 'mvn', packages: ['maven'] },
  ],

  async installExtras(context) {
    await ensureJars(context);
  },

  ports(context, options) {
    const { port, controllerPort } = kafkaPorts(context, options);
    return { port, all: [port, controllerPort] };
  },

  async prepare(context, options) {
    // The jars are in place: startService ran ensureInstalled (and so installExtras) first.
    const java = await requireJava(context);
    const dir = context.files.dataDir;
    const logDir = join(dir, 'data');
    const properties = join(dir, 'server.properties');
    const log4j = join(dir, 'log4j.properties');
    const classpath = join(kafkaLibsDir(context), '*');
    await mkdir(logDir, { recursive: true });
    await writeFile(properties, serverProperties({ ...kafkaPorts(context, options), logDir }));
    await writeFile(log4j, LOG4J);

    // Formatting happens once; afterwards the same data dir (and cluster id) is reused.
    const formatted = await access(join(logDir, 'meta.properties')).then(
      () => true,
      () => false,
    );
    if (!formatted) {
      const started = performance.now();
      const toolArgs = ['-cp', classpath, `-Dlog4j.configuration=file:${log4j}`, 'kafka.tools.StorageTool'];
      const uuid = (
        await runChecked('kafka-storage random-uuid', java, [...toolArgs, 'random-uuid'], {
          env: context.env,
        })
      )
        .trim()
        .split('\n')
        .pop();
      if (!uuid) throw new InfraError('kafka-storage random-uuid printed nothing');
      await runChecked('kafka-storage format', java, [...toolArgs, 'format', '-t', uuid, '-c', properties], {
        env: context.env,
      });
      context.say(`formatted ${logDir} (cluster ${uuid}) in ${seconds(started)}`);
    }

    return {
      command: java,
      args: [
        '-Xms256m',
        '-Xmx512m',
        '-Djava.awt.headless=true',
        `-Dlog4j.configuration=file:${log4j}`,
        '-cp',
        classpath,
        'kafka.Kafka',
        properties,
      ],
      cwd: dir,
    };
  },

  async probe(port) {
    const admin = new Kafka({
      clientId: 'infra-probe',
      brokers: [`127.0.0.1:${port}`],
      logLevel: logLevel.NOTHING,
      connectionTimeout: 1_000,
      requestTimeout: 2_000,
      retry: { retries: 0 },
    }).admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      return cluster.brokers.length > 0;
    } catch {
      return false;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  },
};
