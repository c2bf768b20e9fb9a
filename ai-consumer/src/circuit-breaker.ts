import { CircuitOpenError } from './upstream-errors.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

/** Gauge value per state, for the `ai_consumer_circuit_breaker_state` metric. */
export const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

/** How a failed call counts: against the provider, for it (it answered), or not at all (we aborted). */
export type FailureVerdict = 'failure' | 'success' | 'ignore';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker. */
  failureThreshold: number;
  /** How long the breaker stays open before one trial call is let through. */
  cooldownMs: number;
  /** @default Date.now */
  now?: () => number;
  onStateChange?: (state: BreakerState, previous: BreakerState) => void;
}

export interface CircuitBreaker {
  readonly state: BreakerState;
  /**
   * Runs `fn` unless the breaker is open (then throws `CircuitOpenError` at once). A thrown error is
   * judged by `classify`; a resolved call is a success.
   */
  run<T>(fn: () => Promise<T>, classify: (error: unknown) => FailureVerdict): Promise<T>;
}

/**
 * closed → open after `failureThreshold` consecutive failures; open → half-open once `cooldownMs`
 * passed (the state moves lazily, on the next call); half-open lets exactly one trial through while
 * every other call fails fast; the trial's success closes it, its failure opens it for another cooldown.
 */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  const now = options.now ?? Date.now;
  let state: BreakerState = 'closed';
  let consecutiveFailures = 0;
  let openedAt = 0;
  let trialInFlight = false;

  function moveTo(next: BreakerState): void {
    if (next === state) return;
    const previous = state;
    state = next;
    if (next === 'open') openedAt = now();
    if (next !== 'half_open') trialInFlight = false;
    options.onStateChange?.(next, previous);
  }

  function current(): BreakerState {
    if (state === 'open' && now() - openedAt >= options.cooldownMs) moveTo('half_open');
    return state;
  }

  function onFailure(): void {
    consecutiveFailures++;
    if (state === 'half_open' || consecutiveFailures >= options.failureThreshold) moveTo('open');
  }

  function onSuccess(): void {
    consecutiveFailures = 0;
    moveTo('closed');
  }

  return {
    get state() {
      return current();
    },
    async run(fn, classify) {
      const at = current();
      if (at === 'open') throw new CircuitOpenError(Math.max(0, openedAt + options.cooldownMs - now()));
      const isTrial = at === 'half_open';
      if (isTrial) {
        if (trialInFlight) throw new CircuitOpenError(0);
        trialInFlight = true;
      }
      try {
        const value = await fn();
        onSuccess();
        return value;
      } catch (error) {
        const verdict = classify(error);
        if (verdict === 'failure') onFailure();
        else if (verdict === 'success') onSuccess();
        throw error;
      } finally {
        // An ignored trial (e.g. cancelled by the caller) proves nothing: let the next call try again.
        if (isTrial && state === 'half_open') trialInFlight = false;
      }
    },
  };
}
