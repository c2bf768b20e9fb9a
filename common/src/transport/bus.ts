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
 * Handles one message. The offset is committed only after the returned promise resolves. A handler
 * that throws is a bug, not bad input (bad input goes to a DLQ): the subscription stops without
 * committing, the bus reports it through `onFatal`, and the message is redelivered to the group.
 */
export type MessageHandler = (message: BusMessage) => Promise<void>;

export interface SubscribeOptions {
  groupId: string;
  topics: string[];
  handler: MessageHandler;
  /** For a group without committed offsets: start at the oldest record. @default false */
  fromBeginning?: boolean;
  /** Partitions handled concurrently (messages within a partition stay in order). @default 1 */
  partitionsConcurrently?: number;
}

export interface Subscription {
  /** True once the consumer has joined its group and not crashed since. */
  readonly ready: boolean;
  /** Stops fetching, lets the message in hand finish (and commit), leaves the group. Idempotent. */
  close(): Promise<void>;
}

export interface TopicSpec {
  topic: string;
  partitions: number;
}

/** Called when a subscription cannot continue; the process should become unready and exit. */
export type FatalHandler = (error: Error) => void;

/** The message bus port: Kafka in production, in-process for unit tests and the embedded default. */
export interface Bus {
  readonly kind: 'kafka' | 'memory';
  connect(): Promise<void>;
  /** Creates missing topics with the given partition count (existing ones are left as they are). */
  ensureTopics(topics: TopicSpec[]): Promise<void>;
  /** Resolves once the broker acknowledged every record (acks from all in-sync replicas). */
  publish(topic: string, records: BusRecord[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /** Producer connected and no subscription crashed. */
  healthy(): boolean;
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
