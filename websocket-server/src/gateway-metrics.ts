import { readinessGauge, startAtZero, type Metrics } from '@relay/common';

/**
 * The gateway's series, get-or-create on the process registry: main.ts asks for them too (the Redis
 * resubscribe counter is fed by the pub/sub adapter it builds) and gets the same ones.
 */
export function createGatewayMetrics(metrics: Metrics) {
  const m = {
    connections: metrics.gauge({ name: 'gateway_connections', help: 'Open WebSocket connections' }),
    maxConnections: metrics.gauge({
      name: 'gateway_max_connections',
      help: 'MAX_CONNECTIONS: open sockets past which upgrades are refused (server_full)',
    }),
    ready: readinessGauge(metrics),
    users: metrics.gauge({ name: 'gateway_users', help: 'Users with at least one open socket here' }),
    messages: metrics.counter({
      name: 'gateway_messages_total',
      help: 'Client message frames by outcome (accepted, duplicate, or an error code)',
      labelNames: ['outcome'],
    }),
    frames: metrics.counter({
      name: 'gateway_frames_delivered_total',
      help: 'Frames written to sockets, by kind (a coalesced delta frame counts once)',
      labelNames: ['kind'],
    }),
    ackLatency: metrics.histogram({
      name: 'gateway_ack_latency_seconds',
      help: 'From a client message to its ack (rate limit + Kafka acknowledgement)',
    }),
    deliveryLatency: metrics.histogram({
      name: 'gateway_delivery_latency_seconds',
      help: "From a frame's append to the replay log (its event_id's time) to its hand-over to a socket here: Redis pub/sub and the gateway",
    }),
    upgradesRejected: metrics.counter({
      name: 'gateway_upgrades_rejected_total',
      help: 'Refused WebSocket upgrades by reason',
      labelNames: ['reason'],
    }),
    tokensIssued: metrics.counter({
      name: 'gateway_tokens_issued_total',
      help: 'Session tokens issued by POST /token, by identity mode (anonymous, signed, dev)',
      labelNames: ['mode'],
    }),
    tokensRefused: metrics.counter({
      name: 'gateway_tokens_refused_total',
      help: 'POST /token requests refused, by error code',
      labelNames: ['reason'],
    }),
    publishFailures: metrics.counter({
      name: 'gateway_kafka_publish_failures_total',
      help: 'Client messages not put on Kafka (answered upstream_unavailable, no ack): publish failed or timed out, or refused at once while the bus is unhealthy',
      labelNames: ['reason'],
    }),
    redisErrors: metrics.counter({
      name: 'gateway_redis_errors_total',
      help: 'Failed Redis commands by operation',
      labelNames: ['op'],
    }),
    resubscribes: metrics.counter({
      name: 'gateway_redis_resubscribed_channels_total',
      help: 'User channels subscribed again after the Redis connection came back',
    }),
    upstreamUp: metrics.gauge({
      name: 'gateway_upstream_up',
      help: 'Whether Kafka and Redis answer (1) or not (0), as /ready sees them',
      labelNames: ['upstream'],
    }),
    resumes: metrics.counter({
      name: 'gateway_resumes_total',
      help: 'Connections with last_event_id by outcome (ok, gap, failed)',
      labelNames: ['outcome'],
    }),
    replayedFrames: metrics.counter({
      name: 'gateway_replayed_frames_total',
      help: 'Frames read from replay logs for resuming sockets',
    }),
    resyncs: metrics.counter({
      name: 'gateway_resyncs_total',
      help: 'Catch-ups of every socket from the replay logs after the user channels were resubscribed',
    }),
    coalesced: metrics.counter({
      name: 'gateway_deltas_coalesced_total',
      help: 'Deltas merged into an earlier held delta frame of a slow client instead of sent alone',
    }),
    slowCloses: metrics.counter({
      name: 'gateway_slow_client_closes_total',
      help: 'Sockets closed with 1008 slow_consumer past SLOW_CLIENT_HARD_BYTES',
    }),
    cancels: metrics.counter({
      name: 'gateway_cancels_total',
      help: 'Cancel frames passed on to the consumers',
    }),
    budgetRefusals: metrics.counter({
      name: 'gateway_budget_refusals_total',
      help: 'Messages refused with budget_exceeded, by which daily budget was used up (user, site)',
      labelNames: ['budget'],
    }),
    cancelsRefused: metrics.counter({
      name: 'gateway_cancels_refused_total',
      help: 'Cancel frames naming no pending request of the user (answered unknown_request)',
    }),
    framesLimited: metrics.counter({
      name: 'gateway_frames_limited_total',
      help: 'Client frames over RATE_LIMIT_FRAMES: answered rate_limited (limited) or the socket closed (abusive)',
      labelNames: ['verdict'],
    }),
    resumesClamped: metrics.counter({
      name: 'gateway_resumes_clamped_total',
      help: 'Resumes whose last_event_id was ahead of the replay log and was moved back to its end',
    }),
  };
  // The values these labels take in normal operation, present from the start (see startAtZero).
  startAtZero(m.upgradesRejected, 'reason', [
    'invalid_token',
    'origin_not_allowed',
    'too_many_connections',
    'too_many_connections_from_ip',
    'server_full',
    'draining',
  ]);
  startAtZero(m.tokensIssued, 'mode', ['anonymous', 'signed', 'dev']);
  startAtZero(m.publishFailures, 'reason', ['failed', 'unhealthy']);
  startAtZero(m.redisErrors, 'op', ['replay', 'subscribe', 'unsubscribe', 'accept_marker']);
  return m;
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
