import { SIZE_BUCKETS, startAtZero, type Metrics } from '@relay/common';

/**
 * Every ai-consumer metric, in one place so dashboards have one list to read. Get-or-create: the
 * model client and the consumer may both ask for the same set. Labels are low-cardinality
 * (outcomes, failure kinds); a user id is never one.
 */
export function consumerMetrics(metrics: Metrics) {
  const m = {
    requests: metrics.counter<'outcome'>({
      name: 'ai_consumer_requests_total',
      help: 'Prompt events answered, by outcome (ok, cancelled, invalid_message or an error code)',
      labelNames: ['outcome'],
    }),
    modelCallDuration: metrics.histogram<'outcome' | 'model'>({
      name: 'ai_consumer_model_call_duration_seconds',
      help: 'Model call duration including retries and a fallback, from the first attempt to the end of the stream, by outcome and the model that answered (or failed last)',
      labelNames: ['outcome', 'model'],
    }),
    timeToFirstToken: metrics.histogram({
      name: 'ai_consumer_time_to_first_token_seconds',
      help: 'From the start of a streamed model call to its first token (calls without streaming have none)',
    }),
    pickupDelay: metrics.histogram({
      name: 'ai_consumer_pickup_delay_seconds',
      help: 'From the prompt record entering Kafka (its timestamp) to its model call starting: the fetch, the user queue and the MAX_WORKERS wait',
    }),
    historyLength: metrics.histogram({
      name: 'ai_consumer_history_length',
      help: 'Messages a conversation history keeps after an answer was added (capped at HISTORY_MAX_MESSAGES)',
      buckets: SIZE_BUCKETS,
    }),
    processingTime: metrics.histogram({
      name: 'ai_consumer_processing_time_seconds',
      help: 'From received_at at the gateway to the final or error event being published',
    }),
    inFlight: metrics.gauge({
      name: 'ai_consumer_model_calls_in_flight',
      help: 'Model calls running now (capped by MAX_WORKERS)',
    }),
    queued: metrics.gauge({
      name: 'ai_consumer_model_calls_queued',
      help: 'Model calls waiting for a MAX_WORKERS slot',
    }),
    attempts: metrics.counter<'result' | 'model'>({
      name: 'ai_consumer_model_attempts_total',
      help: 'Model call attempts, by result (ok or a failure kind: 5xx, 429, connection, timeout, stream, …) and model',
      labelNames: ['result', 'model'],
    }),
    retries: metrics.counter<'reason' | 'model'>({
      name: 'ai_consumer_model_retries_total',
      help: 'Model call retries, by the failure kind that caused them and model',
      labelNames: ['reason', 'model'],
    }),
    breakerState: metrics.gauge<'model'>({
      name: 'ai_consumer_circuit_breaker_state',
      help: 'Model circuit breaker per model (the primary and the fallback have one each): 0 closed, 1 half-open, 2 open',
      labelNames: ['model'],
    }),
    breakerTransitions: metrics.counter<'state' | 'model'>({
      name: 'ai_consumer_circuit_breaker_transitions_total',
      help: 'Circuit breaker state changes, by the state entered and model',
      labelNames: ['state', 'model'],
    }),
    queuePositions: metrics.counter<'outcome'>({
      name: 'ai_consumer_queue_position_events_total',
      help: 'queued events (a waiting streaming prompt told its place in line), by outcome: published or failed',
      labelNames: ['outcome'],
    }),
    deltaEvents: metrics.counter({
      name: 'ai_consumer_delta_events_total',
      help: 'response.delta events published',
    }),
    dlq: metrics.counter<'reason'>({
      name: 'ai_consumer_dlq_messages_total',
      help: 'Prompt events sent to the DLQ, by reason (invalid_message, or the error code of a request that failed for good)',
      labelNames: ['reason'],
    }),
    redelivered: metrics.counter<'state'>({
      name: 'ai_consumer_redelivered_requests_total',
      help: 'Prompts delivered again, by the state found: done (skipped) or running (reset and generated again)',
      labelNames: ['state'],
    }),
    stateErrors: metrics.counter<'operation'>({
      name: 'ai_consumer_request_state_errors_total',
      help: 'Request state, cancel key or budget reads and writes that failed (claim, done, cancel_check, budget)',
      labelNames: ['operation'],
    }),
    tokensUsed: metrics.counter({
      name: 'ai_consumer_model_tokens_total',
      help: 'Model tokens answers used (prompt + completion; the provider count, else estimated), as counted against the daily budgets',
    }),
    knowledgeChunks: metrics.gauge<'site'>({
      name: 'ai_consumer_knowledge_chunks',
      help: "Chunks in a site's knowledge index (KNOWLEDGE_SOURCES)",
      labelNames: ['site'],
    }),
    knowledgeEmbedded: metrics.counter<'source'>({
      name: 'ai_consumer_knowledge_chunk_embeddings_total',
      help: 'Knowledge chunks indexed, by where their vector came from: api (embedded, paid) or cache (Redis)',
      labelNames: ['source'],
    }),
    knowledgeRefreshErrors: metrics.counter({
      name: 'ai_consumer_knowledge_refresh_errors_total',
      help: 'Knowledge files or sources that could not be read or embedded at a check (kept as they were, tried again at the next)',
    }),
    retrievals: metrics.counter<'result'>({
      name: 'ai_consumer_knowledge_retrievals_total',
      help: 'Retrievals for prompts of sites with knowledge, by result: grounded, none (nothing above KNOWLEDGE_MIN_SCORE), error, unavailable (breaker open)',
      labelNames: ['result'],
    }),
    retrievalDuration: metrics.histogram({
      name: 'ai_consumer_knowledge_retrieval_duration_seconds',
      help: "Embedding a prompt's question and ranking its site's chunks",
    }),
    fallbacks: metrics.counter<'reason'>({
      name: 'ai_consumer_model_fallbacks_total',
      help: 'Model calls handed to OPENAI_FALLBACK_MODEL before any delta, by why: circuit_open, upstream_unavailable, timeout',
      labelNames: ['reason'],
    }),
    historyErrors: metrics.counter<'operation'>({
      name: 'ai_consumer_history_errors_total',
      help: 'Conversation history reads or writes that failed',
      labelNames: ['operation'],
    }),
  };
  // The values these labels take in normal failures, present from the start (see startAtZero). The
  // model metrics start per model, with their client (startModelAtZero).
  startAtZero(m.dlq, 'reason', [
    'invalid_message',
    'internal_error',
    'upstream_unavailable',
    'upstream_error',
    'timeout',
  ]);
  startAtZero(m.stateErrors, 'operation', ['claim', 'done', 'cancel_check', 'budget']);
  startAtZero(m.historyErrors, 'operation', ['load', 'append']);
  startAtZero(m.queuePositions, 'outcome', ['published', 'failed']);
  return m;
}

/** The failure kinds of a model attempt that happen in practice (`failureKind`, upstream-errors.ts). */
const FAILURE_KINDS = ['5xx', '429', 'timeout', 'connection', 'stream'];

/** A model client's series (labelled with its `model`), present from the start like the others. */
export function startModelAtZero(m: ConsumerMetrics, model: string): void {
  for (const result of ['ok', ...FAILURE_KINDS]) m.attempts.inc({ result, model }, 0);
  for (const reason of FAILURE_KINDS) m.retries.inc({ reason, model }, 0);
  for (const state of ['closed', 'half_open', 'open']) m.breakerTransitions.inc({ state, model }, 0);
}

export type ConsumerMetrics = ReturnType<typeof consumerMetrics>;
