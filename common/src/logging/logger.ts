import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths pino censors wherever they appear: tokens and API keys never reach a log line. */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'apiKey',
  '*.apiKey',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'OPENAI_API_KEY',
  '*.OPENAI_API_KEY',
  'JWT_SECRET',
  '*.JWT_SECRET',
];

export interface LoggerOptions {
  service: string;
  instance: string;
  /** @default info */
  level?: string;
  /** Where lines go. @default stdout */
  destination?: DestinationStream;
  /**
   * Fields merged into every line, e.g. the active span's `trace_id`/`span_id` when tracing is on.
   * Left unset when tracing is off, so a log line costs nothing more.
   */
  mixin?: () => object;
}

/** One root logger per process: JSON lines with `service` and `instance` on every line. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service, instance: options.instance },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      ...(options.mixin ? { mixin: options.mixin } : {}),
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}

export interface LogContext {
  correlation_id?: string;
  request_id?: string;
  userid?: string;
}

/** A child logger carrying request context; undefined fields are left out. */
export function withContext(logger: Logger, context: LogContext): Logger {
  const bindings: Record<string, string> = {};
  for (const [k, v] of Object.entries(context)) if (v !== undefined) bindings[k] = v;
  return logger.child(bindings);
}

/** Removes credentials from a URL before it is logged (e.g. `/ws?token=…`). */
export function redactUrl(raw: string): string {
  return raw.replace(/([?&](?:token|access_token|api_key)=)[^&#]*/gi, '$1[redacted]');
}
