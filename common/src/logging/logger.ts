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

/** Longest wait for the log destination at exit: a stuck pipe must not keep a process alive. */
const FLUSH_TIMEOUT_MS = 2000;

/**
 * Resolves once every line logged so far is written. pino's `flush(cb)` does not wait for a write
 * already in flight on the async destination (sonic-boom calls back at once when `minLength` is
 * 0), and the exit handler's `flushSync` then writes the later lines first: a service that failed
 * at start printed its "shutdown complete" before the warning logged a millisecond earlier. So
 * while the destination is writing, wait for its `drain` (emitted once everything is written).
 */
export function flushLogs(logger: Logger): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    { _writing?: unknown; once?: (event: string, listener: () => void) => unknown } | undefined;
  return new Promise<void>((resolve) => {
    if (stream?._writing !== true || typeof stream.once !== 'function') {
      logger.flush(() => resolve());
      return;
    }
    const timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
    timer.unref();
    stream.once('drain', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
