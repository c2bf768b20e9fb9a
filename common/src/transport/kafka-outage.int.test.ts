import net from 'node:net';
import { connectionsConnectsChannel, type Connection } from '@platformatic/kafka';
import type { ISocketFactory } from 'kafkajs';
import { pino } from 'pino';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { silentLogger, uniqueName, waitFor } from '../testing/index.js';
import type { KafkaClientName } from '../config/fragments.js';
import { BusUnavailableError, type Bus, type FatalHandler } from './bus.js';
import { createKafkaBus, type KafkaBusOptions } from './kafka-bus.js';
import { createPlatformaticBus } from './platformatic-bus.js';

const brokers = inject('kafkaBrokers').split(',');

/**
 * Sockets for one client that the test can cut, as if the broker went away: open connections are
 * destroyed and new ones are refused until `restore()`. Other clients (and other helpers' tests)
 * keep using the real broker, which never stops.
 */
function cuttableSockets(): { factory: ISocketFactory; outage(): void; restore(): void } {
  const open = new Set<net.Socket>();
  let down = false;
  return {
    factory: ({ host, port, onConnect }) => {
      // Nothing listens on port 1: a real ECONNREFUSED, as from a stopped broker.
      const socket = down
        ? net.connect({ host: '127.0.0.1', port: 1 }, onConnect)
        : net.connect({ host, port }, onConnect);
      socket.setKeepAlive(true, 60_000);
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      return socket;
    },
    outage() {
      down = true;
      // With an error, as a reset from a dying broker: kafkajs listens for 'error' and 'end', and a
      // plain destroy() emits neither (its requests would hang until their timeout).
      for (const socket of open) {
        socket.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
      }
    },
    restore() {
      down = false;
    },
  };
}

/**
 * The same cut for @platformatic/kafka, which takes no socket factory: every connection of the bus
 * carries `context`, and the connect diagnostics channel hands over each socket as it is made.
 */
function cuttablePlatformaticSockets(): {
  context: object;
  outage(): void;
  restore(): void;
  dispose(): void;
} {
  const context = { outageTest: uniqueName('cut') };
  const open = new Set<net.Socket>();
  let down = false;
  const reset = (socket: net.Socket, code: string) =>
    socket.destroy(Object.assign(new Error(`connect ${code}`), { code }));
  const onConnect = (message: unknown) => {
    const connection = (message as { connection?: Connection }).connection;
    const socket = connection?.socket;
    if (!connection || connection.context !== context || !socket) return;
    // While down, a new connection fails as one to a stopped broker would.
    if (down) reset(socket, 'ECONNREFUSED');
    else if (!open.has(socket)) {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    }
  };
  // Published once connect() made its socket (synchronously, before it connects).
  connectionsConnectsChannel.end.subscribe(onConnect);
  return {
    context,
    outage() {
      down = true;
      for (const socket of open) reset(socket, 'ECONNRESET');
    },
    restore() {
      down = false;
    },
    dispose() {
      connectionsConnectsChannel.end.unsubscribe(onConnect);
    },
  };
}

interface CuttableBus {
  bus: Bus;
  outage(): void;
  restore(): void;
  dispose(): void;
}

interface OutageOptions {
  brokers: string[];
  clientId: string;
  logger: KafkaBusOptions['logger'];
  onFatal: FatalHandler;
  publishTimeoutMs: number;
}

/** Per adapter: a bus the test can cut off, a bus that never reaches a broker, and its restart log. */
const adapters: Array<{
  client: KafkaClientName;
  cuttable(options: OutageOptions): CuttableBus;
  unreachable(options: OutageOptions): Bus;
  restartLog: string;
}> = [
  {
    client: 'kafkajs',
    cuttable(options) {
      const sockets = cuttableSockets();
      const bus = createKafkaBus({
        ...options,
        sessionTimeoutMs: 6000,
        connectionTimeoutMs: 500,
        // Small, so the outage exhausts the consumer's retries and takes the crash-restart path.
        retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 300 },
        socketFactory: sockets.factory,
      });
      return { bus, outage: sockets.outage, restore: sockets.restore, dispose: () => {} };
    },
    unreachable: (options) =>
      createKafkaBus({
        ...options,
        connectionTimeoutMs: 500,
        retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 200 },
      }),
    restartLog: 'kafkajs restarts it',
  },
  {
    client: 'platformatic',
    cuttable(options) {
      const sockets = cuttablePlatformaticSockets();
      const bus = createPlatformaticBus({
        ...options,
        sessionTimeoutMs: 6000,
        connectionTimeoutMs: 500,
        retries: 2,
        retryDelayMs: 100,
        context: sockets.context,
      });
      return { bus, outage: sockets.outage, restore: sockets.restore, dispose: sockets.dispose };
    },
    unreachable: (options) =>
      createPlatformaticBus({ ...options, connectionTimeoutMs: 500, retries: 1, retryDelayMs: 100 }),
    restartLog: 'restarting it, and it rejoins its group',
  },
];

/** A pino logger that keeps each line's `msg`, to see which path the bus took. */
function capturingLogger(): { logger: KafkaBusOptions['logger']; messages: string[] } {
  const messages: string[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        const parsed: unknown = JSON.parse(line);
        if (parsed && typeof parsed === 'object' && 'msg' in parsed && typeof parsed.msg === 'string') {
          messages.push(parsed.msg);
        }
      },
    },
  );
  return { logger, messages };
}

describe.each(adapters)('Kafka outages ($client)', (adapter) => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });
  function track(bus: Bus): Bus {
    cleanup.push(() => bus.close());
    return bus;
  }

  it('publish rejects within publishTimeoutMs when the broker is unreachable, and healthy() is false', async () => {
    const publishTimeoutMs = 1500;
    const bus = track(
      adapter.unreachable({
        brokers: ['127.0.0.1:1'],
        clientId: uniqueName('unreachable'),
        logger: silentLogger,
        onFatal: () => {},
        publishTimeoutMs,
      }),
    );
    await expect(bus.connect()).rejects.toThrow();
    expect(bus.healthy()).toBe(false);

    const started = performance.now();
    const error = await bus.publish('never-created', [{ key: 'u', value: '{}' }]).then(
      () => undefined,
      (err: unknown) => err,
    );
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(BusUnavailableError);
    expect((error as BusUnavailableError).code).toBe('upstream_unavailable');
    expect(elapsed).toBeLessThan(publishTimeoutMs + 1000);
    expect(bus.healthy()).toBe(false);
  });

  it('a consumer survives a broker outage (crash, restart, rejoin) and a publish during it fails fast', async () => {
    const topic = uniqueName('outage');
    const groupId = uniqueName('outage-g');
    const publishTimeoutMs = 1500;
    const healthyBus = track(
      createKafkaBus({
        brokers,
        clientId: uniqueName('outage-peer'),
        logger: silentLogger,
        onFatal: () => {},
      }),
    );
    await healthyBus.connect();
    await healthyBus.ensureTopics([{ topic, partitions: 1 }]);

    const { logger, messages } = capturingLogger();
    const fatal: Error[] = [];
    const sockets = adapter.cuttable({
      brokers,
      clientId: uniqueName('outage-client'),
      logger,
      onFatal: (err) => fatal.push(err),
      publishTimeoutMs,
    });
    cleanup.push(async () => sockets.dispose());
    const bus = track(sockets.bus);
    await bus.connect();
    const seen: string[] = [];
    const subscription = await bus.subscribe({
      groupId,
      topics: [topic],
      fromBeginning: true,
      concurrency: 4,
      handler: async (m) => void seen.push(m.value),
    });
    await waitFor(() => subscription.ready, { timeoutMs: 30_000, message: 'subscription ready' });
    await healthyBus.publish(topic, [{ key: 'u1', value: 'before' }]);
    await waitFor(() => seen.includes('before'), { timeoutMs: 15_000 });

    sockets.outage();
    const started = performance.now();
    const error = await bus.publish(topic, [{ key: 'u1', value: 'lost' }]).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(BusUnavailableError);
    expect(performance.now() - started).toBeLessThan(publishTimeoutMs + 1000);
    expect(bus.healthy()).toBe(false);
    await waitFor(() => messages.some((m) => m.includes(adapter.restartLog)), {
      timeoutMs: 30_000,
      message: 'consumer crash with restart',
    });
    expect(subscription.ready).toBe(false);

    // Published while this client is cut off: the group must pick it up once it is back.
    await healthyBus.publish(topic, [{ key: 'u2', value: 'during' }]);
    sockets.restore();
    await waitFor(() => subscription.ready, { timeoutMs: 40_000, message: 'rejoined after the outage' });
    await waitFor(() => seen.includes('during'), { timeoutMs: 20_000 });
    await waitFor(() => bus.healthy(), { timeoutMs: 20_000, message: 'producer healthy again' });
    await bus.publish(topic, [{ key: 'u3', value: 'after' }]);
    await waitFor(() => seen.includes('after'), { timeoutMs: 20_000 });
    expect(fatal).toEqual([]);
    // 'before' was committed before the outage ('lost' can still reach Kafka if a kafkajs retry
    // outlived the timeout); 'during' and 'after' arrive once each, in publish order.
    expect(seen.filter((v) => v === 'during' || v === 'after')).toEqual(['during', 'after']);
  });
});
