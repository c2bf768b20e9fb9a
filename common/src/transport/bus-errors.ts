import { RelayError } from '../errors.js';

/**
 * The broker could not take a publish within the bounded time (down, unreachable, or no leader).
 * Maps to `upstream_unavailable`: the caller answers quickly and the client may retry.
 */
export class BusUnavailableError extends RelayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('upstream_unavailable', message, options);
    this.name = 'BusUnavailableError';
  }
}
