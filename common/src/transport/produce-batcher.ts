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
}

export interface ProduceBatcher<M> {
  /** Resolves when the batch holding these records is acknowledged; rejects with its failure. */
  add(topic: string, messages: M[]): Promise<void>;
}

/**
 * kafkajs has no linger: each `send` is its own produce request. Under load the ai-consumer issues
 * thousands of small publishes a second (one per delta), and each request costs an encode, a socket
 * write and a broker round trip. The batcher collects the publishes of one event-loop turn (or of
 * `lingerMs`) into one `sendBatch`. Order is kept: records keep the order they were added in, per
 * topic, so per-key (per-partition) order is what the callers issued.
 */
export function createProduceBatcher<M>(options: ProduceBatcherOptions<M>): ProduceBatcher<M> {
  let topics = new Map<string, M[]>();
  let waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  let scheduled = false;

  function flush(): void {
    scheduled = false;
    const batch = [...topics].map(([topic, messages]) => ({ topic, messages }));
    const current = waiters;
    topics = new Map();
    waiters = [];
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
      const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
      if (!scheduled) {
        scheduled = true;
        if (options.lingerMs > 0) setTimeout(flush, options.lingerMs);
        else setImmediate(flush);
      }
      return done;
    },
  };
}
