import type { Logger } from 'pino';
import type { TracingSettings } from './options.js';
import { noopTracer, type Tracer } from './tracer.js';

/**
 * The process's tracer: the no-op one when tracing is off (nothing of OpenTelemetry is loaded),
 * else the OpenTelemetry adapter, imported only now.
 */
export async function startTracing(
  settings: TracingSettings,
  options: { instance: string; logger?: Logger },
): Promise<Tracer> {
  if (!settings.enabled) return noopTracer;
  const { createOtelTracer } = await import('./otel-tracer.js');
  return createOtelTracer({ settings, ...options });
}
