export interface DeltaBatcherOptions {
  /** Longest a pushed token waits before it is published; 0 publishes every push at once. */
  flushMs: number;
  /** Publishes one `delta` event; `seq` counts published events from 0. Calls never overlap. */
  publish: (seq: number, delta: string) => Promise<void>;
  /** The first publish failure (later pushes are dropped, `flush()` rejects with it). */
  onError?: (error: unknown) => void;
  /** @default Date.now */
  now?: () => number;
}

export interface DeltaBatcher {
  /** Queues text; never throws (publish failures surface through `onError` and `flush()`). */
  push(text: string): void;
  /** Publishes what is buffered and waits for every publish; rejects with the first failure. */
  flush(): Promise<void>;
  /** Events published or in flight so far. */
  readonly published: number;
}

/**
 * Batches streamed tokens into `delta` events by time: publishes start at least `flushMs` apart,
 * and a token waits at most `flushMs` (plus a publish in flight). A token that arrives after a
 * quiet spell goes out at once (leading edge), so a model streaming slower than `flushMs` per token
 * sees no added delay, while a fast one is cut into events `flushMs` apart. (Waiting `flushMs`
 * after every first token, as this once did, added 25 ms to every time-to-first-delta.) While one
 * publish is in flight the next batch keeps growing instead of queueing a second send, so a slow
 * broker gets fewer, larger events rather than a backlog. Publishes are sequential, so `seq` order
 * is the order on the partition and the concatenation of all deltas is exactly the pushed text.
 */
export function createDeltaBatcher(options: DeltaBatcherOptions): DeltaBatcher {
  const now = options.now ?? Date.now;
  let buffer = '';
  let lastSentAt = Number.NEGATIVE_INFINITY;
  let seq = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: Promise<void> | undefined;
  let failure: { error: unknown } | undefined;

  function schedule(): void {
    if (timer || inFlight || buffer === '' || failure) return;
    const wait = Math.max(0, lastSentAt + options.flushMs - now());
    if (wait === 0) {
      send();
      return;
    }
    timer = setTimeout(() => {
      timer = undefined;
      send();
    }, wait);
  }

  function send(): void {
    if (inFlight || buffer === '' || failure) return;
    const text = buffer;
    buffer = '';
    lastSentAt = now();
    const current = seq++;
    inFlight = options.publish(current, text).then(
      () => {
        inFlight = undefined;
        schedule();
      },
      (error: unknown) => {
        inFlight = undefined;
        failure = { error };
        buffer = '';
        options.onError?.(error);
      },
    );
  }

  return {
    push(text) {
      if (text === '' || failure) return;
      buffer += text;
      schedule();
    },
    async flush() {
      while (inFlight || (buffer !== '' && !failure)) {
        if (timer) {
          clearTimeout(timer);
          timer = undefined;
        }
        if (inFlight) await inFlight;
        else send();
      }
      if (failure) throw failure.error;
    },
    get published() {
      return seq;
    },
  };
}
