/**
 * Wraps a close function so every call returns the same promise: callers racing to close (a signal
 * handler and a fatal error, say) share one shutdown instead of running it twice.
 */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= fn());
}

/**
 * Runs every cleanup step even when one fails (in the given order), then throws an AggregateError
 * naming the failures, so one broken close never leaves the rest open.
 */
export async function runAll(
  steps: ReadonlyArray<readonly [name: string, step: () => unknown]>,
): Promise<void> {
  const failures: unknown[] = [];
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (err) {
      failures.push(
        new Error(`${name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
      );
    }
  }
  if (failures.length > 0) throw new AggregateError(failures, `${failures.length} close step(s) failed`);
}
