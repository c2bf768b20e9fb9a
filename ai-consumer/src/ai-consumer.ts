import {
  ERROR_CODES,
  createDailyBudgets,
  createDependencyWatch,
  createGuard,
  exportConsumerLag,
  failing,
  OK,
  readinessOf,
  parseStored,
  type BudgetScope,
  HEADERS,
  REDIS_KEYS,
  RelayError,
  TOPICS,
  once,
  parseEvent,
  promptEventSchema,
  runAll,
  withContext,
  noopTracer,
  type Bus,
  type BusMessage,
  type BusRecord,
  publishWithRetry,
  dlqRecord,
  type CancelControl,
  type ErrorCode,
  type KeyValueStore,
  type Logger,
  type Metrics,
  type PromptEvent,
  type PubSub,
  type Readiness,
  type ResponseEvent,
  type Span,
  type Subscription,
  type Tracer,
} from '@relay/common';
import { z } from 'zod';
import { createCancelListener, type CancelListener } from './cancel-listener.js';
import { consumerMetrics } from './consumer-metrics.js';
import { describeError } from './dead-letters.js';
import { createDeltaBatcher, type DeltaBatcher } from './delta-batcher.js';
import { buildMessages, createHistory } from './history.js';
import { ground, type Retriever } from './knowledge/index.js';
import type { ModelClient, StreamChatResult } from './model-client.js';
import { createQueuePositions, type QueuePositionUpdate } from './queue-positions.js';
import { createRequestState, type Claim } from './request-state.js';
import { ModelCallError } from './upstream-errors.js';
import { createWorkScheduler } from './user-queue.js';

/** The consumer group of SPEC §3. */
export const CONSUMER_GROUP = 'ai-consumer';

export type TopicNames = { [K in keyof typeof TOPICS]: string };

/** The settings `createAiConsumer` reads; main.ts passes the loaded config, tests a plain object. */
export interface AiConsumerConfig {
  kafka: { partitions: number };
  /** `model`: the model name requested, for the model call's span. */
  openai: { maxWorkers: number; systemPrompt: string; model?: string };
  /** `queueUpdateMs`: `QUEUE_UPDATE_MS`, 0 sends no queue positions. */
  consumer: {
    deltaFlushMs: number;
    queueUpdateMs: number;
    historyMaxMessages: number;
    historyTtlSeconds: number;
  };
  /** From `deliveryFragment`: how long request states (`request:{userid}:{request_id}`) are kept. */
  delivery: { dedupeTtlMs: number };
  /** The process's shutdown deadline (`SHUTDOWN_TIMEOUT_MS`); the drain of `close()` fits inside it. */
  http: { shutdownTimeoutMs: number };
}

/** Kept from the shutdown deadline for what follows the drain: commit, leave, flush, quit Redis. */
const SHUTDOWN_RESERVE_MS = 2000;

/** How long `close()` lets generations in hand run: the deadline minus the reserve (half, if short). */
export function drainTimeoutFor(shutdownTimeoutMs: number): number {
  return Math.max(shutdownTimeoutMs - SHUTDOWN_RESERVE_MS, Math.floor(shutdownTimeoutMs / 2));
}

/** Abort reason for generations still running when the drain time is over (not a user's cancel). */
const ABANDONED = Symbol('abandoned at shutdown');

export interface AiConsumerOptions {
  config: AiConsumerConfig;
  logger: Logger;
  metrics: Metrics;
  bus: Bus;
  /** Conversation history, request states and cancel keys live here (Redis in production). */
  store: KeyValueStore;
  /**
   * Where cancels of running requests arrive (`control:cancel`; Redis in production, the in-process
   * hub in the embedded app). Without it only the cancel key is honoured, i.e. requests cancelled
   * before their model call starts.
   */
  pubsub?: PubSub;
  model: ModelClient;
  /**
   * The sites' knowledge (`KNOWLEDGE_SOURCES`, docs/knowledge.md): prompts of a site that has one
   * are answered with its best chunks in the system prompt, and their finals list the `sources`.
   */
  knowledge?: Retriever;
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
  /** Spans of each prompt (process, queue waits, model call, publishes). @default noopTracer */
  tracer?: Tracer;
}

export interface AiConsumer {
  /** Creates the topics and joins the consumer group. */
  start(): Promise<void>;
  /**
   * Stops taking messages, lets the ones in hand finish (cancels are still honoured meanwhile), and
   * leaves the group once their events are acknowledged and their offsets committed. What the
   * caller's shutdown deadline cuts off stays uncommitted and is redelivered (reset, then generated
   * again). Idempotent.
   */
  close(): Promise<void>;
  /**
   * Checks `kafka` (the bus), `consuming` (joined, not crashed, not closing), `redis` (a PING every
   * 2 s once started: request state and dedupe live there) and `model` (failing while its circuit
   * breaker is open, the fallback's too if there is one: every prompt would fail at once).
   */
  ready(): Readiness;
  /**
   * Stops a request held here (SPEC `cancel`): its final event then carries what was streamed so far
   * (nothing if the model call had not started, or was not streamed) and `finish_reason: "cancelled"`. False if this
   * consumer does not hold the request. Request ids are chosen by clients, so the user is part of it.
   */
  cancel(request: { userid: string; request_id: string }): boolean;
}

/** Enough of an invalid prompt to tell its user that it failed. */
const addressSchema = z.object({ userid: z.string().min(1), request_id: z.string().min(1) });

function addressOf(value: string): { userid: string; request_id: string } | undefined {
  // Not JSON, or no address: there is nobody to tell, the DLQ record is all that can be done.
  return parseStored(addressSchema, value);
}

/**
 * Consumes prompt events, streams the model's answer to `responses` as batched `delta` events and
 * ends every request with exactly one `final` or `error` event. The handler resolves only after that
 * last event is acknowledged, so the bus commits the offset only for finished work (at-least-once).
 * A publish failure is the one thing it throws for: nothing can be promised without the broker, and
 * the bus then stops, reports fatal and leaves the message to be redelivered.
 *
 * Redelivery (docs/delivery.md): the request state `request:{userid}:{request_id}` turns a
 * redelivered prompt into nothing (`done`) or into a `reset` event and a fresh generation
 * (`running`: a consumer died mid-answer), so the model is called once per request in the normal
 * path. One window is left: a crash after the final (or error) event is acknowledged and before
 * `done` is written. The redelivery then finds `running`, publishes a reset and calls the model
 * again, but the relay has already appended that request's final and drops everything it gets for
 * the request afterwards (reset, deltas, final alike), so the client never sees the rerun; it costs
 * one model call, and the conversation history keeps the rerun's answer rather than the one shown.
 */
export function createAiConsumer(options: AiConsumerOptions): AiConsumer {
  const { config, bus, model, store } = options;
  const logger = options.logger.child({ component: 'ai-consumer' });
  const topics = options.topics ?? TOPICS;
  const now = options.now ?? Date.now;
  const m = consumerMetrics(options.metrics);
  const guard = createGuard({ logger, metrics: options.metrics, handlers: ['prompt'] });
  const scheduler = createWorkScheduler({ maxWorkers: config.openai.maxWorkers });
  const history = createHistory({
    store,
    maxMessages: config.consumer.historyMaxMessages,
    ttlSeconds: config.consumer.historyTtlSeconds,
  });
  const requestState = createRequestState({ store, ttlMs: config.delivery.dedupeTtlMs });
  const budgets = createDailyBudgets(store);
  const tracer = options.tracer ?? noopTracer;
  const modelName = config.openai.model;

  /** The daily budgets a prompt spends, as its gateway resolved them; undefined when none apply. */
  function budgetScope(prompt: PromptEvent): BudgetScope | undefined {
    if (!prompt.budget) return undefined;
    return { userid: prompt.userid, site: prompt.site, limits: prompt.budget };
  }
  /** Requests held here (from the user's turn to their last event), by their request-state key. */
  const running = new Map<string, AbortController>();
  /** Handlers in progress, so close() can wait for the ones it abandons. */
  const inHand = new Set<Promise<void>>();
  let subscription: Subscription | undefined;
  let cancelListener: CancelListener | undefined;
  let closing = false;
  const redisWatch = createDependencyWatch({ check: () => store.ping() });
  /** The drain is over: whatever still runs is left uncommitted and must publish nothing more. */
  let abandoning = false;

  /**
   * Queue positions of prompts the bus holds for a free worker (or for their user's running one).
   * Hints, so published once, not awaited by any handler, and not retried: the next round, or the
   * deltas, follow. Same key and producer as the request's later events, so they come before them.
   */
  function publishPositions(updates: QueuePositionUpdate[]): void {
    const records = updates.map((u) => {
      const event: ResponseEvent = {
        v: 1,
        type: 'queued',
        request_id: u.request_id,
        userid: u.userid,
        position: u.position,
      };
      const correlationId = u.message.headers[HEADERS.correlationId] ?? u.request_id;
      return {
        key: u.userid,
        value: JSON.stringify(event),
        headers: { [HEADERS.correlationId]: correlationId },
      };
    });
    bus.publish(topics.responses, records).then(
      () => m.queuePositions.inc({ outcome: 'published' }, records.length),
      (err: unknown) => {
        m.queuePositions.inc({ outcome: 'failed' }, records.length);
        logger.debug({ err, events: records.length }, 'queue positions not published');
      },
    );
  }
  const positions =
    config.consumer.queueUpdateMs > 0
      ? createQueuePositions({
          intervalMs: config.consumer.queueUpdateMs,
          describe: (message) => {
            const parsed = parseEvent(promptEventSchema, message.value);
            if (!parsed.ok) return undefined;
            const { userid, request_id, stream } = parsed.event;
            // Absent means true (SPEC §3 extension); `false`: no socket of the user reads deltas.
            return { userid, request_id, stream: stream !== false };
          },
          publish: publishPositions,
          now,
        })
      : undefined;

  /** Our events must reach Kafka before the offset is committed: wait out a broker restart. */
  const send = (topic: string, records: BusRecord[]) =>
    publishWithRetry(bus, topic, records, { logger, stopped: () => abandoning });

  function cancel(request: CancelControl): boolean {
    const controller = running.get(REDIS_KEYS.request(request.userid, request.request_id));
    if (!controller) return false;
    controller.abort();
    return true;
  }

  async function sendToDlq(message: BusMessage, error: { code: string; message: string }): Promise<void> {
    const record = dlqRecord(message, error, new Date(now()));
    await send(topics.incomingDlq, [
      { key: message.key ?? '', value: JSON.stringify(record), headers: message.headers },
    ]);
    m.dlq.inc({ reason: error.code });
  }

  async function handleInvalid(message: BusMessage, reason: string, span?: Span): Promise<void> {
    m.requests.inc({ outcome: 'invalid_message' });
    span?.setAttribute('relay.outcome', 'invalid_message');
    logger.warn(
      { topic: message.topic, partition: message.partition, offset: message.offset, reason },
      'invalid prompt event, sent to the DLQ',
    );
    await sendToDlq(message, { code: 'invalid_message', message: reason });
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
      await send(topics.responses, [
        {
          key: address.userid,
          value: JSON.stringify(event),
          headers: responseHeaders(message, address, span),
        },
      ]);
    }
  }

  /**
   * Headers of the events about a prompt: its correlation id, and the trace context of `span` (the
   * prompt's processing here) or, when this consumer does not trace, the prompt's own, passed on so
   * the relay's spans still join the gateway's trace.
   */
  function responseHeaders(
    message: BusMessage,
    prompt: { request_id: string },
    span?: Span,
  ): Record<string, string> {
    const headers: Record<string, string> = {
      [HEADERS.correlationId]: message.headers[HEADERS.correlationId] ?? prompt.request_id,
    };
    if (span) {
      span.inject(headers);
      return headers;
    }
    const traceparent = message.headers[HEADERS.traceparent];
    if (traceparent) headers[HEADERS.traceparent] = traceparent;
    return headers;
  }

  /** A producer span for events on `responses`, a child of the prompt's span. */
  function publishSpan(parent: Span, type: ResponseEvent['type']): Span {
    const span = tracer.startSpan(`${topics.responses} publish`, 'producer', parent);
    span.setAttribute('messaging.system', 'kafka');
    span.setAttribute('messaging.destination.name', topics.responses);
    span.setAttribute('messaging.operation.type', 'send');
    span.setAttribute('relay.event_type', type);
    return span;
  }

  /** `headers` with the trace context of `span` in place of theirs. */
  function headersOf(headers: Record<string, string>, span: Span): Record<string, string> {
    const out = { ...headers };
    span.inject(out);
    return out;
  }

  /** `span`: the prompt's process span, when tracing is on. */
  async function answer(
    prompt: PromptEvent,
    message: BusMessage,
    startedAt: number,
    span: Span | undefined,
  ): Promise<void> {
    const log = withContext(logger, {
      correlation_id: message.headers[HEADERS.correlationId],
      request_id: prompt.request_id,
      userid: prompt.userid,
    });
    const headers = responseHeaders(message, prompt, span);
    const base = { v: 1 as const, request_id: prompt.request_id, userid: prompt.userid };
    const send1 = (event: ResponseEvent, recordHeaders: Record<string, string>) =>
      send(topics.responses, [{ key: prompt.userid, value: JSON.stringify(event), headers: recordHeaders }]);
    // Every event but the deltas gets a span of its own; the deltas share one (see generate()).
    const publish = async (event: ResponseEvent) => {
      if (!span) return send1(event, headers);
      const out = publishSpan(span, event.type);
      try {
        await send1(event, headersOf(headers, out));
      } catch (error) {
        out.fail(error);
        throw error;
      } finally {
        out.end();
      }
    };
    const receivedAt = Date.parse(prompt.received_at);
    // The gateway's clock when valid, else ours: processing time is what the user waited.
    const origin = Number.isNaN(receivedAt) || receivedAt > now() ? startedAt : receivedAt;

    const finish = async (outcome: string, event: ResponseEvent) => {
      await publish(event);
      m.requests.inc({ outcome });
      span?.setAttribute('relay.outcome', outcome);
      m.processingTime.observe((now() - origin) / 1000);
    };
    const markDone = async () => {
      try {
        await requestState.markDone(prompt.userid, prompt.request_id);
      } catch (error) {
        // The answer is out and the offset gets committed; only a redelivery (a crash before the
        // commit) would now generate again, and the relay drops what that rerun publishes.
        m.stateErrors.inc({ operation: 'done' });
        log.error({ err: error }, 'could not mark the request done');
      }
    };
    // Failed for good: the user gets the error event, the operator the prompt in the DLQ to replay.
    const fail = async (code: ErrorCode, error: unknown) => {
      span?.fail(error);
      await finish(code, { ...base, type: 'error', code, message: ERROR_CODES[code].message });
      await sendToDlq(message, { code, message: describeError(error) });
      await markDone();
    };

    // Waited in the user's queue past the drain: the bus has let go of it, it is redelivered whole.
    if (abandoning) return;
    let claim: Claim;
    try {
      claim = await requestState.claim(prompt.userid, prompt.request_id);
    } catch (error) {
      // Without the state a redelivery cannot be told from a new prompt, and the history (same Redis)
      // is most likely unreadable too: fail the request rather than answer blind.
      m.stateErrors.inc({ operation: 'claim' });
      log.error({ err: error }, 'could not claim the request state');
      return fail('internal_error', error);
    }
    if (claim === 'done') {
      m.redelivered.inc({ state: 'done' });
      log.info('redelivered prompt was answered already; skipping it');
      return;
    }
    // No socket of the user asked for deltas when the prompt was taken: publish the final only.
    const streaming = prompt.stream !== false;
    if (claim === 'rerun') {
      m.redelivered.inc({ state: 'running' });
      log.warn('redelivered prompt did not finish before; generating it again from the start');
      // Whatever the earlier attempt streamed is void; the new deltas start again at seq 0.
      if (streaming) await publish({ ...base, type: 'reset' });
    }

    // The gateway checked the budgets; a prompt that waited in Kafka meanwhile is checked again.
    const scope = budgetScope(prompt);
    if (scope && (scope.limits.user > 0 || scope.limits.site > 0)) {
      const over = await budgets.exceeded(scope, now()).catch((error: unknown) => {
        // Not knowing the usage costs at most one answer over the budget; refusing would cost the user more.
        m.stateErrors.inc({ operation: 'budget' });
        log.warn({ err: error }, 'could not read the budgets; answering');
        return null;
      });
      if (over !== null) {
        await finish('budget_exceeded', {
          ...base,
          type: 'error',
          code: 'budget_exceeded',
          message: ERROR_CODES.budget_exceeded.message,
        });
        await markDone();
        return;
      }
    }

    const controller = new AbortController();
    const abandoned = () => controller.signal.aborted && controller.signal.reason === ABANDONED;

    async function cancelledBeforeStart(): Promise<boolean> {
      if (controller.signal.aborted) return true;
      try {
        return (await store.get(REDIS_KEYS.cancel(prompt.userid, prompt.request_id))) !== null;
      } catch (error) {
        // Missing a cancel costs a full answer; refusing to answer would cost the user more.
        m.stateErrors.inc({ operation: 'cancel_check' });
        log.warn({ err: error }, 'could not read the cancel key; answering');
        return false;
      }
    }

    async function generate(): Promise<void> {
      let turns;
      try {
        turns = await history.load(prompt.userid, prompt.conversation_id);
      } catch (error) {
        // Answering without the conversation would look like the model forgot it; say it failed instead.
        m.historyErrors.inc({ operation: 'load' });
        log.error({ err: error }, 'could not load conversation history');
        return fail('internal_error', error);
      }

      const grounding = await ground({
        retriever: options.knowledge,
        site: prompt.site,
        question: prompt.content,
        systemPrompt: config.openai.systemPrompt,
        signal: controller.signal,
        log,
        metrics: m,
        now,
      });

      // One producer span for all of a request's deltas, from the first publish to the flush, and
      // its context on every delta record: a span per delta would be most of the trace (and of
      // its cost) and tell nothing the first delta and the count do not.
      let deltas: Span | undefined;
      let deltaHeaders = headers;
      const batcher = createDeltaBatcher({
        flushMs: config.consumer.deltaFlushMs,
        publish: async (seq, delta) => {
          if (span && !deltas) {
            deltas = publishSpan(span, 'delta');
            deltaHeaders = headersOf(headers, deltas);
          }
          await send1({ ...base, type: 'delta', seq, delta }, deltaHeaders);
          m.deltaEvents.inc();
        },
        // No point generating what cannot be delivered; flush() below rethrows the error.
        onError: () => controller.abort(),
        now,
      });
      log.debug(
        { history_turns: turns.length, conversation_id: prompt.conversation_id },
        'calling the model',
      );

      // Undefined when the request was cancelled before its model call started.
      let result: StreamChatResult | undefined;
      let callStarted = 0;
      const slotWait = span && tracer.startSpan('model slot wait', 'internal', span);
      try {
        m.queued.inc();
        result = await scheduler.limited(async () => {
          m.queued.dec();
          slotWait?.end();
          // Checked after the wait for a slot, which is where a queued request spends its time.
          if (await cancelledBeforeStart()) return undefined;
          m.inFlight.inc();
          callStarted = now();
          // The record's timestamp is the gateway's producer clock; a skewed one counts as no wait.
          m.pickupDelay.observe(Math.max(0, callStarted - message.timestamp) / 1000);
          let firstToken = true;
          const chat = span && chatSpan(span);
          try {
            const answered = await model.streamChat(
              buildMessages(grounding.systemPrompt, turns, prompt.content),
              {
                signal: controller.signal,
                // Nobody reads deltas: one completion, none of the SSE parsing (docs/delivery.md). The
                // time to first token is then not observed (it is not seen; docs/alerts.md).
                stream: streaming,
                onDelta: (text) => {
                  if (firstToken) {
                    firstToken = false;
                    const ttft = now() - callStarted;
                    m.timeToFirstToken.observe(ttft / 1000);
                    chat?.addEvent('first_token', { 'relay.ttft_ms': ttft });
                  }
                  // The port sends none without streaming; a wrapper that did would still not reach the user.
                  if (streaming) batcher.push(text);
                },
              },
            );
            if (chat) describeAnswer(chat, answered);
            return answered;
          } catch (error) {
            chat?.fail(error);
            throw error;
          } finally {
            m.inFlight.dec();
            chat?.end();
          }
        });
      } catch (error) {
        const code: ErrorCode = error instanceof RelayError ? error.code : 'internal_error';
        const failed = error instanceof ModelCallError ? error.model : 'unknown';
        m.modelCallDuration.observe({ outcome: code, model: failed }, (now() - callStarted) / 1000);
        // The cause goes to the log and the DLQ only; the user gets the catalog message for the code.
        log.warn({ err: error, code }, 'model call failed');
        await flushDeltas(batcher, deltas);
        return fail(code, error);
      }

      await flushDeltas(batcher, deltas);
      if (abandoned()) {
        // Not answered and not committed: the next owner of the partition finds the state `running`,
        // publishes a reset and generates again. No final, no `done` here.
        log.info({ deltas: batcher.published }, 'generation abandoned at shutdown; it will be redelivered');
        return;
      }
      const content = result?.content ?? '';
      const finishReason = result?.finishReason ?? 'cancelled';
      const outcome = finishReason === 'cancelled' ? 'cancelled' : 'ok';
      if (result) {
        m.modelCallDuration.observe(
          { outcome, model: result.model ?? 'unknown' },
          (now() - callStarted) / 1000,
        );
      }
      await finish(outcome, {
        ...base,
        type: 'final',
        content,
        conversation_id: prompt.conversation_id,
        processing_time_ms: Math.max(0, now() - origin),
        finish_reason: finishReason,
        timestamp: new Date(now()).toISOString(),
        ...(result?.model !== undefined ? { model: result.model } : {}),
        // Only where a knowledge base was asked and the model then ran (not for a cancel before it).
        ...(result && grounding.sources ? { sources: grounding.sources } : {}),
      });
      // Before the history: a crash in between loses one turn of context, never duplicates one.
      await markDone();
      if (scope && result) {
        // The provider's count where it gives one, else OpenAI's rule of thumb of four characters.
        const used = result.usage
          ? result.usage.promptTokens + result.usage.completionTokens
          : Math.ceil(
              (turns.reduce((n, t) => n + t.content.length, 0) + prompt.content.length + content.length) / 4,
            );
        m.tokensUsed.inc(used);
        await budgets.spend(scope, used, now()).catch((error: unknown) => {
          m.stateErrors.inc({ operation: 'budget' });
          log.warn({ err: error, tokens: used }, 'could not count the tokens against the budgets');
        });
      }
      log.info(
        {
          finish_reason: finishReason,
          attempts: result?.attempts ?? 0,
          deltas: batcher.published,
          completion_tokens: result?.usage?.completionTokens,
        },
        'answered',
      );

      // A cancelled answer is kept as far as it got: the user saw it and may well refer to it next.
      // Cancelled before a single token there is no answer, and a lone question would only confuse.
      if (outcome === 'cancelled' && content === '') return;
      try {
        const kept = await history.append(prompt.userid, prompt.conversation_id, [
          { role: 'user', content: prompt.content, request_id: prompt.request_id, time: prompt.received_at },
          { role: 'assistant', content, request_id: prompt.request_id, time: new Date(now()).toISOString() },
        ]);
        if (kept > 0) m.historyLength.observe(kept);
      } catch (error) {
        // The answer is delivered; failing now would redeliver and answer twice. Lose one turn of context.
        m.historyErrors.inc({ operation: 'append' });
        log.error({ err: error }, 'could not save the turn to the conversation history');
      }
    }

    const runKey = REDIS_KEYS.request(prompt.userid, prompt.request_id);
    // Registered before anything slow, so a cancel on the channel from now on is not missed; one that
    // came earlier left its cancel key, which is checked once the model slot is taken.
    running.set(runKey, controller);
    // The drain ended while this one was claiming: it is as abandoned as the running ones.
    if (abandoning) controller.abort(ABANDONED);
    try {
      await generate();
    } finally {
      if (running.get(runKey) === controller) running.delete(runKey);
    }
  }

  /** The model call's span (GenAI semantic conventions). */
  function chatSpan(parent: Span): Span {
    const chat = tracer.startSpan(modelName ? `chat ${modelName}` : 'chat', 'client', parent);
    chat.setAttribute('gen_ai.operation.name', 'chat');
    chat.setAttribute('gen_ai.provider.name', 'openai');
    chat.setAttribute('gen_ai.request.model', modelName);
    return chat;
  }

  function describeAnswer(chat: Span, answered: StreamChatResult): void {
    chat.setAttribute('gen_ai.response.finish_reasons', answered.finishReason);
    // The fallback's, when the primary model was not the one that answered.
    chat.setAttribute('gen_ai.response.model', answered.model);
    chat.setAttribute('gen_ai.usage.input_tokens', answered.usage?.promptTokens);
    chat.setAttribute('gen_ai.usage.output_tokens', answered.usage?.completionTokens);
    chat.setAttribute('relay.attempts', answered.attempts);
  }

  /** Waits for the deltas in flight; the deltas' span, if any, ends with the count published. */
  async function flushDeltas(batcher: DeltaBatcher, deltas: Span | undefined): Promise<void> {
    try {
      await batcher.flush();
    } catch (error) {
      deltas?.fail(error);
      throw error;
    } finally {
      deltas?.setAttribute('messaging.batch.message_count', batcher.published);
      deltas?.end();
    }
  }

  async function handle(message: BusMessage): Promise<void> {
    if (!tracer.enabled) return take(message, undefined);
    const span = tracer.startSpan(`${message.topic} process`, 'consumer', tracer.extract(message.headers));
    span.setAttribute('messaging.system', 'kafka');
    span.setAttribute('messaging.destination.name', message.topic);
    span.setAttribute('messaging.operation.type', 'process');
    span.setAttribute('messaging.destination.partition.id', String(message.partition));
    span.setAttribute('messaging.kafka.offset', Number(message.offset));
    try {
      // Active meanwhile: the log lines about this prompt carry its trace.
      await tracer.withSpan(span, () => take(message, span));
    } catch (error) {
      span.fail(error);
      throw error;
    } finally {
      span.end();
    }
  }

  async function take(message: BusMessage, span: Span | undefined): Promise<void> {
    const startedAt = now();
    const parsed = parseEvent(promptEventSchema, message.value);
    if (!parsed.ok) return handleInvalid(message, parsed.error, span);
    const prompt = parsed.event;
    span?.setAttribute('relay.request_id', prompt.request_id);
    // The user's earlier prompts go first (one request per user at a time).
    const queued = span && tracer.startSpan('user queue wait', 'internal', span);
    const work = scheduler.forUser(prompt.userid, () => {
      queued?.end();
      return answer(prompt, message, startedAt, span).catch((err: unknown) =>
        afterBug(prompt, message, err, span),
      );
    });
    inHand.add(work);
    try {
      await work;
    } finally {
      inHand.delete(work);
    }
  }

  /**
   * `answer` throws only once the drain gave the message up (publishes stop retrying then): it stays
   * uncommitted and is redelivered. Anything else is a bug met on this one prompt: its user gets
   * `internal_error` (the relay drops it if a final went out already), the prompt goes to the DLQ,
   * and every other prompt goes on, instead of the consumer exiting and meeting it again.
   */
  async function afterBug(
    prompt: PromptEvent,
    message: BusMessage,
    err: unknown,
    span: Span | undefined,
  ): Promise<void> {
    if (abandoning) throw err;
    span?.fail(err);
    span?.setAttribute('relay.outcome', 'internal_error');
    guard.fail('prompt', err, undefined, () => ({ request_id: prompt.request_id, userid: prompt.userid }));
    m.requests.inc({ outcome: 'internal_error' });
    const event: ResponseEvent = {
      v: 1,
      type: 'error',
      request_id: prompt.request_id,
      userid: prompt.userid,
      code: 'internal_error',
      message: ERROR_CODES.internal_error.message,
    };
    await send(topics.responses, [
      { key: prompt.userid, value: JSON.stringify(event), headers: responseHeaders(message, prompt, span) },
    ]);
    await sendToDlq(message, { code: 'internal_error', message: describeError(err) });
    await requestState.markDone(prompt.userid, prompt.request_id).catch((stateErr: unknown) => {
      m.stateErrors.inc({ operation: 'done' });
      logger.error({ err: stateErr, request_id: prompt.request_id }, 'could not mark the request done');
    });
  }

  return {
    async start() {
      await redisWatch.start();
      const partitions = config.kafka.partitions;
      await bus.ensureTopics(
        [topics.incoming, topics.responses, topics.incomingDlq, topics.responsesDlq].map((topic) => ({
          topic,
          partitions,
        })),
      );
      // Listening before joining the group, so no request we take can miss its cancel.
      if (options.pubsub) {
        cancelListener = createCancelListener({ pubsub: options.pubsub, logger, onCancel: cancel });
        await cancelListener.start();
      }
      subscription = await bus.subscribe({
        groupId: options.groupId ?? CONSUMER_GROUP,
        topics: [topics.incoming],
        handler: handle,
        fromBeginning: options.fromBeginning ?? true,
        // One user's prompts in order, everyone else's beside them, also within one partition. Exactly
        // MAX_WORKERS: a handler is one model call, so more would only wait for a p-limit slot, and
        // at close such a started handler would begin its call during the drain, where a message
        // still queued in the bus is simply left uncommitted. The user queue and p-limit stay as guards.
        concurrency: config.openai.maxWorkers,
        ordering: 'key',
        drainTimeoutMs: drainTimeoutFor(config.http.shutdownTimeoutMs),
        // The line of prompts waiting for a handler is the bus's: with one handler per worker, that
        // is where a prompt waits for a worker, or behind its user's running request.
        ...(positions
          ? { onWaitingChange: (waiting: () => BusMessage[]) => positions.changed(waiting) }
          : {}),
      });
      exportConsumerLag({
        metrics: options.metrics,
        bus,
        logger,
        groupId: options.groupId ?? CONSUMER_GROUP,
        topics: [topics.incoming],
      });
      logger.info(
        {
          topic: topics.incoming,
          group: options.groupId ?? CONSUMER_GROUP,
          max_workers: config.openai.maxWorkers,
          cancel_channel: options.pubsub ? REDIS_KEYS.cancelChannel : undefined,
        },
        'consuming prompts',
      );
    },
    close: once(async () => {
      closing = true;
      redisWatch.close();
      // What still waits is handed back uncommitted; its next owner tells its positions.
      positions?.close();
      // The bus stops taking messages and waits (up to the drain timeout) for the handlers in hand,
      // whose final events are acknowledged before they resolve. The cancel listener stays until
      // then, so a cancel during the drain still works.
      await runAll([
        ['subscription', () => subscription?.close()],
        [
          'abandon',
          async () => {
            // Past the drain the bus has left these uncommitted; stop them before the producer
            // closes, so nothing half-done is published after it (their final comes from the rerun).
            abandoning = true;
            for (const controller of running.values()) controller.abort(ABANDONED);
            await Promise.allSettled(inHand);
          },
        ],
        ['cancel-listener', () => cancelListener?.close()],
      ]);
    }),
    ready: () =>
      readinessOf({
        kafka: bus.health(),
        consuming: closing
          ? failing('closing')
          : subscription?.ready
            ? OK
            : failing(subscription ? 'consumer not in its group' : 'not subscribed yet'),
        redis: redisWatch.current,
        model: model.breakerState === 'open' ? failing('circuit breaker open: model calls are failing') : OK,
      }),
    cancel,
  };
}
