import type { Logger } from 'pino';
import type { z } from 'zod';
import type { ConfigFragment, ConfigOf, Env } from '../config/parse.js';
import { loadConfigOrFail } from '../config/parse.js';
import { createLogger } from '../logging/logger.js';
import { createMetrics, type Metrics } from '../metrics/metrics.js';
import type { TracingSettings } from '../tracing/options.js';
import { startTracing } from '../tracing/start.js';
import { noopTracer, type Tracer } from '../tracing/tracer.js';
import { createShutdown, type Shutdown } from './shutdown.js';

/** The parts of `process` a service entry point hands over; passed in so only main.ts names `process`. */
export interface ProcessHandle {
  env: Env;
  exit(code: number): never;
  stderr: { write(text: string): unknown };
  on(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
}

type AnyFragment = ConfigFragment<z.ZodRawShape, unknown>;
type BootFragments = Record<string, AnyFragment> & {
  http: ConfigFragment<z.ZodRawShape, { appName: string; serverId: string; shutdownTimeoutMs: number }>;
  log: ConfigFragment<z.ZodRawShape, { level: string }>;
  tracing: ConfigFragment<z.ZodRawShape, TracingSettings>;
};

export interface Booted<F extends Record<string, AnyFragment>> {
  config: ConfigOf<F>;
  logger: Logger;
  metrics: Metrics;
  shutdown: Shutdown;
  /** The no-op tracer unless OTEL_* asked for traces. */
  tracer: Tracer;
}

/**
 * The start of every service: config parsed once (a bad value ends the process with one line),
 * the tracer (OpenTelemetry only when OTEL_* asks for it), the root logger (with the active span's
 * ids on its lines when tracing is on), the metrics registry, and one shutdown handler wired to
 * SIGTERM/SIGINT. The tracer closes last, so the spans of the shutdown itself are exported.
 */
export async function bootService<F extends BootFragments>(
  proc: ProcessHandle,
  service: string,
  fragments: F,
): Promise<Booted<F>> {
  const config = loadConfigOrFail(fragments, proc.env, (line) => {
    proc.stderr.write(`${line}\n`);
    return proc.exit(1);
  });
  const http = config.http as ReturnType<F['http']['build']>;
  const tracing = config.tracing as ReturnType<F['tracing']['build']>;
  // Set once the SDK is loaded, a few lines down; nothing logs in between.
  let tracer: Tracer = noopTracer;
  const logger = createLogger({
    service: http.appName,
    instance: http.serverId,
    level: (config.log as ReturnType<F['log']['build']>).level,
    ...(tracing.enabled ? { mixin: () => tracer.logFields() } : {}),
  });
  tracer = await startTracing(tracing, { instance: http.serverId, logger });
  const metrics = createMetrics({ service, instance: http.serverId });
  const shutdown = createShutdown({
    logger,
    deadlineMs: http.shutdownTimeoutMs,
    exit: (code) => proc.exit(code),
  });
  shutdown.add('tracing', () => tracer.close());
  proc.on('SIGTERM', () => shutdown.onSignal('SIGTERM'));
  proc.on('SIGINT', () => shutdown.onSignal('SIGINT'));
  if (tracer.enabled) {
    logger.info(
      {
        service_name: tracing.serviceName,
        otlp: tracing.exporters.otlp ? tracing.otlp.url : undefined,
        protocol: tracing.exporters.otlp ? tracing.otlp.protocol : undefined,
        console: tracing.exporters.console || undefined,
        sampler: tracing.sampler.name,
      },
      'tracing on',
    );
  }
  return { config, logger, metrics, shutdown, tracer };
}
