/**
 * The OpenTelemetry adapter of the tracing port. Only `startTracing` imports this module, and only
 * when tracing is on: with tracing off no OpenTelemetry code is loaded at all.
 */
import {
  ROOT_CONTEXT,
  SpanKind as OtelSpanKind,
  SpanStatusCode,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  diag,
  DiagLogLevel,
  isSpanContextValid,
  trace,
  type Context,
  type DiagLogger,
  type Span as OtelSpan,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';
import { once } from '../lifecycle/once.js';
import type { SamplerName, TracingSettings } from './options.js';
import type {
  AttributeValue,
  RemoteParent,
  Span,
  SpanKind,
  SpanParent,
  TraceCarrier,
  Tracer,
} from './tracer.js';

export interface OtelTracerOptions {
  settings: TracingSettings;
  /** `service.instance.id` (SERVER_ID). */
  instance: string;
  /** Where the SDK's own warnings go (a failed export, a full queue), at most one line a minute. */
  logger?: Logger;
  /** Replaces the configured exporters, exported span by span (tests). */
  exporter?: SpanExporter;
}

const KINDS: Record<SpanKind, OtelSpanKind> = {
  internal: OtelSpanKind.INTERNAL,
  server: OtelSpanKind.SERVER,
  client: OtelSpanKind.CLIENT,
  producer: OtelSpanKind.PRODUCER,
  consumer: OtelSpanKind.CONSUMER,
};

class SpanHandle implements Span {
  constructor(
    readonly span: OtelSpan,
    /** The parent's context with this span set: what children and `inject` use. */
    readonly context: Context,
    private readonly propagator: W3CTraceContextPropagator,
  ) {}

  setAttribute(key: string, value: AttributeValue | undefined): void {
    if (value !== undefined) this.span.setAttribute(key, value);
  }

  addEvent(name: string, attributes?: Record<string, AttributeValue>): void {
    this.span.addEvent(name, attributes);
  }

  fail(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    this.span.recordException(err);
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
  }

  end(): void {
    this.span.end();
  }

  inject(carrier: TraceCarrier): void {
    this.propagator.inject(this.context, carrier, defaultTextMapSetter);
  }
}

class Remote implements RemoteParent {
  readonly remote = true;
  constructor(readonly context: Context) {}
}

function samplerFor(name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

function exportersFor(settings: TracingSettings): SpanExporter[] {
  const exporters: SpanExporter[] = [];
  if (settings.exporters.otlp) {
    const { url, headers, timeoutMs, protocol, compression } = settings.otlp;
    const config = {
      url,
      headers,
      timeoutMillis: timeoutMs,
      compression: compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE,
    };
    exporters.push(protocol === 'http/json' ? new OtlpJsonExporter(config) : new OtlpProtoExporter(config));
  }
  if (settings.exporters.console) exporters.push(new ConsoleSpanExporter());
  return exporters;
}

/** The SDK's diagnostics as log lines: warnings and errors, the same message at most once a minute. */
function diagnostics(logger: Logger): DiagLogger {
  const lastSaid = new Map<string, number>();
  const say =
    (level: 'warn' | 'error') =>
    (message: string, ...args: unknown[]) => {
      const now = Date.now();
      if ((lastSaid.get(message) ?? -Infinity) > now - 60_000) return;
      lastSaid.set(message, now);
      const detail = args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
      logger[level]({ component: 'tracing', detail: detail || undefined }, message);
    };
  const quiet = () => {};
  return { error: say('error'), warn: say('warn'), info: quiet, debug: quiet, verbose: quiet };
}

/**
 * Tracing on: a provider with the configured sampler and exporters behind a batch processor, the
 * W3C trace context propagator, and an AsyncLocalStorage context manager (so `withSpan` reaches
 * log lines written in awaited code). The SDK never blocks a service: a full queue drops spans,
 * a failed export is logged and dropped.
 */
export function createOtelTracer(options: OtelTracerOptions): Tracer {
  const { settings } = options;
  const propagator = new W3CTraceContextPropagator();
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  if (options.logger) diag.setLogger(diagnostics(options.logger), DiagLogLevel.WARN);

  const processors: SpanProcessor[] = options.exporter
    ? [new SimpleSpanProcessor(options.exporter)]
    : exportersFor(settings).map(
        (exporter) =>
          new BatchSpanProcessor(exporter, {
            scheduledDelayMillis: settings.batch.scheduleDelayMs,
            exportTimeoutMillis: settings.batch.exportTimeoutMs,
            maxQueueSize: settings.batch.maxQueueSize,
            maxExportBatchSize: settings.batch.maxExportBatchSize,
          }),
      );
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({
        ...settings.resourceAttributes,
        'service.name': settings.serviceName,
        'service.instance.id': options.instance,
      }),
    ),
    sampler: samplerFor(settings.sampler.name, settings.sampler.ratio),
    spanProcessors: processors,
  });
  const tracer = provider.getTracer('@relay/common');

  function parentContext(parent: SpanParent | undefined): Context {
    if (parent instanceof SpanHandle || parent instanceof Remote) return parent.context;
    return ROOT_CONTEXT;
  }

  return {
    enabled: true,
    startSpan(name, kind, parent) {
      const parentCtx = parentContext(parent);
      const span = tracer.startSpan(name, { kind: KINDS[kind] }, parentCtx);
      return new SpanHandle(span, trace.setSpan(parentCtx, span), propagator);
    },
    extract(carrier) {
      const ctx = propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
      const spanContext = trace.getSpanContext(ctx);
      return spanContext && isSpanContextValid(spanContext) ? new Remote(ctx) : undefined;
    },
    withSpan(span, fn) {
      return span instanceof SpanHandle ? context.with(span.context, fn) : fn();
    },
    logFields(): Record<string, string> {
      const spanContext = trace.getActiveSpan()?.spanContext();
      // A new object each time: pino merges the line's own fields into what the mixin returns.
      if (!spanContext || !isSpanContextValid(spanContext)) return {};
      return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
    },
    close: once(async () => {
      try {
        await provider.shutdown();
      } finally {
        context.disable();
        diag.disable();
      }
    }),
  };
}
