/** A failure the harness explains in one line; the CLI prints `message` and exits non-zero. */
export class InfraError extends Error {
  override readonly name = 'InfraError';

  constructor(
    message: string,
    /** Extra lines (a log tail, a tool's output) shown below the message. */
    readonly details?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
