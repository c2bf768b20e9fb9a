import {
  deliveryFragment,
  httpFragment,
  kafkaFragment,
  logFragment,
  openaiFragment,
  redisFragment,
  tracingFragment,
  fragment,
  int,
  type Env,
} from '@relay/common';
import { consumerFragment, fallbackFragment, knowledgeFragment, mockModelFragment } from '@relay/ai-consumer';
import { relayFragment } from '@relay/message-relay';
import { gatewayFragment } from '@relay/websocket-server';

export const SERVICE = 'ai-relay';

/** Settings only the embedded app has: the in-process store that stands in for Redis. */
export const embeddedFragment = fragment(
  {
    /**
     * Most keys the in-process store holds before it evicts the oldest ones that have a TTL (dedupe
     * markers first), like Redis' `maxmemory` with `volatile-lru`. Ignored when Redis is used.
     * @default 100000
     */
    MEMORY_STORE_MAX_KEYS: int(1000, 100_000_000).default(100_000),
  },
  (e) => ({ memoryStoreMaxKeys: e.MEMORY_STORE_MAX_KEYS }),
);

/** The embedded app reads every service's variables: it is all of them in one process. */
export const configFragments = {
  kafka: kafkaFragment,
  redis: redisFragment,
  http: httpFragment({ service: SERVICE, port: 8080 }),
  log: logFragment,
  tracing: tracingFragment({ service: SERVICE }),
  openai: openaiFragment,
  fallback: fallbackFragment,
  consumer: consumerFragment,
  knowledge: knowledgeFragment,
  mockModel: mockModelFragment,
  gateway: gatewayFragment,
  relay: relayFragment,
  delivery: deliveryFragment,
  embedded: embeddedFragment,
};

/** Which transports to use: the real ones only when their variables are set (SPEC: embedded default). */
export function chooseTransports(env: Env): { kafka: boolean; redis: boolean } {
  return { kafka: Boolean(env.KAFKA_BOOTSTRAP_SERVERS), redis: Boolean(env.REDIS_URL || env.REDIS_HOST) };
}
