/** What both Kafka adapters (kafka-bus.ts, platformatic-bus.ts) share beside the bookkeeping modules. */
import type { Logger } from 'pino';
import type { FatalHandler, Subscription } from './bus.js';
import { once } from '../lifecycle/once.js';
import { BusUnavailableError } from './bus-errors.js';
import { errorReason, failing, OK, type DependencyCheck } from '../readiness/checks.js';
import type { CommitCoalescer } from './commit-coalescer.js';
import type { LaneScheduler } from './lane-scheduler.js';
import type { OffsetWatermarks } from './offset-watermarks.js';

/** Options both Kafka adapters take (each adds its client's own). */
export interface KafkaBusCommonOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** A subscription crashed for good: make the process unready and exit. */
  onFatal: FatalHandler;
  /** @default 10000 */
  sessionTimeoutMs?: number;
  /** @default sessionTimeoutMs / 3 */
  heartbeatIntervalMs?: number;
  /** How long to wait for a broker connection. @default 3000 */
  connectionTimeoutMs?: number;
  /**
   * Upper bound for `publish`: past it the call rejects with `BusUnavailableError` (the gateway
   * answers `upstream_unavailable`) instead of waiting out the client's own retries, which are
   * sized to fit inside it where the client allows.
   * @default 5000
   */
  publishTimeoutMs?: number;
  /**
   * How long a publish waits for others to share its produce request. 0 (the default) batches only
   * what is published in the same event-loop turn, which adds no delay.
   * @default 0
   */
  lingerMs?: number;
}

/** While publishes fail, how often a metadata request checks whether the broker is back. */
export const PROBE_INTERVAL_MS = 2000;

/** Roughly the bytes a record adds to a produce request (string length, plus record overhead). */
export function recordSize(key: unknown, value: unknown): number {
  const length = (v: unknown) => (typeof v === 'string' || Buffer.isBuffer(v) ? v.length : 0);
  return length(key) + length(value) + 32;
}

/** Resolves or rejects like `promise`, or rejects with BusUnavailableError after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new BusUnavailableError(`${what} timed out after ${ms} ms (kafka unreachable?)`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The end of a subscription's close, the same for both adapters: wait (bounded) for the handlers
 * in hand, then commit each assigned partition's watermark and flush (bounded too: during an outage
 * a commit retries for as long as its client lets it). What misses either deadline is redelivered.
 */
export async function drainAndCommit(deps: {
  scheduler: Pick<LaneScheduler, 'idle' | 'running'>;
  assigned: Iterable<string>;
  watermarks: Pick<OffsetWatermarks, 'watermark'>;
  committer: Pick<CommitCoalescer, 'request' | 'flush' | 'stop'>;
  drainTimeoutMs: number;
  log: Logger;
}): Promise<void> {
  const { scheduler, watermarks, committer, drainTimeoutMs, log } = deps;
  const within = async (work: Promise<void>) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), drainTimeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
  if (!(await within(scheduler.idle()))) {
    log.warn(
      { running: scheduler.running, drainTimeoutMs },
      'handlers still running at the drain timeout are left uncommitted (redelivered)',
    );
  }
  for (const slot of deps.assigned) {
    const watermark = watermarks.watermark(slot);
    if (watermark !== undefined) committer.request(slot, watermark);
  }
  if (!(await within(committer.flush())))
    log.warn('final offset commits did not finish in time; their messages are redelivered');
  committer.stop();
}

/** Whether publishes fail right now, and why the last one did: both adapters' `health()` reads it. */
export interface PublishState {
  failing: boolean;
  error: unknown;
}

/**
 * Waits for a batched send with the bus' publish timeout, keeping `state` up to date; a failure
 * (after `onFailure`, which starts the broker probe) is a BusUnavailableError. A send cannot be
 * abandoned: if one that timed out still succeeds, the record is in Kafka although the caller was
 * told otherwise. The client's retry carries the same id, so consumers dedupe it; the log says so
 * for whoever reads a duplicate.
 */
export async function awaitSend(
  send: Promise<unknown>,
  topic: string,
  opts: { timeoutMs: number; state: PublishState; logger: Logger; onFailure: () => void },
): Promise<void> {
  try {
    await withTimeout(send, opts.timeoutMs, `publish to ${topic}`);
    opts.state.failing = false;
  } catch (err) {
    opts.state.failing = true;
    opts.state.error = err;
    opts.onFailure();
    if (err instanceof BusUnavailableError) {
      send.then(
        () => opts.logger.warn({ topic }, 'a publish that timed out reached Kafka after all'),
        (late: unknown) => opts.logger.debug({ err: late, topic }, 'a publish that timed out failed'),
      );
      throw err;
    }
    throw new BusUnavailableError(
      `publish to ${topic} failed: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

/** `Bus.health()` of a Kafka adapter: the first of its failure states that holds. */
export function kafkaBusHealth(s: {
  closed?: boolean;
  crashed: boolean;
  producerConnected: boolean;
  publish: PublishState;
}): DependencyCheck {
  if (s.closed) return failing('closed');
  if (s.crashed) return failing('a consumer failed for good');
  if (!s.producerConnected) return failing('producer not connected');
  if (s.publish.failing) return failing(`publishes failing: ${errorReason(s.publish.error)}`);
  return OK;
}

/**
 * While publishes fail, polls the broker (`check`, bounded by `timeoutMs`) every PROBE_INTERVAL_MS
 * until it answers, then clears `state.failing`: readiness recovers without waiting for traffic.
 */
export function createBrokerProbe(opts: {
  check: () => Promise<unknown>;
  timeoutMs: number;
  state: PublishState;
  logger: Logger;
  /** The bus closed: no new probe. */
  closed: () => boolean;
}): { schedule(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  function schedule(): void {
    if (timer || opts.closed()) return;
    timer = setTimeout(() => {
      void (async () => {
        try {
          await withTimeout(opts.check(), opts.timeoutMs, 'broker probe');
          opts.state.failing = false;
        } catch (err) {
          opts.logger.debug({ err }, 'kafka still unreachable');
        } finally {
          timer = undefined;
          if (opts.state.failing) schedule();
        }
      })();
    }, PROBE_INTERVAL_MS);
    timer.unref();
  }
  return { schedule, stop: () => clearTimeout(timer) };
}

/** A started subscription as the `Bus` hands it out: kept in `open` (closed with the bus) until closed. */
export function trackedSubscription<S extends Subscription>(open: Set<S>, subscription: S): Subscription {
  open.add(subscription);
  return {
    get ready() {
      return subscription.ready;
    },
    close: once(async () => {
      try {
        await subscription.close();
      } finally {
        open.delete(subscription);
      }
    }),
  };
}
