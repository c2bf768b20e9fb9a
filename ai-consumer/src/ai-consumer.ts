import {
  ERROR_CODES,
  HEADERS,
  RelayError,
  TOPICS,
  once,
  parseEvent,
  promptEventSchema,
  withContext,
  type Bus,
  type BusMessage,
  type DlqEvent,
  type ErrorCode,
  type KeyValueStore,
  type Logger,
  type Metrics,
  type PromptEvent,
  type ResponseEvent,
  type Subscription,
} from '@relay/common';
import { z } from 'zod';
import { consumerMetrics } from './consumer-metrics.js';
import { createDeltaBatcher } from './delta-batcher.js';
import { buildMessages, createHistory } from './history.js';
import type { ModelClient, StreamChatResult } from './model-client.js';
import { createWorkScheduler } from './user-queue.js';

/** The consumer group of SPEC §3. */
export const CONSUMER_GROUP = 'ai-consumer';

export type TopicNames = { [K in keyof typeof TOPICS]: string };

/** The settings `createAiConsumer` reads; main.ts passes the loaded config, tests a plain object. */
export interface AiConsumerConfig {
  kafka: { partitions: number };
  openai: { maxWorkers: number; systemPrompt: string };
  consumer: { deltaFlushMs: number; historyMaxMessages: number; historyTtlSeconds: number };
}

export interface AiConsumerOptions {
  config: AiConsumerConfig;
  logger: Logger;
  metrics: Metrics;
  bus: Bus;
  /** Conversation history lives here (Redis in production). */
  store: KeyValueStore;
  model: ModelClient;
  /** Topic names; tests use unique ones. @default TOPICS */
  topics?: TopicNames;
  /** @default 'ai-consumer' */
  groupId?: string;
  /**
   * Where a group without committed offsets starts. Oldest, so prompts accepted before the group
   * first joined (first deploy, new topic) are answered rather than skipped. @default true
   */
  fromBeginning?: boolean;
  /** @default Date.now */
  now?: () => number;
}

export interface AiConsumer {
  /** Creates the topics and joins the consumer group. */
  start(): Promise<void>;
  /** Leaves the group after the messages in hand are answered and committed. Idempotent. */
  close(): Promise<void>;
  /** Joined, not crashed, not closing. */
  ready(): boolean;
  /**
   * Stops a generation in flight (SPEC `cancel`): its final event then carries what was streamed so
   * far and `finish_reason: "cancelled"`. False if the request is not running here.
   */
  cancel(requestId: string): boolean;
}

/** Enough of an invalid prompt to tell its user that it failed. */
const addressSchema = z.object({ userid: z.string().min(1), request_id: z.string().min(1) });

function addressOf(value: string): { userid: string; request_id: string } | undefined {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch {
    // Not JSON: there is nobody to address, the DLQ record is all that can be done.
    return undefined;
  }
  const parsed = addressSchema.safeParse(data);
  return parsed.success ? parsed.data : undefined;
}

/**
 * Consumes prompt events, streams the model's answer to `responses` as batched `delta` events and
 * ends every request with exactly one `final` or `error` event. The handler resolves only after that
 * last event is acknowledged, so the bus commits the offset only for finished work (at-least-once).
 * A publish failure is the one thing it throws for: nothing can be promised without the broker, and
 * the bus then stops, reports fatal and leaves the message to be redelivered.
 */
export function createAiConsumer(options: AiConsumerOptions): AiConsumer {
  const { config, bus, model } = options;
  const logger = options.logger.child({ component: 'ai-consumer' });
  const topics = options.topics ?? TOPICS;
  const now = options.now ?? Date.now;
  const m = consumerMetrics(options.metrics);
  const scheduler = createWorkScheduler({ maxWorkers: config.openai.maxWorkers });
  const history = createHistory({
    store: options.store,
    maxMessages: config.consumer.historyMaxMessages,
    ttlSeconds: config.consumer.historyTtlSeconds,
  });
  const running = new Map<string, AbortController>();
  let subscription: Subscription | undefined;
  let closing = false;

  async function handleInvalid(message: BusMessage, reason: string): Promise<void> {
    m.dlq.inc();
    m.requests.inc({ outcome: 'invalid_message' });
    logger.warn(
      { topic: message.topic, partition: message.partition, offset: message.offset, reason },
      'invalid prompt event, sent to the DLQ',
    );
    const record: DlqEvent = {
      v: 1,
      source_topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      key: message.key,
      value: message.value,
      error: { code: 'invalid_message', message: reason },
      failed_at: new Date(now()).toISOString(),
    };
    await bus.publish(topics.incomingDlq, [
      { key: message.key ?? '', value: JSON.stringify(record), headers: message.headers },
    ]);
    // The user may be waiting for this request; give them its final frame if we can tell who they are.
    const address = addressOf(message.value);
    if (address) {
      const event: ResponseEvent = {
        v: 1,
        type: 'error',
        ...address,
        code: 'invalid_message',
        message: ERROR_CODES.invalid_message.message,
      };
      await bus.publish(topics.responses, [
        { key: address.userid, value: JSON.stringify(event), headers: responseHeaders(message, address) },
      ]);
    }
  }

  function responseHeaders(message: BusMessage, prompt: { request_id: string }): Record<string, string> {
    const headers: Record<string, string> = {
      [HEADERS.correlationId]: message.headers[HEADERS.correlationId] ?? prompt.request_id,
    };
    const traceparent = message.headers[HEADERS.traceparent];
    if (traceparent) headers[HEADERS.traceparent] = traceparent;
    return headers;
  }

  async function answer(prompt: PromptEvent, message: BusMessage, startedAt: number): Promise<void> {
    const log = withContext(logger, {
      correlation_id: message.headers[HEADERS.correlationId],
      request_id: prompt.request_id,
      userid: prompt.userid,
    });
    const headers = responseHeaders(message, prompt);
    const base = { v: 1 as const, request_id: prompt.request_id, userid: prompt.userid };
    const publish = (event: ResponseEvent) =>
      bus.publish(topics.responses, [{ key: prompt.userid, value: JSON.stringify(event), headers }]);
    const receivedAt = Date.parse(prompt.received_at);
    // The gateway's clock when valid, else ours: processing time is what the user waited.
    const origin = Number.isNaN(receivedAt) || receivedAt > now() ? startedAt : receivedAt;

    const finish = async (outcome: string, event: ResponseEvent) => {
      await publish(event);
      m.requests.inc({ outcome });
      m.processingTime.observe((now() - origin) / 1000);
    };
    const fail = (code: ErrorCode) =>
      finish(code, { ...base, type: 'error', code, message: ERROR_CODES[code].message });

    let turns;
    try {
      turns = await history.load(prompt.userid, prompt.conversation_id);
    } catch (error) {
      // Answering without the conversation would look like the model forgot it; say it failed instead.
      m.historyErrors.inc({ operation: 'load' });
      log.error({ err: error }, 'could not load conversation history');
      return fail('internal_error');
    }

    const controller = new AbortController();
    const batcher = createDeltaBatcher({
      flushMs: config.consumer.deltaFlushMs,
      publish: async (seq, delta) => {
        await publish({ ...base, type: 'delta', seq, delta });
        m.deltaEvents.inc();
      },
      // No point generating what cannot be delivered; flush() below rethrows the error.
      onError: () => controller.abort(),
      now,
    });
    running.set(prompt.request_id, controller);
    log.debug({ history_turns: turns.length, conversation_id: prompt.conversation_id }, 'calling the model');

    let result: StreamChatResult;
    let callStarted = 0;
    try {
      m.queued.inc();
      result = await scheduler.limited(async () => {
        m.queued.dec();
        m.inFlight.inc();
        callStarted = now();
        let firstToken = true;
        try {
          return await model.streamChat(buildMessages(config.openai.systemPrompt, turns, prompt.content), {
            signal: controller.signal,
            onDelta: (text) => {
              if (firstToken) {
                firstToken = false;
                m.timeToFirstToken.observe((now() - callStarted) / 1000);
              }
              batcher.push(text);
            },
          });
        } finally {
          m.inFlight.dec();
        }
      });
    } catch (error) {
      const code: ErrorCode = error instanceof RelayError ? error.code : 'internal_error';
      m.modelCallDuration.observe({ outcome: code }, (now() - callStarted) / 1000);
      // The cause goes to the log only; the user gets the catalog message for the code.
      log.warn({ err: error, code }, 'model call failed');
      await batcher.flush();
      return fail(code);
    } finally {
      running.delete(prompt.request_id);
    }

    await batcher.flush();
    const outcome = result.finishReason === 'cancelled' ? 'cancelled' : 'ok';
    m.modelCallDuration.observe({ outcome }, (now() - callStarted) / 1000);
    await finish(outcome, {
      ...base,
      type: 'final',
      content: result.content,
      conversation_id: prompt.conversation_id,
      processing_time_ms: Math.max(0, now() - origin),
      finish_reason: result.finishReason,
      timestamp: new Date(now()).toISOString(),
    });
    log.info(
      {
        finish_reason: result.finishReason,
        attempts: result.attempts,
        deltas: batcher.published,
        completion_tokens: result.usage?.completionTokens,
      },
      'answered',
    );

    // A cancelled answer is partial; keeping it would feed the model a half sentence as context.
    if (outcome !== 'ok') return;
    try {
      await history.append(prompt.userid, prompt.conversation_id, [
        { role: 'user', content: prompt.content },
        { role: 'assistant', content: result.content },
      ]);
    } catch (error) {
      // The answer is delivered; failing now would redeliver and answer twice. Lose one turn of context.
      m.historyErrors.inc({ operation: 'append' });
      log.error({ err: error }, 'could not save the turn to the conversation history');
    }
  }

  async function handle(message: BusMessage): Promise<void> {
    const startedAt = now();
    const parsed = parseEvent(promptEventSchema, message.value);
    if (!parsed.ok) return handleInvalid(message, parsed.error);
    const prompt = parsed.event;
    await scheduler.forUser(prompt.userid, () => answer(prompt, message, startedAt));
  }

  return {
    async start() {
      const partitions = config.kafka.partitions;
      await bus.ensureTopics(
        [topics.incoming, topics.responses, topics.incomingDlq, topics.responsesDlq].map((topic) => ({
          topic,
          partitions,
        })),
      );
      subscription = await bus.subscribe({
        groupId: options.groupId ?? CONSUMER_GROUP,
        topics: [topics.incoming],
        handler: handle,
        fromBeginning: options.fromBeginning ?? true,
        partitionsConcurrently: Math.min(config.openai.maxWorkers, partitions),
      });
      logger.info(
        {
          topic: topics.incoming,
          group: options.groupId ?? CONSUMER_GROUP,
          max_workers: config.openai.maxWorkers,
        },
        'consuming prompts',
      );
    },
    close: once(async () => {
      closing = true;
      await subscription?.close();
    }),
    ready: () => !closing && subscription !== undefined && subscription.ready,
    cancel(requestId) {
      const controller = running.get(requestId);
      if (!controller) return false;
      controller.abort();
      return true;
    },
  };
}
