import type { DependencyCheck } from '../readiness/checks.js';
export { BusUnavailableError } from './bus-errors.js';

/** A record to publish. Values are JSON text; the key decides the partition (per-user order). */
export interface BusRecord {
  key: string;
  value: string;
  headers?: Record<string, string>;
}

/** A record as delivered to a consumer. */
export interface BusMessage {
  topic: string;
  partition: number;
  /** Decimal string, as Kafka reports it. */
  offset: string;
  key: string | null;
  value: string;
  headers: Record<string, string>;
  timestamp: number;
}

/**
 * Handles one message. The offset is committed only after the returned promise resolves (and every
 * earlier message of the partition has too). A handler that throws is a bug, not bad input (bad
 * input goes to a DLQ): the subscription stops without committing past it, the bus reports it
 * through `onFatal`, and the message is redelivered to the group.
 */
export type MessageHandler = (message: BusMessage) => Promise<void>;

/**
 * Which messages must be handled one after another.
 * - `partition`: one message per partition at a time, in offset order.
 * - `key`: one message per key (within its partition) at a time, in offset order; different keys
 *   run concurrently, also within one partition. Keys are user ids, so this keeps SPEC's per-user
 *   order. Records without a key share one lane per partition.
 */
export type MessageOrdering = 'partition' | 'key';

export interface SubscribeOptions {
  groupId: string;
  topics: string[];
  handler: MessageHandler;
  /** For a group without committed offsets: start at the oldest record. @default false */
  fromBeginning?: boolean;
  /**
   * Handlers running at once for this subscription, across and within partitions. Commits per
   * partition follow the watermark: the offset of the lowest unfinished message, so a message that
   * finishes early is committed only once everything before it has finished too. After a crash
   * every message from the watermark on is redelivered, including ones that had finished
   * (at-least-once; consumers remove duplicates by id).
   * @default 1 (or `partitionsConcurrently` when only that is given)
   */
  concurrency?: number;
  /** @default 'key' when `concurrency` > 1, else 'partition' */
  ordering?: MessageOrdering;
  /**
   * Messages taken from fetched batches that wait for their lane's turn or a free handler slot.
   * While this many wait, fetching pauses. Queued messages do not count as started: close and
   * rebalances drop them uncommitted (they are redelivered).
   * @default 4 × concurrency
   */
  maxQueued?: number;
  /**
   * Called whenever the messages taken and waiting to be handled change (one arrived and has to
   * wait for a slot or its lane's turn; waiting ones started or were dropped); `waiting()` lists
   * them oldest first. Not called for a message that starts at once, so a subscription with free
   * slots pays nothing. Messages not fetched yet (beyond `maxQueued`) are not in the list. Must
   * not throw, and should defer any real work (it runs inside the bus's scheduling).
   */
  onWaitingChange?: (waiting: () => BusMessage[]) => void;
  /**
   * How long `close()` waits for running handlers before it commits what finished and leaves the
   * group. Handlers still running then are left uncommitted (redelivered to the next owner).
   * @default 10000
   */
  drainTimeoutMs?: number;
  /**
   * @deprecated Use `concurrency` with `ordering: 'partition'`, which this maps to when
   * `concurrency` is not given: that many messages at once, one per partition.
   */
  partitionsConcurrently?: number;
}

export interface Subscription {
  /** True once the consumer has joined its group and not crashed since. */
  readonly ready: boolean;
  /**
   * Stops fetching and starting handlers, waits for running handlers (up to `drainTimeoutMs`),
   * commits the watermarks reached, leaves the group. Idempotent.
   */
  close(): Promise<void>;
}

export interface TopicSpec {
  topic: string;
  partitions: number;
}

/** How far a consumer group is behind on one partition. */
export interface PartitionLag {
  topic: string;
  partition: number;
  /**
   * Records the group has not committed: log end − committed offset, from the partition's oldest
   * retained record where the group never committed (our groups start from the beginning).
   */
  lag: number;
}

/** Called when a subscription cannot continue; the process should become unready and exit. */
export type FatalHandler = (error: Error) => void;

/** The message bus port: Kafka in production, in-process for unit tests and the embedded default. */
export interface Bus {
  readonly kind: 'kafka' | 'memory';
  connect(): Promise<void>;
  /** Creates missing topics with the given partition count (existing ones are left as they are). */
  ensureTopics(topics: TopicSpec[]): Promise<void>;
  /**
   * Resolves once the broker acknowledged every record (acks from all in-sync replicas). Rejects
   * with a `BusUnavailableError` when the broker cannot take them within a bounded time.
   */
  publish(topic: string, records: BusRecord[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /**
   * Producer connected, no subscription crashed, and the last publish did not fail (after a failed
   * publish a background probe clears that once the broker answers again).
   */
  healthy(): boolean;
  /** `healthy()` with why not, for `/ready`: which of those three fails, and the broker's last error. */
  health(): DependencyCheck;
  /**
   * The group's lag on every partition of `topics`, as the broker sees it (committed offsets, so it
   * counts what this process has in hand too). Both buses implement it; a test double may not.
   * Rejects like `publish` when the broker does not answer in time.
   */
  consumerLag?(groupId: string, topics: string[]): Promise<PartitionLag[]>;
  close(): Promise<void>;
}

/** Stable partition for a key (FNV-1a); the in-process bus uses it, Kafka uses its own murmur2. */
export function partitionFor(key: string | null, partitions: number): number {
  if (key === null) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
