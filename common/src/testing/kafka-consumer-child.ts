/**
 * A consumer in its own process, for tests that SIGKILL it. Handles messages from TOPIC in GROUP;
 * prints `handled:<value>` when its handler finishes and `holding:<value>` for a value starting with
 * "hang" (whose handler never finishes, so it is never committed). KAFKA_CLIENT picks the adapter.
 */
import { createKafkaClientBus } from '../transport/kafka-client.js';
import { silentLogger } from './silent-logger.js';

const { BROKERS = '', TOPIC = '', GROUP = '', SESSION_TIMEOUT_MS = '6000', KAFKA_CLIENT } = process.env;
const bus = await createKafkaClientBus({
  client: KAFKA_CLIENT === 'platformatic' ? 'platformatic' : 'kafkajs',
  brokers: BROKERS.split(','),
  clientId: 'consumer-child',
  logger: silentLogger,
  sessionTimeoutMs: Number(SESSION_TIMEOUT_MS),
  onFatal: (err) => {
    console.error(`fatal:${err.message}`);
    process.exit(1);
  },
});
await bus.connect();
const sub = await bus.subscribe({
  groupId: GROUP,
  topics: [TOPIC],
  fromBeginning: true,
  handler: async (m) => {
    if (m.value.startsWith('hang')) {
      console.log(`holding:${m.value}`);
      await new Promise(() => {});
    }
    console.log(`handled:${m.value}`);
  },
});
const timer = setInterval(() => {
  if (sub.ready) {
    console.log('ready');
    clearInterval(timer);
  }
}, 50);
