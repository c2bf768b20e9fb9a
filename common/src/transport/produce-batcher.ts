/** Records for one topic, as kafkajs' `sendBatch` takes them. */
export interface TopicBatch<M> {
  topic: string;
  messages: M[];
}

export interface ProduceBatcherOptions<M> {
  /** Sends everything added since the last flush, in one request; its outcome is every caller's. */
  send: (batch: Array<TopicBatch<M>>) => Promise<void>;
  /** How long the first record of a batch waits for company. 0: until the end of this event-loop turn. */
  lingerMs: number;
  /**
   * A batch that reaches this size is sent at once instead of waiting for the turn's end (or the
   * linger). Kafka refuses a record batch above `message.max.bytes` (1 MiB by default) whole, so a
   * burst of small publishes in one turn must not add up to one. @default 524288 (512 KiB)
   */
  maxBatchBytes?: number;
  /** The bytes a record adds to a batch. @default every record counts 1 KiB */
  sizeOf?: (message: M) => number;
}

export interface ProduceBatcher<M> {
  /** Resolves when the batch holding these records is acknowledged; rejects with its failure. */
  add(topic: string, messages: M[]): Promise<void>;
}

export const DEFAULT_MAX_BATCH_BYTES = 512 * 1024;

/**
 * Neither Kafka client lingers: each `send` is its own produce request. Under load the ai-consumer
 * issues thousands of small publishes a second (one per delta), and each request costs an encode,
 * a socket write and a broker round trip. The batcher collects the publishes of one event-loop turn
 * (or of `lingerMs`, or until `maxBatchBytes`) into one send. Order is kept: records keep the order
 * they were added in, per topic, so per-key (per-partition) order is what the callers issued.
 */
export function createProduceBatcher<M>(options: ProduceBatcherOptions<M>): ProduceBatcher<M> {
  const maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
  const sizeOf = options.sizeOf ?? (() => 1024);
  let topics = new Map<string, M[]>();
  let waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  let bytes = 0;
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;

  function flush(): void {
    clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
    timer = undefined;
    immediate = undefined;
    const batch = [...topics].map(([topic, messages]) => ({ topic, messages }));
    const current = waiters;
    topics = new Map();
    waiters = [];
    bytes = 0;
    options.send(batch).then(
      () => {
        for (const w of current) w.resolve();
      },
      (err: unknown) => {
        for (const w of current) w.reject(err);
      },
    );
  }

  return {
    add(topic, messages) {
      const list = topics.get(topic);
      if (list) list.push(...messages);
      else topics.set(topic, [...messages]);
      for (const m of messages) bytes += sizeOf(m);
      const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
      if (bytes >= maxBatchBytes) flush();
      else if (!timer && !immediate) {
        if (options.lingerMs > 0) timer = setTimeout(flush, options.lingerMs);
        else immediate = setImmediate(flush);
      }
      return done;
    },
  };
}
