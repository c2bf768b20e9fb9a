import { z } from 'zod';
import { bool, fragment, int, list, url } from '../config/parse.js';

/** `OTEL_TRACES_SAMPLER` values this SDK build supports (the remote samplers need a Jaeger agent). */
export const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

const EXPORTERS = ['otlp', 'console', 'none'] as const;

/** `key=value,key=value` with percent-encoded values (W3C baggage style, as OTEL_* lists are). */
const keyValues = (what: string) =>
  z.string().transform((text, ctx) => {
    const out: Record<string, string> = {};
    for (const item of text.split(',')) {
      if (item.trim() === '') continue;
      const at = item.indexOf('=');
      const key = at > 0 ? item.slice(0, at).trim() : '';
      if (key === '') {
        ctx.addIssue({ code: 'custom', message: `must be a list of ${what} key=value pairs` });
        return z.NEVER;
      }
      try {
        out[key] = decodeURIComponent(item.slice(at + 1).trim());
      } catch {
        ctx.addIssue({ code: 'custom', message: `has a value that is not percent-encoded (${key})` });
        return z.NEVER;
      }
    }
    return out;
  });

const protocol = z.enum(OTLP_PROTOCOLS, {
  message: 'must be http/protobuf or http/json (no gRPC exporter is bundled)',
});

const ratio = z
  .string()
  .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, { message: 'must be a number between 0 and 1' })
  .transform(Number);

/** Where spans go, how many, and what this process is called in them. */
export interface TracingSettings {
  /**
   * Off unless an exporter is asked for: `OTEL_TRACES_EXPORTER` (otlp/console), or an OTLP endpoint
   * (`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED=true`
   * or `OTEL_TRACES_EXPORTER=none` keep it off whatever else is set.
   */
  enabled: boolean;
  serviceName: string;
  /** From `OTEL_RESOURCE_ATTRIBUTES`, `service.name` removed (it is `serviceName`). */
  resourceAttributes: Record<string, string>;
  exporters: { otlp: boolean; console: boolean };
  otlp: {
    /** The traces URL (`…/v1/traces`). */
    url: string;
    protocol: OtlpProtocol;
    headers: Record<string, string>;
    timeoutMs: number;
    compression: 'gzip' | 'none';
  };
  sampler: { name: SamplerName; ratio: number };
  batch: {
    scheduleDelayMs: number;
    exportTimeoutMs: number;
    maxQueueSize: number;
    maxExportBatchSize: number;
  };
}

/** `OTEL_EXPORTER_OTLP_ENDPOINT` is a base: the signal's path is appended (OTLP exporter spec). */
export function tracesUrl(base: string): string {
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

/**
 * Tracing, configured by the standard OpenTelemetry variables (the SDK environment spec), read here
 * once like every other setting rather than by the SDK from `process.env`. One deviation: with no
 * exporter and no endpoint named, tracing is off (the spec would export to localhost:4318), so a
 * service never loads the SDK or makes a span unless an operator asked for traces.
 */
export const tracingFragment = (defaults: { service: string }) =>
  fragment(
    {
      /** `true` turns tracing off whatever else is set. @default false */
      OTEL_SDK_DISABLED: bool().default(false),
      /** Comma list of `otlp`, `console`, `none`. @default otlp when an OTLP endpoint is set, else none */
      OTEL_TRACES_EXPORTER: list()
        .pipe(z.array(z.enum(EXPORTERS, { message: `must be a list of ${EXPORTERS.join(', ')}` })))
        .optional(),
      /** Base URL of an OTLP/HTTP receiver (`/v1/traces` is appended), e.g. http://jaeger:4318. */
      OTEL_EXPORTER_OTLP_ENDPOINT: url(['http', 'https']).optional(),
      /** Full traces URL; wins over OTEL_EXPORTER_OTLP_ENDPOINT. */
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url(['http', 'https']).optional(),
      /** `http/protobuf` or `http/json` (no gRPC exporter is bundled). @default http/protobuf */
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol.optional(),
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol.optional(),
      /** Headers on every export request, `key=value,…` (percent-encoded values), e.g. an API key. */
      OTEL_EXPORTER_OTLP_HEADERS: keyValues('header').optional(),
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: keyValues('header').optional(),
      /** Per export request, in ms. @default 10000 */
      OTEL_EXPORTER_OTLP_TIMEOUT: int(1, 600_000).optional(),
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: int(1, 600_000).optional(),
      /** `gzip` or `none`. @default none */
      OTEL_EXPORTER_OTLP_COMPRESSION: z
        .enum(['gzip', 'none'], { message: 'must be gzip or none' })
        .optional(),
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: z
        .enum(['gzip', 'none'], { message: 'must be gzip or none' })
        .optional(),
      /** @default the service's name (websocket-server, ai-consumer, message-relay) */
      OTEL_SERVICE_NAME: z.string().min(1).max(255).optional(),
      /** More resource attributes, `key=value,…` (e.g. deployment.environment.name=prod). */
      OTEL_RESOURCE_ATTRIBUTES: keyValues('attribute').optional(),
      /** @default parentbased_always_on */
      OTEL_TRACES_SAMPLER: z
        .enum(SAMPLERS, { message: `must be one of ${SAMPLERS.join(', ')}` })
        .default('parentbased_always_on'),
      /** The ratio of the `traceidratio` samplers. @default 1 */
      OTEL_TRACES_SAMPLER_ARG: ratio.optional(),
      /** Longest a finished span waits before it is exported, in ms. @default 5000 */
      OTEL_BSP_SCHEDULE_DELAY: int(0, 600_000).default(5000),
      /** @default 30000 */
      OTEL_BSP_EXPORT_TIMEOUT: int(1, 600_000).default(30_000),
      /** Spans buffered for export; past it new ones are dropped (never blocks the service). @default 2048 */
      OTEL_BSP_MAX_QUEUE_SIZE: int(1, 1_000_000).default(2048),
      /** @default 512 */
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: int(1, 1_000_000).default(512),
    },
    (e): TracingSettings => {
      const endpoint = e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? e.OTEL_EXPORTER_OTLP_ENDPOINT;
      const named = e.OTEL_TRACES_EXPORTER ?? [];
      const none = named.includes('none');
      // Nothing named: an endpoint is the operator's way of asking for OTLP.
      const otlp = !none && (named.includes('otlp') || (named.length === 0 && endpoint !== undefined));
      const toConsole = !none && named.includes('console');
      const { 'service.name': fromAttributes, ...resourceAttributes } = e.OTEL_RESOURCE_ATTRIBUTES ?? {};
      return {
        enabled: !e.OTEL_SDK_DISABLED && (otlp || toConsole),
        serviceName: e.OTEL_SERVICE_NAME ?? fromAttributes ?? defaults.service,
        resourceAttributes,
        exporters: { otlp, console: toConsole },
        otlp: {
          url:
            e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
            tracesUrl(e.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318'),
          protocol: e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf',
          headers: { ...e.OTEL_EXPORTER_OTLP_HEADERS, ...e.OTEL_EXPORTER_OTLP_TRACES_HEADERS },
          timeoutMs: e.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ?? e.OTEL_EXPORTER_OTLP_TIMEOUT ?? 10_000,
          compression: e.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION ?? e.OTEL_EXPORTER_OTLP_COMPRESSION ?? 'none',
        },
        sampler: { name: e.OTEL_TRACES_SAMPLER, ratio: e.OTEL_TRACES_SAMPLER_ARG ?? 1 },
        batch: {
          scheduleDelayMs: e.OTEL_BSP_SCHEDULE_DELAY,
          exportTimeoutMs: e.OTEL_BSP_EXPORT_TIMEOUT,
          maxQueueSize: e.OTEL_BSP_MAX_QUEUE_SIZE,
          maxExportBatchSize: Math.min(e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, e.OTEL_BSP_MAX_QUEUE_SIZE),
        },
      };
    },
  );
