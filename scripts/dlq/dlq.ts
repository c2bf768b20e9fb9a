/**
 * Dead letters: read a DLQ topic from the beginning up to where it ends now, and optionally
 * re-publish each record's original key and value to its source topic. Bounded: the end offsets
 * are fixed before reading, a limit and a timeout stop it, and nothing is committed (a fresh,
 * random consumer group, deleted afterwards), so every run sees the whole topic again.
 */
import { randomBytes } from 'node:crypto';
import { Kafka, Partitioners, logLevel, type KafkaMessage } from 'kafkajs';
import { dlqEventSchema, parseEvent, TOPICS, type DlqEvent } from '@relay/common';

/** The DLQ topics of SPEC §3, the CLI's default. */
export const DLQ_TOPICS: readonly string[] = [TOPICS.incomingDlq, TOPICS.responsesDlq];

/** Header on a replayed record naming the DLQ record it came from (`topic/partition/offset`). */
export const REPLAY_HEADER = 'dlq_replayed_from';

export interface DeadLetter {
  dlqTopic: string;
  partition: number;
  offset: string;
  /** When the DLQ record was written (Kafka timestamp, ms). */
  timestamp: number;
  /** The DLQ record's own key and value. */
  key: string | null;
  value: string;
  /** The parsed record, when the value is a valid DLQ event. */
  record?: DlqEvent;
  /** Why the value is not a valid DLQ event. */
  invalid?: string;
}

export interface DlqClientOptions {
  brokers: string[];
  /** @default 'dlq-cli' */
  clientId?: string;
  /** Upper bound for the whole read (and replay). @default 60000 */
  timeoutMs?: number;
  /** Non-fatal problems (a consumer group that could not be deleted). @default ignored */
  onWarning?: (message: string) => void;
}

export interface ReadOptions extends DlqClientOptions {
  topic: string;
  /** Stop after this many records. @default no limit (stop when caught up) */
  limit?: number;
}

export interface ReadResult {
  topic: string;
  /** False when the topic does not exist (nothing was ever dead-lettered there). */
  exists: boolean;
  read: number;
}

/** A failure of the tool itself (timeout, broker); the CLI prints its message. */
export class DlqError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DlqError';
  }
}

function kafkaClient(options: DlqClientOptions): Kafka {
  return new Kafka({
    clientId: options.clientId ?? 'dlq-cli',
    brokers: options.brokers,
    connectionTimeout: 3000,
    // Errors reach the caller as rejections; kafkajs' own log lines would only repeat them.
    logLevel: logLevel.NOTHING,
    retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2000 },
  });
}

function toDeadLetter(topic: string, partition: number, message: KafkaMessage): DeadLetter {
  const value = message.value ? message.value.toString() : '';
  const parsed = parseEvent(dlqEventSchema, value);
  return {
    dlqTopic: topic,
    partition,
    offset: message.offset,
    timestamp: Number(message.timestamp),
    key: message.key ? message.key.toString() : null,
    value,
    ...(parsed.ok ? { record: parsed.event } : { invalid: parsed.error }),
  };
}

/**
 * Calls `each` for every record of the topic, in offset order per partition, from the oldest to
 * the end offsets as they were when the call started. `each` is awaited before the next record.
 */
export async function readDeadLetters(
  options: ReadOptions,
  each: (letter: DeadLetter) => Promise<void> | void,
): Promise<ReadResult> {
  const { topic } = options;
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const kafka = kafkaClient(options);
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return { topic, exists: false, read: 0 };
    // Fixed now: records dead-lettered while this runs are left for the next run, so it ends.
    const ends = new Map<number, bigint>();
    for (const p of await admin.fetchTopicOffsets(topic)) {
      if (BigInt(p.high) > BigInt(p.low)) ends.set(p.partition, BigInt(p.high));
    }
    if (ends.size === 0 || limit <= 0) return { topic, exists: true, read: 0 };

    const groupId = `dlq-cli-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 500 });
    let read = 0;
    let stopped = false;
    let finish: () => void = () => {};
    let fail: (err: unknown) => void = () => {};
    const finished = new Promise<void>((resolve, reject) => {
      finish = () => {
        stopped = true;
        resolve();
      };
      fail = (err) => {
        stopped = true;
        reject(err instanceof Error ? err : new Error(String(err)));
      };
    });
    consumer.on(consumer.events.CRASH, (event) => fail(event.payload.error));
    const timer = setTimeout(
      () => fail(new DlqError(`reading ${topic} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const end = ends.get(batch.partition);
          for (const message of batch.messages) {
            if (stopped || end === undefined || BigInt(message.offset) >= end) break;
            read++;
            try {
              await each(toDeadLetter(topic, batch.partition, message));
            } catch (err) {
              fail(err);
              return;
            }
            if (read >= limit) return finish();
          }
          // lastOffset() counts records kafkajs filtered out too, so a tail gap cannot stall this.
          if (end !== undefined && BigInt(batch.lastOffset()) + 1n >= end) ends.delete(batch.partition);
          if (ends.size === 0) finish();
        },
      });
      await finished;
    } finally {
      clearTimeout(timer);
      await consumer.disconnect();
      try {
        await admin.deleteGroups([groupId]);
      } catch (err) {
        options.onWarning?.(
          `could not delete consumer group ${groupId}: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
    return { topic, exists: true, read };
  } finally {
    await admin.disconnect();
  }
}

/** Reads up to `limit` dead letters into memory (for `list`). */
export async function listDeadLetters(
  options: ReadOptions,
): Promise<{ result: ReadResult; letters: DeadLetter[] }> {
  const letters: DeadLetter[] = [];
  const result = await readDeadLetters(options, (letter) => void letters.push(letter));
  return { result, letters };
}

function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** One line per dead letter: time, source topic/partition/offset, key, error, value (truncated). */
export function formatDeadLetter(letter: DeadLetter, valueWidth = 120): string {
  const at = `${letter.dlqTopic}/${letter.partition}@${letter.offset}`;
  if (!letter.record) {
    const time = new Date(letter.timestamp).toISOString();
    return `${time}  ${at}  (not a DLQ record: ${letter.invalid ?? 'invalid'})  value=${truncate(letter.value, valueWidth)}`;
  }
  const r = letter.record;
  return [
    r.failed_at,
    `${r.source_topic}/${r.partition}@${r.offset}`,
    `key=${r.key ?? '(none)'}`,
    `${r.error.code}: ${truncate(r.error.message, 200)}`,
    `value=${truncate(r.value, valueWidth)}`,
  ].join('  ');
}

export interface ReplayOptions extends ReadOptions {
  /** Read and report, publish nothing. @default false */
  dryRun?: boolean;
  onProgress?: (progress: ReplayProgress) => void;
}

export interface ReplayProgress {
  letter: DeadLetter;
  action: 'replayed' | 'would-replay' | 'skipped';
  /** Where it went (or would go). */
  target?: string;
  /** Why it was skipped. */
  reason?: string;
}

export interface ReplaySummary {
  topic: string;
  dryRun: boolean;
  read: number;
  /** Published (or, in a dry run, would be). */
  replayed: number;
  skipped: number;
  byTarget: Record<string, number>;
}

/** Replay stopped at a failed publish; `summary` says what was done before it. */
export class ReplayError extends DlqError {
  readonly summary: ReplaySummary;

  constructor(message: string, summary: ReplaySummary, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReplayError';
    this.summary = summary;
  }
}

/**
 * Re-publishes each dead letter's original key and value to its `source_topic`, one at a time in
 * DLQ order (so one user's records keep their order), with acks from all in-sync replicas. The DLQ
 * keeps its records: replaying twice publishes twice, and consumers drop the duplicates by id.
 * Stops at the first failed publish (the rest would fail the same way).
 */
export async function replayDeadLetters(options: ReplayOptions): Promise<ReplaySummary> {
  const dryRun = options.dryRun ?? false;
  const summary: ReplaySummary = {
    topic: options.topic,
    dryRun,
    read: 0,
    replayed: 0,
    skipped: 0,
    byTarget: {},
  };
  const producer = kafkaClient(options).producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    // A source topic that does not exist is a broken record, not something to create.
    allowAutoTopicCreation: false,
  });
  if (!dryRun) await producer.connect();
  const skip = (letter: DeadLetter, reason: string) => {
    summary.skipped++;
    options.onProgress?.({ letter, action: 'skipped', reason });
  };
  try {
    await readDeadLetters(options, async (letter) => {
      summary.read++;
      const record = letter.record;
      if (!record) return skip(letter, `not a DLQ record: ${letter.invalid ?? 'invalid'}`);
      const target = record.source_topic;
      if (target.length === 0) return skip(letter, 'no source_topic');
      if (target.endsWith('.dlq')) return skip(letter, `source_topic ${target} is a DLQ`);
      if (!dryRun) {
        try {
          await producer.send({
            topic: target,
            acks: -1,
            messages: [
              {
                key: record.key,
                value: record.value,
                headers: { [REPLAY_HEADER]: `${letter.dlqTopic}/${letter.partition}/${letter.offset}` },
              },
            ],
          });
        } catch (err) {
          throw new ReplayError(
            `publishing ${letter.dlqTopic}/${letter.partition}@${letter.offset} to ${target} failed: ${err instanceof Error ? err.message : String(err)}`,
            summary,
            { cause: err },
          );
        }
      }
      summary.replayed++;
      summary.byTarget[target] = (summary.byTarget[target] ?? 0) + 1;
      options.onProgress?.({ letter, action: dryRun ? 'would-replay' : 'replayed', target });
    });
  } finally {
    if (!dryRun) await producer.disconnect();
  }
  return summary;
}
