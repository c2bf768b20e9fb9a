import { SpanKind as OtelSpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { loadConfig } from '../config/parse.js';
import { tracingFragment } from '../tracing/options.js';
import { createOtelTracer } from '../tracing/otel-tracer.js';
import type { SpanKind, Tracer } from '../tracing/tracer.js';

/** A finished span as a test reads it. */
export interface RecordedSpan {
  name: string;
  kind: SpanKind;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  service: string;
  attributes: Record<string, unknown>;
  events: string[];
  failed: boolean;
}

const KINDS: Record<OtelSpanKind, SpanKind> = {
  [OtelSpanKind.INTERNAL]: 'internal',
  [OtelSpanKind.SERVER]: 'server',
  [OtelSpanKind.CLIENT]: 'client',
  [OtelSpanKind.PRODUCER]: 'producer',
  [OtelSpanKind.CONSUMER]: 'consumer',
};

export interface RecordingTracer {
  tracer: Tracer;
  /** Spans ended so far, in the order they ended. */
  spans(): RecordedSpan[];
  close(): Promise<void>;
}

/**
 * The real OpenTelemetry adapter with every span kept in memory as it ends (no batching, no
 * network). Only one may be open at a time: it installs the process's context manager.
 */
export function createRecordingTracer(service = 'test'): RecordingTracer {
  const exporter = new InMemorySpanExporter();
  const settings = loadConfig(
    { tracing: tracingFragment({ service }) },
    { OTEL_TRACES_EXPORTER: 'console', OTEL_TRACES_SAMPLER: 'always_on' },
  ).tracing;
  const tracer = createOtelTracer({ settings, instance: `${service}-1`, exporter });
  return {
    tracer,
    spans: () =>
      exporter.getFinishedSpans().map((s) => ({
        name: s.name,
        kind: KINDS[s.kind],
        traceId: s.spanContext().traceId,
        spanId: s.spanContext().spanId,
        parentSpanId: s.parentSpanContext?.spanId,
        service: String(s.resource.attributes['service.name']),
        attributes: { ...s.attributes },
        events: s.events.map((e) => e.name),
        failed: s.status.code === SpanStatusCode.ERROR,
      })),
    close: () => tracer.close(),
  };
}
