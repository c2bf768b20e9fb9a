import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { busContract, silentLogger, storeContract, uniqueName, waitFor } from '../testing/index.js';
import type { KafkaClientName } from '../config/fragments.js';
import { createKafkaClientBus } from './kafka-client.js';
import { createRedisPubSub, createRedisStore } from './redis-store.js';
import { startService, stopService } from '../../../scripts/infra/harness.js';

const brokers = inject('kafkaBrokers').split(',');
const redisUrl = inject('redisUrl');

/** Every Kafka adapter keeps the same contract on the real broker. */
const clients: KafkaClientName[] = ['kafkajs', 'platformatic'];

for (const client of clients) {
  busContract(`real Kafka (${client})`, {
    create: async (onFatal) =>
      await createKafkaClientBus({
        client,
        brokers,
        clientId: uniqueName('contract'),
        logger: silentLogger,
        onFatal,
        sessionTimeoutMs: 6000,
      }),
    timeoutMs: 30_000,
  });
}

storeContract('real Redis', {
  store: async () => createRedisStore({ url: redisUrl, logger: silentLogger }),
  pubsub: async () => createRedisPubSub({ url: redisUrl, logger: silentLogger }),
});

describe.each(clients)('Kafka consumer crash (separate process, SIGKILL, %s)', (client) => {
  const kafka = new Kafka({ clientId: 'crash-test-admin', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const children: ChildProcess[] = [];
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });
  afterAll(() => admin.disconnect());

  function startChild(topic: string, group: string): { child: ChildProcess; lines: string[] } {
    const file = fileURLToPath(new URL('../testing/kafka-consumer-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', file], {
      env: {
        ...process.env,
        BROKERS: brokers.join(','),
        KAFKA_CLIENT: client,
        TOPIC: topic,
        GROUP: group,
        SESSION_TIMEOUT_MS: '6000',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const lines: string[] = [];
    child.stdout
      ?.setEncoding('utf8')
      .on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
    return { child, lines };
  }

  async function committedOffset(group: string, topic: string): Promise<string | undefined> {
    const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return entry?.partitions[0]?.offset;
  }

  it('redelivers what a killed consumer had not committed, and nothing it had', async () => {
    await admin.connect();
    const topic = uniqueName('crash');
    const group = uniqueName('crash-g');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const producerBus = await createKafkaClientBus({
      client,
      brokers,
      clientId: 'crash-producer',
      logger: silentLogger,
      onFatal: () => {},
    });
    cleanup.push(() => producerBus.close());
    await producerBus.connect();

    const { child, lines } = startChild(topic, group);
    await waitFor(() => lines.includes('ready'), { timeoutMs: 30_000, message: 'child consumer ready' });
    await producerBus.publish(topic, [{ key: 'u', value: 'done-1' }]);
    await waitFor(() => lines.includes('handled:done-1'), { timeoutMs: 15_000 });
    // Committed after the handler resolved: the next offset to read is 1.
    await waitFor(async () => (await committedOffset(group, topic)) === '1', { timeoutMs: 10_000 });

    await producerBus.publish(topic, [{ key: 'u', value: 'hang-2' }]);
    await waitFor(() => lines.includes('holding:hang-2'), { timeoutMs: 15_000 });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(await committedOffset(group, topic)).toBe('1');

    // A new member of the same group gets the uncommitted message, and not the committed one.
    const seen: string[] = [];
    const bus = await createKafkaClientBus({
      client,
      brokers,
      clientId: 'crash-successor',
      logger: silentLogger,
      onFatal: () => {},
      sessionTimeoutMs: 6000,
    });
    cleanup.push(() => bus.close());
    await bus.connect();
    await bus.subscribe({
      groupId: group,
      topics: [topic],
      fromBeginning: true,
      handler: async (m) => void seen.push(m.value),
    });
    await waitFor(() => seen.length >= 1, { timeoutMs: 40_000, message: 'redelivery after the crash' });
    expect(seen).toEqual(['hang-2']);
    await waitFor(async () => (await committedOffset(group, topic)) === '2', { timeoutMs: 10_000 });
  });
});

describe.each(clients)('Kafka: a committed offset the log no longer has (%s)', (client) => {
  const kafka = new Kafka({ clientId: 'retention-test-admin', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });
  afterAll(() => admin.disconnect());

  it('a fromBeginning group resumes from the oldest record still there', async () => {
    await admin.connect();
    const topic = uniqueName('retention');
    const groupId = uniqueName('retention-g');
    const bus = await createKafkaClientBus({
      client,
      brokers,
      clientId: uniqueName('retention'),
      logger: silentLogger,
      onFatal: () => {},
      sessionTimeoutMs: 6000,
    });
    cleanup.push(() => bus.close());
    await bus.connect();
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    const subscribe = async (seen: string[]) => {
      const s = await bus.subscribe({
        groupId,
        topics: [topic],
        fromBeginning: true,
        handler: async (m) => void seen.push(m.value),
      });
      cleanup.push(() => s.close());
      return s;
    };
    const first: string[] = [];
    const s1 = await subscribe(first);
    await bus.publish(topic, [
      { key: 'k', value: 'a' },
      { key: 'k', value: 'b' },
    ]);
    await waitFor(() => first.length === 2, { timeoutMs: 30_000 });
    await s1.close();
    // Committed: 2. Retention (here deleteRecords) then moves the log start past it, to 4.
    await bus.publish(
      topic,
      ['c', 'd', 'e', 'f'].map((value) => ({ key: 'k', value })),
    );
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '4' }] });
    const second: string[] = [];
    await subscribe(second);
    await waitFor(() => second.length >= 2, { timeoutMs: 30_000, message: 'records after the reset' });
    expect(second).toEqual(['e', 'f']);
  });
});

describe('Redis restart', () => {
  it('pub/sub delivery continues after Redis restarts (every channel resubscribed)', async () => {
    let resubscribed = 0;
    const sub = createRedisPubSub({
      url: redisUrl,
      logger: silentLogger,
      onResubscribed: (n) => (resubscribed = n),
    });
    const pub = createRedisPubSub({ url: redisUrl, logger: silentLogger });
    try {
      const channels = [uniqueName('user:r1'), uniqueName('user:r2')];
      const got: string[] = [];
      for (const ch of channels) await sub.subscribe(ch, (m) => void got.push(m));
      await pub.publish(channels[0] as string, 'before');
      await waitFor(() => got.includes('before'));

      await stopService('redis');
      await startService('redis');
      await waitFor(() => resubscribed === 2, { timeoutMs: 20_000, message: 'resubscribed after restart' });

      for (const ch of channels) {
        await waitFor(async () => (await pub.publish(ch, `after:${ch}`)) === 1, { timeoutMs: 10_000 });
      }
      await waitFor(() => channels.every((ch) => got.includes(`after:${ch}`)), { timeoutMs: 5000 });
    } finally {
      await sub.close();
      await pub.close();
    }
  });
});

describe('Redis pub/sub, first use', () => {
  it('a burst of subscribes on a fresh connection all succeed and receive (ioredis ready-check race)', async () => {
    // A gateway's first burst of sockets subscribes while the connection is still being set up;
    // ioredis' ready check (INFO) must not land after the first SUBSCRIBE.
    for (let round = 0; round < 5; round++) {
      const pubsub = createRedisPubSub({ url: redisUrl, logger: silentLogger });
      try {
        const channels = Array.from({ length: 200 }, (_, i) => uniqueName(`burst-${round}-${i}`));
        const got = new Set<string>();
        // Spread over the connection's setup, as sockets arrive one by one.
        const subscribing: Array<Promise<void>> = [];
        for (const c of channels) {
          subscribing.push(pubsub.subscribe(c, (_m, channel) => got.add(channel)));
          await new Promise((r) => setImmediate(r));
        }
        const results = await Promise.allSettled(subscribing);
        expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
        await Promise.all(channels.map((c) => pubsub.publish(c, 'x')));
        await waitFor(() => got.size === channels.length);
      } finally {
        await pubsub.close();
      }
    }
  });
});
