import {
  TOPICS,
  createMemoryBus,
  createMemoryStore,
  parseEvent,
  responseEventSchema,
  type KeyValueStore,
  type Metrics,
  type ResponseEvent,
} from '@relay/common';
import { silentLogger, waitFor } from '@relay/common/testing';
import { createAiConsumer, type AiConsumerConfig } from '../ai-consumer.js';
import type { ChatMessage } from '../history.js';
import type { Retriever } from '../knowledge/index.js';
import type { ModelClient } from '../model-client.js';

export const HARNESS_SYSTEM_PROMPT = 'You are a test assistant.';

export interface ConsumerHarnessOptions {
  model: ModelClient;
  metrics: Metrics;
  knowledge?: Retriever;
  store?: KeyValueStore;
  /** MAX_WORKERS. @default 4 */
  maxWorkers?: number;
  /** QUEUE_UPDATE_MS. @default 500 */
  queueUpdateMs?: number;
  /** Registers what must be closed when the test ends (in reverse order). */
  cleanup: (close: () => Promise<void>) => void;
}

/**
 * An ai-consumer on the in-process bus and store, with the model the test built (the real client
 * against the mock over HTTP): what a gateway publishes goes in with `send`, the events on
 * `responses` come out in `responses`, and `calls` records the messages each model call was given.
 */
export async function startConsumerHarness(options: ConsumerHarnessOptions) {
  const bus = createMemoryBus({ defaultPartitions: 2 });
  await bus.connect();
  options.cleanup(() => bus.close());
  const store = options.store ?? createMemoryStore();
  const calls: ChatMessage[][] = [];
  const model: ModelClient = {
    get breakerState() {
      return options.model.breakerState;
    },
    streamChat: (messages, o) => {
      calls.push(messages);
      return options.model.streamChat(messages, o);
    },
  };
  const config: AiConsumerConfig = {
    kafka: { partitions: 2 },
    openai: { maxWorkers: options.maxWorkers ?? 4, systemPrompt: HARNESS_SYSTEM_PROMPT },
    consumer: {
      deltaFlushMs: 5,
      queueUpdateMs: options.queueUpdateMs ?? 500,
      historyMaxMessages: 0,
      historyTtlSeconds: 3600,
    },
    delivery: { dedupeTtlMs: 3_600_000 },
    http: { shutdownTimeoutMs: 10_000 },
  };
  const consumer = createAiConsumer({
    config,
    logger: silentLogger,
    metrics: options.metrics,
    bus,
    store,
    model,
    ...(options.knowledge ? { knowledge: options.knowledge } : {}),
  });
  await consumer.start();
  options.cleanup(() => consumer.close());

  const responses: ResponseEvent[] = [];
  const sub = await bus.subscribe({
    groupId: 'harness-collector',
    topics: [TOPICS.responses],
    fromBeginning: true,
    handler: async (m) => {
      const parsed = parseEvent(responseEventSchema, m.value);
      if (!parsed.ok) throw new Error(`bad response event: ${parsed.error}`);
      responses.push(parsed.event);
    },
  });
  options.cleanup(() => sub.close());

  let n = 0;
  /** Publishes the prompt a gateway would; `extra` adds fields such as `site`. */
  const send = async (userid: string, content: string, extra: Record<string, unknown> = {}) => {
    const request_id = `req-${++n}`;
    const event = { v: 1, userid, content, received_at: new Date().toISOString(), ...extra, request_id };
    await bus.publish(TOPICS.incoming, [{ key: userid, value: JSON.stringify(event) }]);
    return request_id;
  };
  const eventsOf = (requestId: string) => responses.filter((e) => e.request_id === requestId);
  const finalOf = (requestId: string) =>
    waitFor(() => eventsOf(requestId).find((e) => e.type === 'final' || e.type === 'error'), {
      timeoutMs: 10_000,
      message: `final event of ${requestId}`,
    });
  /** The final event, failing the test if the request ended with an error. */
  const answerOf = async (requestId: string) => {
    const final = await finalOf(requestId);
    if (final.type !== 'final') throw new Error(`expected a final event, got ${JSON.stringify(final)}`);
    return final;
  };
  /** The system message the model was given for the prompt `content`. */
  const systemPromptFor = (content: string) =>
    calls.find((c) => c.at(-1)?.content === content)?.find((m) => m.role === 'system')?.content;

  return { consumer, store, calls, responses, send, eventsOf, finalOf, answerOf, systemPromptFor };
}
