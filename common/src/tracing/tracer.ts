/**
 * The tracing port. Services make spans through this, never through OpenTelemetry directly: the
 * adapter (otel-tracer.ts) is loaded only when tracing is configured, and the no-op twin below is
 * what every service holds otherwise. Hot paths (a frame per delta in the relay and the gateway)
 * check `enabled` first, so with tracing off they allocate nothing, not even a no-op span.
 */

export type SpanKind = 'internal' | 'server' | 'client' | 'producer' | 'consumer';

export type AttributeValue = string | number | boolean;

/** W3C trace context headers (`traceparent`, `tracestate`) of a record or a payload. */
export type TraceCarrier = Record<string, string>;

export interface Span {
  /** Undefined values are left out. */
  setAttribute(key: string, value: AttributeValue | undefined): void;
  addEvent(name: string, attributes?: Record<string, AttributeValue>): void;
  /** The work failed: the span's status becomes an error and the error is recorded on it. */
  fail(error: unknown): void;
  end(): void;
  /** Writes this span's context into `carrier` (Kafka headers, a pub/sub payload's envelope). */
  inject(carrier: TraceCarrier): void;
}

/** A span context that came from another process (see {@link Tracer.extract}). */
export interface RemoteParent {
  readonly remote: true;
}

/** Where a new span hangs: a span of this process, or one of another process. */
export type SpanParent = Span | RemoteParent;

export interface Tracer {
  /** False for the no-op tracer: callers on hot paths skip span work entirely. */
  readonly enabled: boolean;
  /** A new span; without a parent it starts a trace. Started spans must be ended. */
  startSpan(name: string, kind: SpanKind, parent?: SpanParent): Span;
  /** The context a carrier holds; undefined when it holds none (or an invalid one). */
  extract(carrier: Readonly<TraceCarrier>): RemoteParent | undefined;
  /** Runs `fn` with `span` active: log lines written meanwhile carry its ids. */
  withSpan<T>(span: Span, fn: () => T): T;
  /**
   * `trace_id` and `span_id` of the active span, for log lines; empty when none is active. A new
   * object per call (pino's mixin merges the line's fields into it).
   */
  logFields(): Record<string, string>;
  /** Exports the spans still buffered and stops. Idempotent. */
  close(): Promise<void>;
}

const noopSpan: Span = Object.freeze({
  setAttribute: () => {},
  addEvent: () => {},
  fail: () => {},
  end: () => {},
  inject: () => {},
});

/** Tracing off: one shared span that records nothing, no context, no SDK. */
export const noopTracer: Tracer = Object.freeze({
  enabled: false,
  startSpan: () => noopSpan,
  extract: () => undefined,
  withSpan: <T>(_span: Span, fn: () => T): T => fn(),
  logFields: () => ({}),
  close: () => Promise.resolve(),
});
