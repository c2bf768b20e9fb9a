import { fragment, httpFragment, int, kafkaFragment, logFragment, redisFragment } from '@relay/common';
import { z } from 'zod';

export const SERVICE = 'message-relay';

/** The relay's own knobs: consumer group and the per-user replay log that backs resume. */
export const relayFragment = fragment(
  {
    /** Kafka consumer group; every relay instance joins the same one (SPEC §3). @default message-relay */
    RELAY_GROUP_ID: z.string().min(1).max(255).default(SERVICE),
    /** Partitions one instance handles at once; order within a partition (one user) is kept. @default 6 */
    RELAY_PARTITIONS_CONCURRENTLY: int(1, 1000).default(6),
    /** Frames kept per user for resume (exact cap of the replay stream). @default 1000 */
    REPLAY_MAX_EVENTS: int(1, 1_000_000).default(1000),
    /** How long a user's replay log outlives their last frame: the resume window. @default 3600 */
    REPLAY_TTL_SECONDS: int(1, 30 * 86_400).default(3600),
  },
  (e) => ({
    groupId: e.RELAY_GROUP_ID,
    partitionsConcurrently: e.RELAY_PARTITIONS_CONCURRENTLY,
    replayMaxEvents: e.REPLAY_MAX_EVENTS,
    replayTtlMs: e.REPLAY_TTL_SECONDS * 1000,
  }),
);

export type RelaySettings = ReturnType<typeof relayFragment.build>;

/** Everything message-relay reads from the environment (see .env.example). */
export const configFragments = {
  kafka: kafkaFragment,
  redis: redisFragment,
  http: httpFragment({ service: SERVICE, port: 9102 }),
  log: logFragment,
  relay: relayFragment,
};
