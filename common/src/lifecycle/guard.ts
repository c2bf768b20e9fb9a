import type { Logger } from 'pino';
import type { Metrics } from '../metrics/metrics.js';

/** Fields for the log line of a failed callback: the socket, user or channel it was serving. */
export type GuardContext = Record<string, unknown>;

export interface Guard {
  /**
   * Runs a callback an event source calls (uWS, ioredis, a timer, a promise chain): a throw, or a
   * rejection of the promise it returns, is logged with `context`, counted under `handler` in
   * `handler_errors_total` and handed to `recover`. A failing `recover` is logged too. Nothing
   * leaves the call, so one client's bug cannot stop the process that serves everyone else.
   */
  run(
    handler: string,
    fn: () => unknown,
    recover?: (err: unknown) => void,
    context?: () => GuardContext,
  ): void;
  /** What `run` does with a failure, for one caught elsewhere (a promise chain's `catch`). */
  fail(handler: string, err: unknown, recover?: (err: unknown) => void, context?: () => GuardContext): void;
}

export interface GuardOptions {
  logger: Logger;
  metrics: Metrics;
  /**
   * Handlers whose failures reach the guard only through `fail` (a Kafka handler's catch): their
   * `handler_errors_total` series start at 0 now, as `run` starts those of the handlers it runs.
   * @default []
   */
  handlers?: readonly string[];
}

/** One guard per process (or per component): every input path of a service goes through it. */
export function createGuard(options: GuardOptions): Guard {
  const { logger } = options;
  const failures = options.metrics.counter({
    name: 'handler_errors_total',
    help: 'Callbacks that threw or rejected (a bug met while serving one client), by handler',
    labelNames: ['handler'],
  });

  /**
   * Handlers that ran at least once have a `handler_errors_total` series from then on, at 0 until a
   * failure: an alert on `increase()` then sees the first failure too, not only the second.
   */
  const seen = new Set<string>();
  const register = (handler: string): void => {
    if (seen.has(handler)) return;
    seen.add(handler);
    failures.inc({ handler }, 0);
  };
  for (const handler of options.handlers ?? []) register(handler);

  function contextOf(context: (() => GuardContext) | undefined): GuardContext {
    if (!context) return {};
    try {
      return context();
    } catch (err) {
      return { contextError: err instanceof Error ? err.message : 'unknown' };
    }
  }

  function failed(
    handler: string,
    err: unknown,
    recover: ((err: unknown) => void) | undefined,
    context: (() => GuardContext) | undefined,
  ): void {
    register(handler);
    failures.inc({ handler });
    logger.error({ err, handler, ...contextOf(context) }, 'handler failed; recovered for this client only');
    if (!recover) return;
    try {
      recover(err);
    } catch (recoverErr) {
      logger.error(
        { err: recoverErr, handler, ...contextOf(context) },
        'recovery after a handler failure failed',
      );
    }
  }

  return {
    fail: failed,
    run(handler, fn, recover, context) {
      register(handler);
      let result: unknown;
      try {
        result = fn();
      } catch (err) {
        failed(handler, err, recover, context);
        return;
      }
      if (result instanceof Promise) {
        result.catch((err: unknown) => failed(handler, err, recover, context));
      }
    },
  };
}
