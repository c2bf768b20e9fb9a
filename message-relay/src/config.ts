import {
  deliveryFragment,
  fragment,
  httpFragment,
  int,
  kafkaFragment,
  logFragment,
  redisFragment,
  tracingFragment,
} from '@relay/common';
import { z } from 'zod';

export const SERVICE = 'message-relay';

/**
 * The relay's own knobs. The replay log's size and lifetime and the dedupe window come from the
 * shared `deliveryFragment`, because the gateway reads the same values for its resume gap check.
 */
export const relayFragment = fragment(
  {
    /** Kafka consumer group; every relay instance joins the same one (SPEC §3). @default message-relay */
    RELAY_GROUP_ID: z.string().min(1).max(255).default(SERVICE),
    /**
     * Events one instance handles at once, across users; one user's events stay in order (the bus
     * runs one lane per Kafka key, and the key is the userid). @default 16
     */
    RELAY_CONCURRENCY: int(1, 1000).default(16),
  },
  (e) => ({
    groupId: e.RELAY_GROUP_ID,
    concurrency: e.RELAY_CONCURRENCY,
  }),
);

export type RelaySettings = ReturnType<typeof relayFragment.build>;
/** Replay log cap and TTL, and how long a request's relay state is kept (docs/delivery.md). */
export type DeliverySettings = ReturnType<typeof deliveryFragment.build>;

/** Everything message-relay reads from the environment (see .env.example). */
export const configFragments = {
  kafka: kafkaFragment,
  redis: redisFragment,
  http: httpFragment({ service: SERVICE, port: 9102 }),
  log: logFragment,
  tracing: tracingFragment({ service: SERVICE }),
  relay: relayFragment,
  delivery: deliveryFragment,
};
